"""File modes and environments of the embedded stack: a private FINFOCUS_HOME, files 0600
from their first byte, no directory above FINFOCUS_HOME touched, no secret handed to the
broker or PostgreSQL, and each service only the variables it needs."""

from __future__ import annotations

import inspect
import os
import stat
from pathlib import Path

import pytest

from finfocus.embedded import cluster as cluster_module
from finfocus.embedded import postgres as postgres_module
from finfocus.embedded import stack as stack_module
from finfocus.embedded.confine import make_private_home, service_environment
from finfocus.embedded.kafka import broker_environment
from finfocus.embedded.postgres import server_environment, traversable_by, write_secret
from finfocus.embedded.state import StateFile

SECRETS = {
    "FINFOCUS_SECRET_SLACK_WEBHOOK": "https://hooks.example/T0/B0/xyz",
    "VAULT_TOKEN": "hvs.secret",
    "VAULT_ADDR": "https://vault.example",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
    "AWS_ACCESS_KEY_ID": "AKIA0000",
}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    old = os.umask(0)
    yield
    os.umask(old)


def test_home_is_private_and_directories_above_it_keep_their_modes(tmp_path: Path):
    above = tmp_path / "shared"
    above.mkdir()
    above.chmod(0o711)
    inner = above / "team"
    inner.mkdir()
    inner.chmod(0o750)
    home = inner / "finfocus"
    home.mkdir()
    home.chmod(0o755)
    (home / "logs").mkdir()
    (home / "logs" / "pricing.log").write_text("old log")
    (home / "logs" / "pricing.log").chmod(0o644)
    ancestors = {p: _mode(p) for p in [inner, above, tmp_path, *tmp_path.parents]}

    old = os.umask(0o022)
    try:
        make_private_home(home)
    finally:
        os.umask(old)

    assert _mode(home) == 0o700
    assert all(_mode(home / sub) == 0o700 for sub in ("logs", "run", "secrets"))
    assert _mode(home / "logs" / "pricing.log") == 0o600
    assert {p: _mode(p) for p in ancestors} == ancestors


def test_nothing_opens_directories_above_the_cluster_or_the_binaries():
    for module in (postgres_module, stack_module, cluster_module):
        assert "ensure_prefix_permissions" not in inspect.getsource(module)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to check another user's access")
def test_traversal_check_sees_a_closed_directory_above(tmp_path: Path):
    closed = tmp_path / "closed"
    (closed / "inside").mkdir(parents=True)
    closed.chmod(0o700)
    assert not traversable_by(closed / "inside", "nobody")
    closed.chmod(0o711)
    opened = [p for p in tmp_path.parents] + [tmp_path]
    if all(_mode(p) & stat.S_IXOTH for p in opened):
        assert traversable_by(closed / "inside", "nobody")


