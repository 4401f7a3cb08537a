"""Fuzz the HTTP intake's body parser: any body gives per-row results or a whole-body refusal
(`BodyError`, a 4xx), never another exception; every row is accounted for exactly once."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.ingest.http import BodyError, IntakeLimits, check_rows
from tests.fuzz.strategies import billing_rows, encode, json_values

LIMITS = IntakeLimits(max_rows=50, max_depth=8)


def check(body: bytes) -> None:
    try:
        records, errors, refused = check_rows(body, LIMITS)
    except BodyError as exc:
        assert 400 <= exc.status < 500 and str(exc)
        return
    assert [e["index"] for e in errors] == [index for index, _, _ in refused]
    assert all(isinstance(raw, bytes) and reason for _, raw, reason in refused)
    assert len({e["index"] for e in errors}) == len(errors)
    assert len(records) + len(errors) <= LIMITS.max_rows
    for record in records:
        assert record.x_RecordId and record.x_BillingScope is None


bodies = st.one_of(
    st.binary(max_size=3000),
    st.lists(st.one_of(billing_rows(scoped=False), json_values), max_size=60).map(
        lambda rows: encode(rows)
    ),
    st.lists(billing_rows(scoped=False), max_size=60).map(
        lambda rows: b"\n".join(encode(r) for r in rows)
    ),
    st.lists(billing_rows(), max_size=5).map(
        lambda rows: b"[" + b",".join(encode(r) for r in rows) + b"]"
    ),
)


@given(bodies)
def test_any_body_is_rows_or_a_4xx(body):
    check(body)


@given(bodies, st.integers(0, 3000), st.binary(max_size=8))
def test_damaged_bodies_are_rows_or_a_4xx(body, at, junk):
    at = min(at, len(body))
    check(body[:at] + junk + body[at + len(junk) :])
