"""OIDC bearer tokens against a stand-in issuer: a real HTTP server on 127.0.0.1 serving the
discovery document and the JWKS (keys made here), the api on the real database and broker.

Valid tokens (RS256 and ES256) get the mapped role's rights; expired, wrong audience, wrong
issuer, unknown key, `alg: none`, HS256 keyed with the public key and tampered tokens get
401; a viewer's claim gets 403 on approve; an approver's approval is audited as the subject.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from services.api import oidc
from services.remediation import store as remediation_store
from services.remediation.domain import initial_status
from tests.integration.api_helpers import bearer, running_api
from tests.integration.test_api_service import remediation_decisions  # noqa: F401 - fixture
from tests.integration.test_remediation_executor import command

pytestmark = pytest.mark.integration

AUDIENCE = "finfocus-api"
ROLE_MAP = "finops-viewers=viewer,finops-approvers=approver,finops-admins=admin"


class Issuer:
    """The stand-in issuer: serves discovery and the JWKS, counts what it was asked."""

    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.keys: list[dict] = [self.jwk(self.rsa, "rsa-1", "RS256"), self.jwk(self.ec, "ec-1")]
        self.requests: list[str] = []
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                issuer.requests.append(self.path)
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/keys"}
                elif self.path == "/keys":
                    body = {"keys": issuer.keys}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def jwk(private, kid: str, alg: str | None = None) -> dict:
        algorithm = jwt.algorithms.RSAAlgorithm if alg == "RS256" else jwt.algorithms.ECAlgorithm
        key = algorithm.to_jwk(private.public_key(), as_dict=True)
        key.update({"kid": kid, "use": "sig"})
        if alg:
            key["alg"] = alg
        return key

    def token(self, *, key=None, kid: str = "rsa-1", alg: str = "RS256", **claims) -> str:
        now = int(time.time())
        payload = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "u-1234",
            "iat": now,
            "exp": now + 300,
            "groups": ["finops-viewers"],
            **claims,
        }
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, key or self.rsa, algorithm=alg, headers={"kid": kid})


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    stand_in = Issuer()
    try:
        yield stand_in
    finally:
        stand_in.server.shutdown()
        stand_in.server.server_close()


def api(settings, issuer: Issuer):
    return running_api(
        settings,
        oidc_issuer=issuer.url,
        oidc_audience=AUDIENCE,
        oidc_role_claim="groups",
        oidc_roles=ROLE_MAP,
    )


def b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hs256(secret: bytes, body: str) -> str:
    """The algorithm-confusion forgery: HMAC keyed with the issuer's public key (PEM)."""
    signing_input = f"{b64({'alg': 'HS256', 'kid': 'rsa-1', 'typ': 'JWT'})}.{body}"
    return f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), 'sha256').digest())}"


async def test_valid_tokens_get_the_mapped_role_and_bad_ones_401(settings, issuer, monkeypatch):
    monkeypatch.setattr(oidc, "REFETCH_MIN_S", 0.0)
    async with api(settings, issuer) as (_app, client):
        good = issuer.token()
        me = await client.get("/api/v1/session", headers=bearer(good))
        assert me.status_code == 200, me.text
        assert me.json() | {"csrf_token": None} == {
            "kind": "oidc",
            "name": "u-1234",
            "actor": "oidc:u-1234",
            "role": "viewer",
            "csrf_token": None,
        }
        assert (await client.get("/api/v1/views", headers=bearer(good))).status_code == 200
        assert issuer.requests == ["/.well-known/openid-configuration", "/keys"]
        # the cached keys serve the next tokens: no new fetch
        es = issuer.token(key=issuer.ec, kid="ec-1", alg="ES256", groups=["finops-admins"])
        me = await client.get("/api/v1/session", headers=bearer(es))
        assert me.status_code == 200 and me.json()["role"] == "admin"
        assert len(issuer.requests) == 2

        now = int(time.time())
        hs_key = issuer.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        header, body, signature = good.split(".")
        tampered_body = b64(
            json.loads(base64.urlsafe_b64decode(body + "==")) | {"groups": ["finops-admins"]}
        )
        refused = {
            "expired": issuer.token(iat=now - 900, exp=now - 600),
            "not yet valid": issuer.token(nbf=now + 600),
            "no exp": issuer.token(exp=None),
            "wrong audience": issuer.token(aud="someone-else"),
            "wrong issuer": issuer.token(iss="https://evil.example.com"),
            "unknown kid": issuer.token(kid="rsa-9"),
            "signed by another key": issuer.token(
                key=rsa.generate_private_key(public_exponent=65537, key_size=2048)
            ),
            "alg none": f"{b64({'alg': 'none', 'kid': 'rsa-1'})}.{body}.",
            "HS256 keyed with the public key": hs256(hs_key, body),
            "ES256 header on the RSA key": issuer.token(key=issuer.ec, kid="rsa-1", alg="ES256"),
            "tampered": f"{header}.{tampered_body}.{signature}",
            "not a JWT": "garbage",
        }
        for why, token in refused.items():
            answer = await client.get("/api/v1/session", headers=bearer(token))
            assert answer.status_code == 401, (why, answer.text)
            assert answer.headers["www-authenticate"] == "Bearer"
            assert token not in answer.text
        # the unknown kid made the api fetch the keys again (and only for that)
        assert issuer.requests.count("/keys") >= 2
        # a key the issuer rotates in is found by that refresh
        new = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        issuer.keys.append(issuer.jwk(new, "rsa-2", "RS256"))
        rotated = issuer.token(key=new, kid="rsa-2")
        assert (await client.get("/api/v1/session", headers=bearer(rotated))).status_code == 200
        # a valid token whose claim maps to no role: authenticated, may do nothing
        nobody = issuer.token(groups=["marketing"])
        assert (await client.get("/api/v1/costs", headers=bearer(nobody))).status_code == 403
        # local tokens still work beside OIDC
        assert (await client.get("/api/v1/session", headers=bearer("ffk_x_y"))).status_code == 401


async def test_a_viewer_claim_may_not_approve_and_an_approver_is_audited_as_the_subject(
    settings,
    issuer,
    remediation_decisions,  # noqa: F811 - the fixture
):
    pending = command(
        "stop-instance",
        "i-0oidc",
        approval=True,
        expires_in=timedelta(days=1),
        issued_at=datetime.now(UTC),
    )
    async with remediation_store.transaction(remediation_decisions.pool) as conn:
        await remediation_store.insert_command(
            conn, pending, initial_status(pending), actor="planner"
        )
    url = f"/api/v1/remediation/commands/{pending.command_id}/approve"
    async with api(settings, issuer) as (_app, client):
        viewer = issuer.token(sub="vera", groups=["finops-viewers"])
        assert (await client.post(url, json={}, headers=bearer(viewer))).status_code == 403
        approver = issuer.token(sub="alice@example.com", groups=["finops-approvers"])
        answer = await client.post(url, json={"reason": "oidc"}, headers=bearer(approver))
        assert answer.status_code in (200, 202), answer.text
        for _ in range(150):
            audit = (
                await client.get(
                    f"/api/v1/remediation/commands/{pending.command_id}/audit",
                    headers=bearer(viewer),
                )
            ).json()["audit"]
            approved = [a for a in audit if a["event"] == "approved"]
            if approved:
                break
            await asyncio.sleep(0.2)
        else:
            pytest.fail("the approval never showed in remediation's audit")
        assert approved[0]["actor"] == "api:oidc:alice@example.com"
        assert approved[0]["reason"] == "oidc"
