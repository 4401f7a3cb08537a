"""The pure parts of the broker rotation: what is kept, where commits move, the copy's format."""

from __future__ import annotations

import io

import pytest

from finfocus.embedded.rotation import keep_from, moved, read_records, readers, write_record


def test_a_partition_is_kept_from_the_lowest_offset_its_readers_committed():
    assert keep_from(0, [50, 30]) == 30
    assert keep_from(0, [50]) == 50
    # nobody reads it (a dead-letter topic): all of it
    assert keep_from(0, []) == 0
    # a reader that never committed here has read nothing of it
    assert keep_from(0, [50, None]) == 0
    # never before the log's beginning
    assert keep_from(40, [10]) == 40


def test_a_committed_offset_moves_to_the_same_record_in_the_new_numbering():
    kept = [30, 31, 32, 33]
    assert moved(30, kept) == 0  # next to read: old 30, now 0
    assert moved(32, kept) == 2
    assert moved(34, kept) == 4  # at the end, still at the end
    assert moved(0, []) == 0  # everything consumed and dropped
    # a gap in the old offsets (a control record) does not shift a commit past a record
    assert moved(12, [10, 11, 13]) == 2


def test_readers_are_the_groups_with_a_commit_on_the_topic():
    committed = {
        "pricing": {("raw-billing", 0): 5},
        "anomaly": {("priced-resources", 1): 3, ("anomaly-feedback", 0): 0},
        "idle": {},
    }
    assert readers(committed, "priced-resources") == ["anomaly"]
    assert readers(committed, "raw-billing") == ["pricing"]
    assert readers(committed, "priced-resources.dlq") == []


def test_the_copy_keeps_keys_values_headers_and_timestamps():
    out = io.BytesIO()
    records = [
        (0, 1_700_000_000_000, b"k", b"v" * 1000, [("x-finfocus-signature", b"sig"), ("e", b"")]),
        (3, -1, None, None, []),
        (1, 5, b"", b"\x00\xff", [("h", b"\x00")]),
    ]
    for record in records:
        write_record(out, *record)
    out.seek(0)
    assert [tuple(r) for r in read_records(out)] == [
        (p, t, k, v, list(h)) for p, t, k, v, h in records
    ]


def test_a_truncated_copy_is_an_error_not_fewer_records():
    out = io.BytesIO()
    write_record(out, 0, 1, b"key", b"value", [("h", b"1")])
    data = out.getvalue()
    for cut in (3, len(data) - 1):
        with pytest.raises(ValueError, match="truncated"):
            list(read_records(io.BytesIO(data[:cut])))


def _survey(committed, begins, ends):
    from finfocus.embedded.rotation import Survey

    return Survey({t: 1 for t, _ in begins}, committed, begins, ends)


def test_the_consumed_share_is_what_every_reader_of_a_partition_consumed():
    begins = {("raw", 0): 0, ("priced", 0): 100, ("raw.dlq", 0): 0}
    ends = {("raw", 0): 1000, ("priced", 0): 500, ("raw.dlq", 0): 50}
    committed = {
        "pricing": {("raw", 0): 900},
        "anomaly": {("priced", 0): 400},
        "forecast": {("priced", 0): 200},  # the slowest reader of priced holds it
    }
    # dropped: raw 900, priced 100 (from 100 to 200), a dead-letter topic nothing
    # kept: raw 100, priced 300, raw.dlq 50
    assert _survey(committed, begins, ends).consumed_share() == pytest.approx(1000 / 1450)


def test_a_burst_nobody_has_read_yet_is_not_worth_rotating():
    """An import published 5M records in two minutes: a rotation then would copy all of it
    back with every service stopped (measured: 153 s, RSS 1,056 -> 2,878 MB)."""
    begins, ends = {("raw", 0): 0}, {("raw", 0): 3_000_000}
    assert _survey({"pricing": {("raw", 0): 40_000}}, begins, ends).consumed_share() < 0.02
    assert _survey({}, begins, ends).consumed_share() == 0.0
    # Tansu's end offset is short of the last batch: a reader past it consumed it all
    assert _survey({"pricing": {("raw", 0): 3_000_400}}, begins, ends).consumed_share() == 1.0
    assert _survey({}, {}, {}).consumed_share() == 0.0
