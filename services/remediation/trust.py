"""Who may tell remediation what to do: signatures on what the planner publishes and on the
anomalies it plans from (see finfocus/signing.py)."""

from __future__ import annotations

from pathlib import Path

from finfocus.broker import Envelope, envelope_dead_letter
from finfocus.signing import SigningKeys, UntrustedMessage, service_keys, sign, verify
from schemas.deadletter import DeadLetterV1
from schemas.topics import Topics

#: remediation signs its commands as this issuer
ISSUER = "remediation"
#: who may publish the anomalies remediation plans from (budget breaches come from forecast)
ANOMALY_ISSUERS = ("anomaly", "forecast")

__all__ = ["ANOMALY_ISSUERS", "ISSUER", "keys_for", "service_keys", "signed_headers", "trusted_anomalies"]


def signed_headers(keys: SigningKeys, value: bytes, headers: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """`headers` plus the planner's signature of one command."""
    return [*headers, sign(keys, ISSUER, Topics.REMEDIATION_COMMANDS, value)]


def trusted_anomalies(keys: SigningKeys, envs: list[Envelope], *, service: str) -> tuple[list[Envelope], list[DeadLetterV1]]:
    """The anomalies signed by the anomaly or forecast service; the others as dead letters
    (a forged anomaly naming any resource must never reach a playbook)."""
    good, letters = [], []
    for env in envs:
        try:
            verify(keys, env.headers, env.topic, env.value, ANOMALY_ISSUERS)
        except UntrustedMessage as exc:
            letters.append(envelope_dead_letter(env, str(exc), service=service))
            continue
        good.append(env)
    return good, letters


_KEYS: dict[Path, SigningKeys] = {}


def keys_for(home: Path) -> SigningKeys:
    """The remediation service's keys (its own, and those of the anomaly issuers it verifies)."""
    if home not in _KEYS:
        _KEYS[home] = service_keys(home, (ISSUER, *ANOMALY_ISSUERS))
    return _KEYS[home]
