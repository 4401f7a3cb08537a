"""Remote mode's configuration and error messages (the HTTP path is tested against the real
api in tests/integration/test_cli_remote.py)."""

from __future__ import annotations

import httpx
import pytest
import typer

from finfocus.cli.remote import Remote, RemoteError, _detail, path, remote


def test_remote_mode_is_off_without_a_url(monkeypatch):
    monkeypatch.delenv("FINFOCUS_API_URL", raising=False)
    monkeypatch.setenv("FINFOCUS_API_TOKEN", "t")
    assert remote() is None


def test_a_url_needs_a_token_and_an_http_scheme(monkeypatch, capsys):
    monkeypatch.setenv("FINFOCUS_API_URL", "https://finfocus.example.com")
    monkeypatch.delenv("FINFOCUS_API_TOKEN", raising=False)
    with pytest.raises(typer.Exit) as exited:
        remote()
    assert exited.value.exit_code == 2 and "FINFOCUS_API_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("FINFOCUS_API_TOKEN", "secret")
    assert remote() == Remote("https://finfocus.example.com", "secret", 60.0)
    monkeypatch.setenv("FINFOCUS_API_URL", "finfocus.example.com")
    with pytest.raises(typer.Exit) as exited:
        remote()
    assert exited.value.exit_code == 2


def test_ids_are_encoded_into_the_path():
    assert (
        path("remediation", "commands", "a/b c", "approve")
        == "/api/v1/remediation/commands/a%2Fb%20c/approve"
    )


def test_error_details_read_as_one_line():
    assert _detail(
        httpx.Response(403, json={"detail": "role viewer may not do this (needs approver)"})
    ) == ("role viewer may not do this (needs approver)")
    validation = {"detail": [{"loc": ["body", "amount"], "msg": "Input should be greater than 0"}]}
    assert _detail(httpx.Response(422, json=validation)) == "amount: Input should be greater than 0"
    assert _detail(httpx.Response(502, text="bad gateway")) == "bad gateway"


@pytest.mark.parametrize(
    ("status", "code", "words"),
    [
        (401, 1, "refused the token"),
        (403, 1, "not allowed"),
        (409, 1, "conflict"),
        (400, 2, "conflict"),
        (422, 2, "conflict"),
    ],
)
def test_api_errors_become_the_cli_exit_codes(status, code, words, capsys):
    with pytest.raises(typer.Exit) as exited:
        Remote("http://api", "t").fail(RemoteError(status, "conflict"))
    assert exited.value.exit_code == code
    assert words in capsys.readouterr().err
