"""The Vault KV v2 path of the secrets provider, against a small stand-in of Vault's HTTP API.

No Vault server can be installed here; the stand-in answers the two KV v2 routes hvac uses,
checks the token the way Vault does, and records what it was asked.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from finfocus.secrets import EnvironmentSecrets, Secret, VaultSecrets, secrets_from_environment

TOKEN = "s.test-token"
STORE = {
    "finfocus/slack-webhook-url": {"value": "https://hooks.example/T000/B000/XXXX"},
    "finfocus/aws/credentials": {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "shhh"},
}


class KvV2StandIn(BaseHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        KvV2StandIn.requests.append(self.path)
        if self.headers.get("X-Vault-Token") != TOKEN:
            self._reply(403, {"errors": ["permission denied"]})
            return
        prefix = "/v1/secret/data/"
        path = self.path.split("?")[0]
        if not path.startswith(prefix) or path[len(prefix) :] not in STORE:
            self._reply(404, {"errors": []})
            return
        data = STORE[path[len(prefix) :]]
        self._reply(
            200,
            {
                "data": {
                    "data": data,
                    "metadata": {"version": 3, "deletion_time": "", "destroyed": False},
                }
            },
        )

    def _reply(self, status: int, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def vault_addr():
    server = ThreadingHTTPServer(("127.0.0.1", 0), KvV2StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_vault_kv2_secrets_are_read_through_hvac(vault_addr):
    provider = secrets_from_environment({"VAULT_ADDR": vault_addr, "VAULT_TOKEN": TOKEN})
    assert isinstance(provider, VaultSecrets)
    assert provider.get("slack-webhook-url").reveal() == "https://hooks.example/T000/B000/XXXX"
    assert provider.get("aws/credentials", "secret_access_key").reveal() == "shhh"
    assert provider.get("aws/credentials", "no-such-field") is None
    assert provider.get("missing") is None
    assert any(
        p.startswith("/v1/secret/data/finfocus/slack-webhook-url") for p in KvV2StandIn.requests
    )


def test_wrong_vault_token_is_an_error_not_an_empty_secret(vault_addr):
    import hvac.exceptions

    provider = VaultSecrets(vault_addr, "wrong")
    with pytest.raises(hvac.exceptions.Forbidden):
        provider.get("slack-webhook-url")


def test_environment_is_the_provider_without_vault_addr():
    provider = secrets_from_environment(
        {
            "FINFOCUS_SECRET_SLACK_WEBHOOK_URL": "https://hooks.example/x",
            "FINFOCUS_SECRET_AWS_CREDENTIALS_ACCESS_KEY_ID": "AKIA",
        }
    )
    assert isinstance(provider, EnvironmentSecrets)
    assert provider.get("slack-webhook-url").reveal() == "https://hooks.example/x"
    assert provider.get("aws/credentials", "access_key_id").reveal() == "AKIA"
    assert provider.get("absent") is None


def test_secret_values_never_reach_logs_or_reprs(caplog, vault_addr):
    secret = VaultSecrets(vault_addr, TOKEN).get("aws/credentials", "secret_access_key")
    with caplog.at_level(logging.INFO):
        logging.getLogger("finfocus.test").info("using %s and %r", secret, secret)
    assert "shhh" not in caplog.text
    assert "shhh" not in repr(secret) and "shhh" not in str(secret) and "shhh" not in f"{secret}"
    assert Secret("x").reveal() == "x"
