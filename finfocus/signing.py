"""Signed messages: the bus is a trust boundary, so a consumer that acts on a message (a
command, a decision, a billing scope) checks who issued it.

Each issuer (`ingest`, `remediation`, `cli`, `api`, ...) holds its own HMAC-SHA256 key from the
secrets provider (`bus-signing/<issuer>`, i.e. `FINFOCUS_SECRET_BUS_SIGNING_<ISSUER>` or Vault's
`secret/finfocus/bus-signing/<issuer>`), falling back to a 0600 key file under
`FINFOCUS_HOME/secrets/` that `finfocus up` creates for the embedded stack. A consumer lists the
issuers it trusts for a topic; a message without a valid signature from one of them is
untrusted: dead-lettered with the reason, never acted on.

The signature covers the issuer, the topic and the exact value bytes, so a signed message cannot
be replayed onto another topic or altered; replays on the same topic are harmless because every
consumer is idempotent on the event's own identity.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets as _random
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from finfocus.secrets import SecretsProvider, secrets_from_environment

try:
    from _hashlib import hmac_new as _c_hmac
except ImportError:  # a Python built without OpenSSL's hashlib
    _c_hmac = None  # type: ignore[assignment]

#: header carrying `v1:<issuer>:<hex digest>`
SIGNATURE_HEADER = "finfocus-signature"
_VERSION = "v1"


class UntrustedMessage(ValueError):
    """A message whose issuer could not be verified; its text is the dead-letter reason."""


def _digest(key: bytes, issuer: str, topic: str, value: bytes) -> str:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    mac.update(f"{_VERSION}\n{issuer}\n{topic}\n".encode())
    mac.update(value)
    return mac.hexdigest()


class SigningKeys:
    """Where issuers' keys come from: the secrets provider first, then the key files of the
    embedded stack. Keys are read once per process."""

    def __init__(self, provider: SecretsProvider | None = None, home: Path | None = None) -> None:
        self._provider = provider if provider is not None else secrets_from_environment()
        self._home = home
        self._cache: dict[str, bytes | None] = {}

    def key_file(self, issuer: str) -> Path | None:
        return None if self._home is None else key_path(self._home, issuer)

    def key(self, issuer: str) -> bytes | None:
        if issuer not in self._cache:
            secret = self._provider.get(f"bus-signing/{issuer}")
            found: bytes | None = secret.reveal().encode() if secret is not None else None
            path = self.key_file(issuer)
            if found is None and path is not None and path.is_file():
                found = path.read_text().strip().encode() or None
            self._cache[issuer] = found
        return self._cache[issuer]


def key_path(home: Path, issuer: str) -> Path:
    """The embedded stack's key file of `issuer`."""
    return home / "secrets" / f"bus-signing-{issuer}.key"


def ensure_key_files(home: Path, issuers: Iterable[str]) -> list[Path]:
    """Create the missing key files (0600, in a 0700 folder); existing keys are kept, so a
    restarted stack still verifies what it signed before."""
    folder = home / "secrets"
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    made = []
    for issuer in issuers:
        path = key_path(home, issuer)
        if path.exists():
            continue
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(_random.token_hex(32))
        made.append(path)
    return made


def sign(keys: SigningKeys, issuer: str, topic: str, value: bytes) -> tuple[str, bytes]:
    """The signature header for `value` sent by `issuer` on `topic`."""
    key = keys.key(issuer)
    if key is None:
        raise RuntimeError(
            f"no signing key for issuer {issuer!r}: set the secret bus-signing/{issuer} "
            "(FINFOCUS_SECRET_BUS_SIGNING_" + issuer.upper().replace("-", "_") + ") "
            "or start the embedded stack, which creates one"
        )
    return SIGNATURE_HEADER, f"{_VERSION}:{issuer}:{_digest(key, issuer, topic, value)}".encode()


def signer(keys: SigningKeys, issuer: str, topic: str) -> Callable[[bytes], tuple[str, bytes]]:
    """`sign` for many values of one issuer on one topic: the key and the issuer/topic prefix
    are hashed once, each value then costs a copy and an update (the same headers as `sign`;
    ingest signs every scoped record it publishes, ~50k a second)."""
    key = keys.key(issuer)
    if key is None:
        sign(keys, issuer, topic, b"")  # raises the same error
    assert key is not None
    prefix = f"{_VERSION}\n{issuer}\n{topic}\n".encode()
    # OpenSSL's own HMAC object where there is one: copy, update and hexdigest all in C
    # (hmac.HMAC.copy builds a Python object per value, half the cost of signing)
    base = (
        _c_hmac(key, prefix, "sha256")
        if _c_hmac is not None
        else hmac.new(key, prefix, hashlib.sha256)
    )
    head = f"{_VERSION}:{issuer}:".encode()

    def sign_one(value: bytes) -> tuple[str, bytes]:
        mac = base.copy()
        mac.update(value)
        return SIGNATURE_HEADER, head + mac.hexdigest().encode()

    return sign_one


def verify(
    keys: SigningKeys,
    headers: Mapping[str, bytes],
    topic: str,
    value: bytes,
    trusted: Iterable[str],
) -> str:
    """The issuer of a message signed by one of `trusted`; `UntrustedMessage` otherwise."""
    raw = headers.get(SIGNATURE_HEADER)
    if raw is None:
        raise UntrustedMessage(
            f"unsigned message on {topic}: only {sorted(trusted)} may publish here"
        )
    try:
        version, issuer, digest = raw.decode("ascii").split(":", 2)
    except (UnicodeDecodeError, ValueError):
        raise UntrustedMessage(f"malformed {SIGNATURE_HEADER} header on {topic}") from None
    allowed = set(trusted)
    if version != _VERSION or issuer not in allowed:
        raise UntrustedMessage(
            f"issuer {issuer!r} may not publish on {topic} (trusted: {sorted(allowed)})"
        )
    key = keys.key(issuer)
    if key is None:
        raise UntrustedMessage(f"no key to verify issuer {issuer!r} on {topic}")
    if not hmac.compare_digest(digest, _digest(key, issuer, topic, value)):
        raise UntrustedMessage(f"bad signature from {issuer!r} on {topic}")
    return issuer


def service_keys(
    home: Path, issuers: Iterable[str], provider: SecretsProvider | None = None
) -> SigningKeys:
    """The keys a service signs and verifies with: the secrets provider's, else the embedded
    stack's key files, created (0600) for those of `issuers` the provider lacks (`finfocus up`
    creates them all first; this covers `finfocus serve` and tests). Call it at start-up, before
    any lookup: `SigningKeys` remembers a missing key for the life of the process."""
    provider = provider if provider is not None else secrets_from_environment()
    missing = [i for i in issuers if provider.get(f"bus-signing/{i}") is None]
    if missing:
        with contextlib.suppress(FileExistsError):  # another process made one at the same moment
            ensure_key_files(home, missing)
    return SigningKeys(provider, home)