def test_state_file_is_0600_from_its_first_byte(tmp_path: Path, open_umask, monkeypatch):
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        seen.append(_mode(Path(src)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    StateFile(tmp_path / "run" / "stack.json").write({"database_url": "postgresql://x"})
    assert seen == [0o600]
    assert _mode(tmp_path / "run" / "stack.json") == 0o600


def test_secret_files_are_0600_from_their_first_byte(tmp_path: Path, open_umask, monkeypatch):
    seen = []
    real_replace = os.replace
    monkeypatch.setattr(
        os, "replace", lambda s, d: (seen.append(_mode(Path(s))), real_replace(s, d))
    )
    write_secret(tmp_path / "secrets" / "postgres" / "postgres.password", "pw")
    assert seen == [0o600]
    assert _mode(tmp_path / "secrets" / "postgres") == 0o700


def test_broker_and_postgres_inherit_no_secret(monkeypatch):
    for key, value in {
        **SECRETS,
        "PGPASSWORD": "x",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://o",
    }.items():
        monkeypatch.setenv(key, value)
    for env in (broker_environment(), server_environment()):
        assert not [k for k in env if k.startswith(("FINFOCUS_", "VAULT_", "AWS_", "PG", "OTEL_"))]
        assert "PATH" in env


def test_services_get_only_what_they_need():
    environ = {
        **SECRETS,
        "PATH": "/usr/bin",
        "FINFOCUS_HOME": "/h",
        "OTEL_SERVICE_NAME": "x",
        "GITHUB_TOKEN": "ghp_x",
        "DATABASE_PASSWORD": "pw",
        "FINFOCUS_BROKER_EPOCH": "9",
    }
    pricing = service_environment("pricing", environ)
    assert not [k for k in pricing if k.startswith("AWS_")]
    assert "GITHUB_TOKEN" not in pricing and "DATABASE_PASSWORD" not in pricing
    assert "FINFOCUS_BROKER_EPOCH" not in pricing  # the supervisor sets its own
    # the secrets provider (environment or Vault) is how a service reads its secrets
    assert pricing["FINFOCUS_SECRET_SLACK_WEBHOOK"] and pricing["VAULT_TOKEN"]
    for service in ("ingest", "remediation"):  # S3 watch, cloud executors
        assert service_environment(service, environ)["AWS_SECRET_ACCESS_KEY"] == "aws-secret"


def test_each_service_gets_its_own_database_url_and_the_epoch(tmp_path: Path):
    from finfocus.settings import FinFocusSettings

    s = stack_module.EmbeddedStack(FinFocusSettings(home=tmp_path))
    s.state = {
        "kafka_bootstrap": "k:1",
        "database_url": "postgresql://postgres@h/finfocus",
        "kafka_owned": True,
        "broker_epoch": 4,
    }
    s._service_urls = {"pricing": "postgresql://finfocus_pricing:pw@h/finfocus"}
    env = s._children_environment("pricing")
    assert env["FINFOCUS_DATABASE_URL"] == "postgresql://finfocus_pricing:pw@h/finfocus"
    assert env["FINFOCUS_BROKER_EPOCH"] == "4"


def test_cli_reads_the_admin_and_reader_passwords_from_their_files(tmp_path: Path, monkeypatch):
    from finfocus.db import reader_url_for
    from finfocus.settings import FinFocusSettings

    home = tmp_path / "home"
    write_secret(home / "secrets" / "postgres" / "postgres.password", "adminpw")
    write_secret(home / "secrets" / "postgres" / "finfocus_reader.password", "readerpw")
    StateFile(home / "run" / "stack.json").write(
        {
            "database_url": "postgresql://postgres@127.0.0.1:5999/finfocus",
            "database_password_file": str(home / "secrets" / "postgres" / "postgres.password"),
            "reader_url": "postgresql://finfocus_reader@127.0.0.1:5999/finfocus",
            "reader_password_file": str(home / "secrets" / "postgres" / "finfocus_reader.password"),
        }
    )
    monkeypatch.setenv("FINFOCUS_HOME", str(home))
    monkeypatch.delenv("FINFOCUS_DATABASE_URL", raising=False)
    monkeypatch.delenv("FINFOCUS_READER_DATABASE_URL", raising=False)
    admin = FinFocusSettings().database
    assert admin == "postgresql://postgres:adminpw@127.0.0.1:5999/finfocus"
    assert reader_url_for(admin) == "postgresql://finfocus_reader:readerpw@127.0.0.1:5999/finfocus"
    assert "adminpw" not in (home / "run" / "stack.json").read_text()
    # a given URL (production, tests) is not the embedded server: no reader URL is invented
    monkeypatch.setenv("FINFOCUS_DATABASE_URL", "postgresql://app:pw@db.example/finfocus")
    assert reader_url_for("postgresql://app:pw@db.example/finfocus") is None
    monkeypatch.setenv(
        "FINFOCUS_READER_DATABASE_URL", "postgresql://finfocus_reader:r@db.example/finfocus"
    )
    assert reader_url_for("postgresql://app:pw@db.example/finfocus").startswith(
        "postgresql://finfocus_reader:"
    )


def test_root_clusters_of_deleted_homes_are_pruned_and_others_kept(tmp_path: Path):
    from finfocus.embedded.cluster import prune_root_clusters

    clusters = tmp_path / "clusters"
    live_home = tmp_path / "live-home"
    live_home.mkdir()
    for name, home in (("gone", tmp_path / "deleted-home"), ("live", live_home), ("unknown", None)):
        (clusters / name / "data").mkdir(parents=True)
        if home is not None:
            (clusters / name / "home").write_text(str(home))
    assert prune_root_clusters(clusters) == [clusters / "gone"]
    assert sorted(p.name for p in clusters.iterdir()) == ["live", "unknown"]
