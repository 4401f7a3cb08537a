"""Handlers validate each record of a batch on its own: a bad one becomes a dead letter."""

from __future__ import annotations

from finfocus.broker import Envelope, parse_envelopes
from schemas.anomaly import AnomalyFeedbackV1


def envelope(value: bytes, offset: int) -> Envelope:
    return Envelope(
        value=value, key=b"k", headers={}, topic="anomaly-feedback", partition=1, offset=offset
    )


def test_valid_records_are_parsed_and_invalid_ones_dead_lettered_with_their_origin():
    good = b'{"anomaly_id": "a1", "verdict": "no", "given_at": "2026-11-01T00:00:00Z"}'
    parsed, letters = parse_envelopes(
        [envelope(good, 7), envelope(b"not json", 8), envelope(b'{"anomaly_id": "a2"}', 9)],
        AnomalyFeedbackV1,
        service="anomaly",
        label="feedback",
    )
    assert [(m.anomaly_id, env.offset) for m, env in parsed] == [("a1", 7)]
    assert [(d.source_offset, d.source_partition, d.service) for d in letters] == [
        (8, 1, "anomaly"),
        (9, 1, "anomaly"),
    ]
    assert all(d.error.startswith("invalid feedback: ") for d in letters)
    assert letters[0].original == "not json"
