"""testcontainers is used only where a Docker engine answers; the probe says no quickly here."""

from __future__ import annotations

from tests.conftest import docker_engine_answers


def test_docker_probe_says_no_without_an_engine_socket(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    assert docker_engine_answers(timeout=0.5) is False


def test_docker_probe_says_no_when_the_socket_does_not_answer_ping(monkeypatch, tmp_path):
    import socket

    path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)  # accepts, never answers: the probe must give up after its timeout
    try:
        monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
        assert docker_engine_answers(timeout=0.2) is False
    finally:
        server.close()


def test_docker_probe_ignores_tcp_hosts(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.1:2375")
    assert docker_engine_answers() is False
