"""The runtime's Prometheus series and the readiness rule (no broker, no database)."""

from __future__ import annotations

import json

import asyncpg
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from finfocus import metrics
from finfocus.broker import Envelope
from finfocus.consume import Done, InMemoryUnitOfWork, Pipeline, RetryPolicy
from finfocus.health import PartitionHealth
from finfocus.probes import Facts, ProbeServer, readiness


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def envelopes(*values: bytes, topic: str, first: int = 0) -> list[Envelope]:
    return [
        Envelope(value=v, key=b"k", headers={}, topic=topic, partition=0, offset=first + i)
        for i, v in enumerate(values)
    ]


class Consumer:
    async def commit(self, offsets) -> None:
        pass


def pipeline(work, service: str) -> Pipeline:
    async def publish(topic, recs):
        pass

    async def publish_letters(items):
        pass

    p = Pipeline(
        service=service,
        group="g",
        uow=InMemoryUnitOfWork(),
        work=work,
        publish=publish,
        publish_letters=publish_letters,
        decode=lambda env: json.loads(env.value),
        label="thing",
        retry=RetryPolicy(base_s=0.001, cap_s=0.002, max_failures=2),
    )
    p.consumer = Consumer()
    return p


async def test_stored_dead_lettered_and_refused_records_are_counted_by_outcome_and_reason():
    async def work(tx, items):
        return Done(
            refused={i: "negative amount" for i, item in enumerate(items) if item.get("bad")}
        )

    p = pipeline(work, "svc-outcomes")
    await p.handle(envelopes(b'{"a": 1}', b"not json", b'{"bad": true}', b'{"a": 2}', topic="t1"))
    assert (
        value("finfocus_records_total", service="svc-outcomes", topic="t1", outcome="stored") == 2
    )
    assert (
        value("finfocus_records_total", service="svc-outcomes", topic="t1", outcome="dead_letter")
        == 2
    )
    assert (
        value("finfocus_dead_letters_total", service="svc-outcomes", topic="t1", reason="invalid")
        == 1
    )
    assert (
        value("finfocus_dead_letters_total", service="svc-outcomes", topic="t1", reason="refused")
        == 1
    )
    assert value("finfocus_batch_duration_seconds_count", service="svc-outcomes", topic="t1") == 1
    assert (
        value("finfocus_db_write_duration_seconds_count", service="svc-outcomes", topic="t1") == 1
    )


async def test_redelivered_records_below_the_committed_offset_count_as_duplicates():
    async def work(tx, items):
        return None

    p = pipeline(work, "svc-dups")
    await p.handle(envelopes(b"{}", b"{}", b"{}", topic="t2"))
    await p.handle(envelopes(b"{}", b"{}", b"{}", b"{}", topic="t2"))  # offsets 0-2 again, and 3
    assert value("finfocus_records_total", service="svc-dups", topic="t2", outcome="duplicate") == 3
    assert value("finfocus_records_total", service="svc-dups", topic="t2", outcome="stored") == 4


async def test_records_of_a_batch_retried_after_a_transient_error_count_as_retried():
    calls = {"n": 0}

    async def work(tx, items):
        calls["n"] += 1
        if calls["n"] == 1:
            raise asyncpg.exceptions.CannotConnectNowError("starting up")
        return None

    p = pipeline(work, "svc-retry")
    await p.handle(envelopes(b"{}", b"{}", topic="t3"))
    assert value("finfocus_records_total", service="svc-retry", topic="t3", outcome="retried") == 2
    assert value("finfocus_records_total", service="svc-retry", topic="t3", outcome="stored") == 2


async def test_database_refusal_is_dead_lettered_as_data_error():
    async def work(tx, items):
        if any(i.get("nul") for i in items):
            raise asyncpg.DataError("invalid byte sequence")
        return None

    p = pipeline(work, "svc-data")
    await p.handle(envelopes(b'{"nul": 1}', b"{}", topic="t4"))
    assert (
        value("finfocus_dead_letters_total", service="svc-data", topic="t4", reason="data_error")
        == 1
    )
    assert value("finfocus_records_total", service="svc-data", topic="t4", outcome="stored") == 1


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ("invalid PricedRecord: 1 validation error", "invalid"),
        ("invalid Decision: unsigned message on t: only ['cli'] may publish here", "untrusted"),
        ("invalid Decision: bad signature from 'cli' on t", "untrusted"),
        ("cannot store record: DataError: value too long", "data_error"),
        ("negative amount", "refused"),
    ],
)
def test_dead_letter_reasons_are_a_bounded_class_not_the_text(error, reason):
    assert metrics.reason_class(error) == reason


class Runtime:
    """What the consumer collector reads of a ServiceRuntime."""

    def __init__(self, name: str, pipelines: list) -> None:
        self.name = name
        self.pipelines = pipelines

    def _attach(self, pipeline) -> None:
        pass


