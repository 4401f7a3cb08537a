"""The quiescent point the stack passes as FINFOCUS_BROKER_RECOVER_SINCE after a broker loss."""

from finfocus.embedded.health import quiescent_moment


def report(at: str, *lags: int) -> dict:
    return {
        "updated_at": at,
        "consumers": [
            {"group": "g", "topic": "t", "partition": p, "lag": lag} for p, lag in enumerate(lags)
        ],
    }


def test_quiescent_when_every_consumer_of_every_service_has_lag_zero_at_the_earliest_report():
    reports = {
        "pricing": report("2026-12-02T15:00:02+00:00", 0, 0),
        "anomaly": report("2026-12-02T15:00:01+00:00", 0),
        "api": report("2026-12-02T15:00:03+00:00"),  # no consumers
    }
    assert quiescent_moment(reports) == "2026-12-02T15:00:01+00:00"


def test_not_quiescent_while_any_partition_lags_or_a_service_has_not_reported():
    assert quiescent_moment({"pricing": report("2026-12-02T15:00:02+00:00", 0, 3)}) is None
    assert (
        quiescent_moment({"pricing": report("2026-12-02T15:00:02+00:00", 0), "anomaly": None})
        is None
    )
    # a lag not known yet is not zero
    assert (
        quiescent_moment(
            {"pricing": {"updated_at": "2026-12-02T15:00:02+00:00", "consumers": [{"lag": None}]}}
        )
        is None
    )
