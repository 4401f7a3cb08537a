"""Pricing's re-publication after a broker loss: which lines, when the epoch is recorded."""

import asyncio
from datetime import UTC, datetime

import pytest
from opentelemetry.sdk.trace import TracerProvider

from schemas.topics import Topics
from services.pricing.recovery import MARGIN, recover_broker


class Store:
    """In-memory stand-in of the PricingStore methods the recovery uses."""

    def __init__(self, lines, epoch=None, fail_after=None):
        self.lines, self.epoch, self.fail_after = lines, epoch, fail_after
        self.recoveries: list[dict] = []
        self.asked_since = None

    async def last_epoch(self):
        return self.epoch

    async def record_epoch(self, epoch):
        self.epoch = epoch

    async def start_recovery(self, epoch, since):
        self.recoveries.append({"epoch": epoch, "since": since, "rows": 0, "state": "running"})
        return len(self.recoveries) - 1

    async def recovery_progress(self, rid, rows, state="running", error=None):
        self.recoveries[rid].update(rows=rows, state=state, error=error)

    async def lines_stored_since(self, since, batch):
        self.asked_since = since
        for n, start in enumerate(range(0, len(self.lines), batch)):
            if self.fail_after is not None and n >= self.fail_after:
                raise ConnectionError("database went away")
            yield self.lines[start : start + batch]


class Publisher:
    def __init__(self):
        self.sent = []

    async def publish_batched(self, topic, records):
        self.sent += [(topic, *r) for r in records]
        return len(records)


TRACER = TracerProvider().get_tracer("test")
SINCE = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
LINES = [(f"aws:{i % 3}", f'{{"x_RecordId": "r{i}"}}') for i in range(12001)]


def test_every_line_stored_since_the_window_goes_out_as_a_priced_record_then_the_epoch_is_recorded():
    store, publisher = Store(LINES, epoch="1"), Publisher()
    done = asyncio.run(recover_broker(store, publisher, TRACER, "2", SINCE))
    assert done == {"epoch": "2", "rows": 12001}
    assert store.asked_since == SINCE - MARGIN
    assert [(t, k.decode(), v.decode()) for t, k, v, _ in publisher.sent] == [
        (Topics.PRICED_RESOURCES, k, v) for k, v in LINES
    ]
    headers = dict(publisher.sent[0][3])
    assert headers["finfocus-schema"] == b"PricedRecord" and b"-" in headers["traceparent"]
    assert store.epoch == "2" and store.recoveries[-1]["state"] == "completed"


def test_a_recorded_epoch_or_a_stack_start_publishes_nothing():
    store, publisher = Store(LINES, epoch="2"), Publisher()
    assert asyncio.run(recover_broker(store, publisher, TRACER, "2", SINCE)) is None
    store = Store(LINES, epoch="1")
    assert asyncio.run(recover_broker(store, publisher, TRACER, "2", None)) is None
    assert publisher.sent == [] and store.epoch == "2" and store.recoveries == []


def test_a_failed_recovery_leaves_the_epoch_unrecorded_so_the_next_start_tries_again():
    store = Store(LINES, epoch="1", fail_after=1)
    with pytest.raises(ConnectionError):
        asyncio.run(recover_broker(store, Publisher(), TRACER, "2", SINCE))
    assert store.epoch == "1"
    assert store.recoveries[-1]["state"] == "failed" and store.recoveries[-1]["rows"] == 5000