def test_consumer_lag_stalled_and_assignment_are_read_from_the_pipelines_at_scrape_time():
    async def work(tx, items):
        return None

    p = pipeline(work, "svc-lag")
    p.consumer = None
    p.health[("t5", 0)] = PartitionHealth("g", "t5", 0, committed=10, log_end=25)
    p.health[("t5", 1)] = PartitionHealth("g", "t5", 1, committed=3, log_end=3, paused=True)
    runtime = Runtime("svc-lag", [p])
    metrics.watch(runtime)
    try:
        labels = {"service": "svc-lag", "group": "g", "topic": "t5"}
        assert value("finfocus_consumer_lag", **labels, partition="0") == 15
        assert value("finfocus_consumer_lag", **labels, partition="1") == 0
        assert value("finfocus_consumer_stalled", **labels, partition="1") == 1
        assert value("finfocus_consumer_stalled", **labels, partition="0") == 0
        assert value("finfocus_consumer_assigned_partitions", service="svc-lag", group="g") == 2
        assert value("finfocus_service_info", service="svc-lag", version=metrics.__version__) == 1
    finally:
        metrics.forget(runtime)
    assert REGISTRY.get_sample_value("finfocus_consumer_lag", {**labels, "partition": "0"}) is None


def test_sampled_rows_become_series_of_known_families_only_and_bounded():
    metrics.set_samples(
        "svc-sample",
        [
            ("finfocus_cost_current_month", {"provider": "AWS", "currency": "USD"}, 1234.5),
            ("finfocus_anomalies", {"severity": "high"}, 3),
            ("finfocus_made_up", {"x": "y"}, 1),
            *[
                ("finfocus_budget_consumption_ratio", {"budget": f"b{i}", "currency": "EUR"}, 0.5)
                for i in range(metrics.MAX_SERIES + 50)
            ],
        ],
    )
    try:
        assert value("finfocus_cost_current_month", provider="AWS", currency="USD") == 1234.5
        assert value("finfocus_anomalies_total", severity="high") == 3
        assert REGISTRY.get_sample_value("finfocus_made_up", {"x": "y"}) is None
        text = metrics.exposition()[0].decode()
        ratios = [
            s
            for f in text_string_to_metric_families(text)
            if f.name == "finfocus_budget_consumption_ratio"
            for s in f.samples
        ]
        assert len(ratios) == metrics.MAX_SERIES
    finally:
        metrics.clear_samples("svc-sample")
    assert (
        REGISTRY.get_sample_value(
            "finfocus_cost_current_month", {"provider": "AWS", "currency": "USD"}
        )
        is None
    )


def test_ready_only_when_running_reachable_assigned_and_not_stalled():
    assert readiness(Facts(phase="running", assigned={"g": 4})) == (True, [])
    ok, reasons = readiness(Facts(phase="starting"))
    assert not ok and reasons == ["service is starting"]
    ok, reasons = readiness(
        Facts(
            phase="running",
            database="ConnectionRefusedError",
            broker="no answer",
            assigned={"g": 0, "h": None, "k": 2},
            stalled=["t[1] (g)"],
        )
    )
    assert not ok
    assert reasons == [
        "database unreachable: ConnectionRefusedError",
        "broker unreachable: no answer",
        "no partitions assigned to g",
        "no partitions assigned to h",
        "consumer stalled: t[1] (g)",
    ]


async def test_probe_routes_answer_health_readiness_with_reasons_and_metrics():
    state = {"ready": False}

    async def check():
        return readiness(
            Facts(phase="running", database=None if state["ready"] else "ConnectionRefusedError")
        )

    server = ProbeServer("svc-probe", check)  # routes only: the socket is the integration test's
    assert (await server._route("GET", "/healthz"))[:2] == ("200 OK", b"ok\n")
    status, body, _ = await server._route("GET", "/readyz")
    assert status.startswith("503") and b"database unreachable: ConnectionRefusedError" in body
    state["ready"] = True
    server._last = None  # past the one-second cache
    assert (await server._route("GET", "/readyz"))[:2] == ("200 OK", b"ready\n")
    status, body, ctype = await server._route("GET", "/metrics")
    assert (
        status == "200 OK"
        and b'finfocus_ready{service="svc-probe"} 1.0' in body
        and ctype.startswith("text/plain")
    )
    assert (await server._route("GET", "/nope"))[0].startswith("404")
    assert (await server._route("POST", "/metrics"))[0].startswith("405")


def test_mount_gives_an_asgi_app_metrics_health_and_readiness():
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    app = Starlette()

    async def ready():
        return False, ["database unreachable: OSError"]

    metrics.mount(app, ready=ready)
    client = TestClient(app)
    response = client.get("/metrics")
    assert response.status_code == 200 and "finfocus_records_total" in response.text
    assert client.get("/healthz").text == "ok\n"
    response = client.get("/readyz")
    assert response.status_code == 503 and "database unreachable" in response.text


async def test_runtime_facts_name_the_broker_the_database_and_unassigned_groups(
    tmp_path, monkeypatch
):
    from finfocus.service import ServiceRuntime
    from finfocus.settings import FinFocusSettings

    settings = FinFocusSettings(
        home=tmp_path, kafka_bootstrap="127.0.0.1:1", database_url="postgresql://x@127.0.0.1:1/x"
    )
    runtime = ServiceRuntime("svc_facts", settings)

    async def work(tx, items):
        return None

    runtime.consume("t", group="g-facts", work=work, decode=lambda env: env.value)

    async def refused(*args, **kwargs):
        raise ConnectionRefusedError("no database here")

    monkeypatch.setattr(asyncpg, "connect", refused)  # no socket in a unit test
    assert await runtime.ready() == (False, ["service is starting"])
    runtime.phase = "running"

    async def no_answer(timeout=None):
        return False

    runtime.broker.ping = no_answer  # type: ignore[method-assign]
    ok, reasons = await runtime.ready()
    assert not ok
    assert reasons[0] == "database unreachable: ConnectionRefusedError"
    assert reasons[1:] == ["broker unreachable: no answer", "no partitions assigned to g-facts"]
