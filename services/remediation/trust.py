"""Who may tell remediation what to do: signatures on what the planner publishes and on the
anomalies it plans from (see finfocus/signing.py)."""

from __future__ import annotations

from pathlib import Path

from finfocus.signing import SigningKeys, service_keys, sign
from schemas.topics import Topics

#: remediation signs its commands as this issuer
ISSUER = "remediation"
#: who may publish the anomalies remediation plans from (budget breaches come from forecast)
ANOMALY_ISSUERS = ("anomaly", "forecast")

__all__ = ["ANOMALY_ISSUERS", "ISSUER", "keys_for", "service_keys", "signed_headers"]


def signed_headers(
    keys: SigningKeys, value: bytes, headers: list[tuple[str, bytes]]
) -> list[tuple[str, bytes]]:
    """`headers` plus the planner's signature of one command."""
    return [*headers, sign(keys, ISSUER, Topics.REMEDIATION_COMMANDS, value)]


_KEYS: dict[Path, SigningKeys] = {}


def keys_for(home: Path) -> SigningKeys:
    """The remediation service's keys (its own, and those of the anomaly issuers it verifies)."""
    if home not in _KEYS:
        _KEYS[home] = service_keys(home, (ISSUER, *ANOMALY_ISSUERS))
    return _KEYS[home]
