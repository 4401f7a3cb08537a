"""Pure rules of who may do what: roles, token and password hashing, login throttling, CSRF.

No framework here: the FastAPI dependencies in `auth.py` call these, and the unit tests
check them without a socket.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

#: roles in increasing power: each may do what the ones before it may
ROLES = ("viewer", "approver", "admin")
_RANK = {name: i for i, name in enumerate(ROLES)}
#: prefix of API tokens, so a leaked one is recognisable (secret scanners, logs)
TOKEN_PREFIX = "ffk_"

_hasher = PasswordHasher()


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user (console session or CLI) or a token, and its role.

    `actor` is what audits record: `user:<name>` (a console session, or a token that belongs
    to that user), `token:<id>` (a service token) or `oidc:<subject>`.
    """

    kind: str  # "user", "token" or "oidc" (an OIDC subject)
    name: str
    role: str
    csrf_token: str | None = None  # set for console sessions: writes must echo it
    token_id: str | None = None  # the user's token the request came with, for the logs

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.name}"

    def may(self, role: str) -> bool:
        return allows(self.role, role)


def allows(have: str, need: str) -> bool:
    """True when role `have` includes what role `need` may do."""
    if need not in _RANK:
        raise ValueError(f"unknown role {need!r}")
    return have in _RANK and _RANK[have] >= _RANK[need]


def lower_role(a: str, b: str) -> str:
    """The lesser of two roles (a user's token never does more than the user may)."""
    return a if _RANK.get(a, -1) <= _RANK.get(b, -1) else b


def check_role(role: str) -> str:
    if role not in _RANK:
        raise ValueError(f"unknown role {role!r}: use {', '.join(ROLES)}")
    return role


def new_token() -> tuple[str, str]:
    """(public id, secret token): the token is `ffk_<id>_<secret>`; only its hash is kept."""
    token_id = secrets.token_hex(4)
    return token_id, f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


def token_hash(token: str) -> str:
    """sha256 of a token or session cookie: what the database keeps (the value has 256 bits
    of randomness, so a fast hash is enough; passwords get argon2)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_password(password: str) -> str:
    if not password:
        raise ValueError("empty password")
    return _hasher.hash(password)


#: verified against when the user does not exist, so timing does not tell names apart
_DUMMY_HASH = _hasher.hash("finfocus-no-such-user")


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def csrf_ok(expected: str | None, given: str | None) -> bool:
    """A session's write must echo its CSRF token (header X-CSRF-Token or form field)."""
    return bool(expected) and bool(given) and hmac.compare_digest(expected or "", given or "")


class LoginThrottle:
    """Failed logins counted per user name and per client address in a sliding window; once
    either reaches the limit, further attempts are refused until old failures age out."""

    def __init__(self, attempts: int = 5, window_s: float = 300.0, clock=time.monotonic) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        now = self._clock()
        q = self._failures.setdefault(key, deque())
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def blocked(self, user: str, address: str) -> bool:
        return any(
            len(self._recent(k)) >= self.attempts for k in (f"u:{user.lower()}", f"a:{address}")
        )

    def failed(self, user: str, address: str) -> None:
        now = self._clock()
        for key in (f"u:{user.lower()}", f"a:{address}"):
            self._recent(key).append(now)
        if len(self._failures) > 10_000:  # forget quiet keys so memory stays bounded
            for key in [k for k, q in self._failures.items() if not q]:
                del self._failures[key]

    def succeeded(self, user: str) -> None:
        self._failures.pop(f"u:{user.lower()}", None)

    def retry_after(self, user: str, address: str) -> int:
        waits = [
            self.window_s - (self._clock() - q[0])
            for k in (f"u:{user.lower()}", f"a:{address}")
            if len(q := self._recent(k)) >= self.attempts
        ]
        return max(1, int(max(waits, default=0)) + 1)
