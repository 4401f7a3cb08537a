"""Signatures of the anomaly service (see finfocus/signing.py): it signs every anomaly it
publishes, since remediation acts on anomalies, and records a person's feedback only when the
command line (or the API) signed it, with that issuer audited as the actor."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from finfocus.broker import Envelope
from finfocus.signing import SigningKeys, service_keys, sign, verify
from schemas.anomaly import AnomalyFeedbackV1
from schemas.topics import Topics

ISSUER = "anomaly"
#: who may give feedback on anomalies: people, through the command line (or the API)
FEEDBACK_ISSUERS = ("cli", "api")
_KEYS: dict[Path, SigningKeys] = {}

Outgoing = tuple[bytes | None, bytes, list[tuple[str, bytes]]]


def keys_for(home: Path) -> SigningKeys:
    """The anomaly service's keys (its own and the command line's)."""
    if home not in _KEYS:
        _KEYS[home] = service_keys(home, (ISSUER, "cli"))
    return _KEYS[home]


def signed_anomalies(keys: SigningKeys, records: Iterable[Outgoing]) -> list[Outgoing]:
    """Outgoing `anomalies` records, each with the anomaly service's signature."""
    return [(k, v, [*h, sign(keys, ISSUER, Topics.ANOMALIES, v)]) for k, v, h in records]


def feedback_decoder(
    keys: Callable[[], SigningKeys],
) -> Callable[[Envelope], tuple[AnomalyFeedbackV1, str]]:
    """Decodes an `anomaly-feedback` record to (feedback, actor); an unsigned or forged one
    raises (the pipeline dead-letters it with the reason) and changes nothing."""

    def decode(env: Envelope) -> tuple[AnomalyFeedbackV1, str]:
        issuer = verify(keys(), env.headers, env.topic, env.value, FEEDBACK_ISSUERS)
        feedback = AnomalyFeedbackV1.model_validate_json(env.value)
        # the person the signing issuer (the api) authenticated, when it names one
        return feedback, f"{issuer}:{feedback.actor}" if feedback.actor else issuer

    return decode
