"""Fuzz pricing's batch edge: whatever a batch holds, `BatchPricer.process` returns (it never
raises, which would fail and redeliver the whole batch) and every record ends as exactly one
priced line or one dead letter."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider

from finfocus.broker import Envelope
from services.pricing.batch import BatchPricer
from tests.fuzz.strategies import billing_rows, encode, json_values
from tests.fuzz.test_fuzz_contract import wild_rows

records = st.one_of(
    billing_rows(scoped=False).map(encode),
    billing_rows().map(encode),
    wild_rows.map(encode),
    json_values.map(encode),
    st.binary(max_size=300),
)
PRICER = BatchPricer(TracerProvider().get_tracer("fuzz"))


@given(st.lists(records, min_size=1, max_size=20))
def test_every_record_of_a_batch_is_a_line_or_a_dead_letter(values):
    envelopes = [
        Envelope(value=v, key=None, headers={}, topic="raw-billing", partition=0, offset=i)
        for i, v in enumerate(values)
    ]
    outcome = asyncio.run(PRICER.process(envelopes))
    assert len(outcome.lines) + len(outcome.letters) == len(values)
    assert len(outcome.outgoing) == len(outcome.lines) == len(outcome.owners)
    assert all(letter.error for letter in outcome.letters)
