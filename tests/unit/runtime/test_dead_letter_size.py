"""Dead letters always fit: an oversized original is cut (and said so), batches stay small."""

from __future__ import annotations

import asyncio
import json

from finfocus.broker import MAX_DEAD_LETTER_ORIGINAL, dead_letter, publish_dead_letters

PRODUCER_BATCH = 256 * 1024  # finfocus.broker.make_broker's max_batch_size


def test_oversized_original_is_truncated_and_the_error_says_so():
    letter = dead_letter(
        b"x" * 500_000, "invalid Anomaly v1", service="remediation", source_topic="anomalies"
    )
    assert len(letter.original) == MAX_DEAD_LETTER_ORIGINAL
    assert letter.error.startswith("invalid Anomaly v1")
    assert f"truncated to its first {MAX_DEAD_LETTER_ORIGINAL} of 500000 bytes" in letter.error
    small = dead_letter(b"{}", "bad", service="remediation", source_topic="anomalies")
    assert small.original == "{}" and "truncated" not in small.error


def test_dead_letters_are_published_in_batches_that_fit_the_producer_batch():
    class Broker:
        def __init__(self) -> None:
            self.batches: list[list[dict]] = []

        async def publish_batch(self, *bodies, topic, headers):
            self.batches.append(list(bodies))

    broker = Broker()
    letters = [
        dead_letter(
            bytes([0]) * 300_000, "refused", service="remediation", source_topic="anomalies"
        )
        for _ in range(5)
    ]  # NUL bytes: base64 in the letter
    asyncio.run(publish_dead_letters(broker, letters))  # type: ignore[arg-type]
    assert sum(len(b) for b in broker.batches) == 5
    for batch in broker.batches:
        assert len(batch) == 1 or sum(len(json.dumps(x)) for x in batch) < PRODUCER_BATCH
