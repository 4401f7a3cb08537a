"""OIDC bearer tokens (production identities): a JWT from the configured issuer, verified
against the issuer's published keys, gives a principal whose role comes from a claim.

- Keys: `GET {issuer}/.well-known/openid-configuration` names `jwks_uri` (the document's
  `issuer` must be the configured one); the JWKS is cached and fetched again when a token
  names a key id (`kid`) the cache does not hold (at most once per `REFETCH_MIN_S`, so
  made-up key ids cannot make the api hammer the issuer) or after `JWKS_TTL_S`.
- Checks: signature with an allowed asymmetric algorithm (RS256, ES256, ...: never `none`
  nor HS*, which would let a public key act as a shared secret); the key's type and its own
  `alg` must agree with the token's; `iss` equals the issuer, `aud` contains the audience,
  `exp` (required), `nbf` and `iat` with a small leeway; `sub` is required.
- Role: the claim `FINFOCUS_OIDC_ROLE_CLAIM` (a dotted path such as `realm_access.roles`; a
  string or a list), its values mapped by `FINFOCUS_OIDC_ROLES` (`group=role,...`); without
  a mapping, values named `viewer`, `approver` or `admin` are taken as they are. The highest
  mapped role wins; none gives a principal that may do nothing (403).
- Actor: `oidc:<sub>`, what the audits record.

The issuer must be https, except on a loopback address (a local stand-in issuer).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from services.api.security import ROLES, Principal, check_role

if TYPE_CHECKING:  # httpx and jwt load on the first OIDC token, not at every api start
    import jwt

logger = logging.getLogger(__name__)

#: asymmetric algorithms only: a JWKS is public, so a symmetric (HS*) check against it would
#: accept tokens anyone can make
ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"})
KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC"}
CURVES = {"ES256": "P-256", "ES384": "P-384"}
JWKS_TTL_S = 3600.0
REFETCH_MIN_S = 10.0
HTTP_TIMEOUT_S = 5.0


class OidcError(Exception):
    """The token is not acceptable (the message says why; it never contains the token)."""


def parse_roles(text: str) -> dict[str, str]:
    """`FINFOCUS_OIDC_ROLES`: `claim-value=role` pairs separated by commas."""
    mapping: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        value, sep, role = pair.rpartition("=")
        if not sep or not value.strip():
            raise ValueError(f"FINFOCUS_OIDC_ROLES: {pair!r} is not claim-value=role")
        mapping[value.strip()] = check_role(role.strip())
    return mapping


def parse_algorithms(text: str) -> tuple[str, ...]:
    algorithms = tuple(a.strip() for a in text.split(",") if a.strip())
    bad = [a for a in algorithms if a not in ASYMMETRIC]
    if bad or not algorithms:
        raise ValueError(
            f"FINFOCUS_OIDC_ALGORITHMS: {', '.join(bad) or 'none given'} not allowed "
            f"(use {', '.join(sorted(ASYMMETRIC))})"
        )
    return algorithms


def check_issuer_url(issuer: str) -> str:
    parts = urlsplit(issuer)
    if parts.scheme == "https" and parts.hostname:
        return issuer
    loopback = parts.hostname == "localhost"
    if not loopback and parts.hostname:
        try:
            loopback = ipaddress.ip_address(parts.hostname).is_loopback
        except ValueError:
            loopback = False
    if parts.scheme == "http" and loopback:
        return issuer
    raise ValueError(f"FINFOCUS_OIDC_ISSUER must be an https URL (got {issuer!r})")


def claim(payload: Mapping[str, Any], path: str) -> Any:
    """The claim at a dotted path (`realm_access.roles`), or None."""
    value: Any = payload
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def role_of(values: Any, mapping: Mapping[str, str]) -> str | None:
    """The highest role the claim's values map to, or None."""
    if isinstance(values, str):
        values = values.replace(",", " ").split()
    if not isinstance(values, list):
        return None
    roles = {
        mapping.get(v) if mapping else (v if v in ROLES else None)
        for v in values
        if isinstance(v, str)
    }
    ranked = [r for r in ROLES if r in roles]
    return ranked[-1] if ranked else None


def key_algorithm(jwk: Mapping[str, Any], allowed: Iterable[str]) -> str | None:
    """The one algorithm this JWK may verify, if it is an allowed signing key; else None."""
    if jwk.get("use") not in (None, "sig"):
        return None
    kty, alg, crv = jwk.get("kty"), jwk.get("alg"), jwk.get("crv")
    if alg is None:
        alg = "RS256" if kty == "RSA" else {"P-256": "ES256", "P-384": "ES384"}.get(str(crv))
    if not isinstance(alg, str) or alg not in ASYMMETRIC or alg not in set(allowed):
        return None
    if KEY_TYPES[alg[:2]] != kty:
        return None
    if alg in CURVES and crv != CURVES[alg]:
        return None
    return alg


@dataclass
class OidcVerifier:
    issuer: str
    audience: str
    role_claim: str = "roles"
    roles: dict[str, str] = field(default_factory=dict)
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    leeway_s: float = 30.0
    clock: Any = time.monotonic
    _keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    _fetched_at: float | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.issuer = check_issuer_url(self.issuer)
        if not self.audience:
            raise ValueError("FINFOCUS_OIDC_AUDIENCE is required with FINFOCUS_OIDC_ISSUER")
        self.algorithms = parse_algorithms(",".join(self.algorithms))

    @classmethod
    def from_settings(cls, settings: Any) -> OidcVerifier | None:
        if not settings.oidc_issuer:
            return None
        return cls(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience or "",
            role_claim=settings.oidc_role_claim,
            roles=parse_roles(settings.oidc_roles),
            algorithms=parse_algorithms(settings.oidc_algorithms),
            leeway_s=settings.oidc_leeway_s,
        )

    async def _fetch_keys(self) -> None:
        import httpx
        import jwt

        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S, follow_redirects=False) as client:
            discovery = (
                await client.get(f"{self.issuer.rstrip('/')}/.well-known/openid-configuration")
            ).raise_for_status()
            meta = discovery.json()
            if meta.get("issuer") != self.issuer:
                raise OidcError("the issuer's discovery document names another issuer")
            jwks_uri = meta.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri:
                raise OidcError("the issuer's discovery document has no jwks_uri")
            jwks = (await client.get(jwks_uri)).raise_for_status().json()
        keys: dict[str, jwt.PyJWK] = {}
        for jwk in jwks.get("keys", []) if isinstance(jwks, dict) else []:
            alg = key_algorithm(jwk, self.algorithms) if isinstance(jwk, dict) else None
            if alg is None or not isinstance(jwk.get("kid"), str):
                continue
            try:
                keys[jwk["kid"]] = jwt.PyJWK(jwk, algorithm=alg)
            except jwt.PyJWTError:
                continue
        self._keys = keys
        self._fetched_at = self.clock()

    async def key(self, kid: str) -> jwt.PyJWK:
        """The issuer's key `kid`, fetching the JWKS when it is unknown or the cache is old."""
        import httpx

        async with self._lock:
            now = self.clock()
            stale = self._fetched_at is None or now - self._fetched_at > JWKS_TTL_S
            may_refetch = self._fetched_at is None or now - self._fetched_at >= REFETCH_MIN_S
            if stale or (kid not in self._keys and may_refetch):
                try:
                    await self._fetch_keys()
                except (httpx.HTTPError, ValueError) as exc:
                    logger.warning(
                        "oidc keys not fetched",
                        extra={"fields": {"issuer": self.issuer, "error": type(exc).__name__}},
                    )
                    if not self._keys:
                        raise OidcError("the issuer's keys could not be fetched") from None
            found = self._keys.get(kid)
        if found is None:
            raise OidcError("the token's key is not one of the issuer's signing keys")
        return found

    async def verify(self, token: str) -> Principal:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise OidcError("not a JWT") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self.algorithms:
            raise OidcError(f"algorithm {alg!r} is not allowed")
        if not isinstance(kid, str) or not kid:
            raise OidcError("the token names no key (kid)")
        key = await self.key(kid)
        try:
            payload = jwt.decode(
                token,
                key=key,
                algorithms=[key.algorithm_name],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise OidcError(f"token refused: {type(exc).__name__}") from None
        subject = payload["sub"]
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise OidcError("the token's subject is not a usable name")
        role = role_of(claim(payload, self.role_claim), self.roles)
        return Principal("oidc", subject, role or "")
