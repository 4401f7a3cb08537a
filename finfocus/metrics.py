"""Prometheus series of the runtime (docs/metrics.md lists every one).

One registry per process (prometheus-client's default, with its process series). Label values
come from code or from bounded columns of the service's own tables, never from message text:
a dead letter's reason is a class (`invalid`, `untrusted`, `refused`, `data_error`), not its
error string. Consumer positions are read from the live pipelines at scrape time, so a scrape
sees the same numbers the health file does.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections import Counter as Tally
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from finfocus import __version__, health

logger = logging.getLogger(__name__)

OUTCOMES = ("stored", "duplicate", "dead_letter", "retried")
REASONS = ("invalid", "untrusted", "refused", "data_error")
#: seconds: one batch (records to commit) takes from milliseconds to minutes under retries
_BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

RECORDS = Counter(
    "finfocus_records_total", "Consumed records by outcome", ["service", "topic", "outcome"]
)
DEAD_LETTERS = Counter(
    "finfocus_dead_letters_total", "Dead letters by reason class", ["service", "topic", "reason"]
)
BATCH_SECONDS = Histogram(
    "finfocus_batch_duration_seconds",
    "One consumed batch from receipt to offsets committed",
    ["service", "topic"],
    buckets=_BATCH_BUCKETS,
)
DB_WRITE_SECONDS = Histogram(
    "finfocus_db_write_duration_seconds",
    "The work's database transaction, per committed attempt",
    ["service", "topic"],
    buckets=_BATCH_BUCKETS,
)
READY = Gauge("finfocus_ready", "1 when the last readiness evaluation was ready", ["service"])
INFO = Gauge(
    "finfocus_service_info", "Always 1: the service and its version", ["service", "version"]
)
PLUGIN_SECONDS = Histogram(
    "finfocus_plugin_call_duration_seconds",
    "One gRPC call to a pricing plugin (each try)",
    ["plugin", "method"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PLUGIN_FAILURES = Counter(
    "finfocus_plugin_failures_total", "Plugin calls that failed after their retries", ["plugin"]
)
PLUGIN_CIRCUIT_OPEN = Gauge(
    "finfocus_plugin_circuit_open", "1 while the plugin's circuit is open", ["plugin"]
)

# -- the consume pipeline's counters ---------------------------------------------------------


def count(service: str, outcome: str, topics: Iterable[str]) -> None:
    """Add one record per topic occurrence to `finfocus_records_total{outcome}`."""
    for topic, n in Tally(topics).items():
        if n:
            RECORDS.labels(service, topic, outcome).inc(n)


def reason_class(error: str) -> str:
    """The bounded class of a dead letter's reason (its text stays in the letter)."""
    text = error.lower()
    if any(
        s in text for s in ("unsigned message", "signature", "may not publish", "no key to verify")
    ):
        return "untrusted"
    if text.startswith("invalid"):
        return "invalid"
    if text.startswith("cannot store record"):
        return "data_error"
    return "refused"


def dead_lettered(service: str, letters: Iterable[Any]) -> None:
    """Count published dead letters (DeadLetterV1) by source topic and reason class."""
    tally: Tally = Tally()
    for letter in letters:
        tally[(letter.source_topic, reason_class(letter.error))] += 1
    for (topic, reason), n in tally.items():
        DEAD_LETTERS.labels(service, topic, reason).inc(n)
        RECORDS.labels(service, topic, "dead_letter").inc(n)


# -- consumer positions, read at scrape time -------------------------------------------------

_runtimes: weakref.WeakSet = weakref.WeakSet()


def watch(runtime: Any) -> None:
    """Expose the consumer positions of `runtime` (a ServiceRuntime) while it lives."""
    _runtimes.add(runtime)
    INFO.labels(runtime.name, __version__).set(1)


def forget(runtime: Any) -> None:
    _runtimes.discard(runtime)


class ConsumerCollector(Collector):
    """Lag, stalled and retrying per partition, and assigned partitions per group."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["service", "group", "topic", "partition"]
        lag = GaugeMetricFamily(
            "finfocus_consumer_lag", "Records not yet committed by the group", labels=labels
        )
        stalled = GaugeMetricFamily(
            "finfocus_consumer_stalled", "1 when the partition is stalled", labels=labels
        )
        retrying = GaugeMetricFamily(
            "finfocus_consumer_retrying", "1 while a transient error is retried", labels=labels
        )
        assigned = GaugeMetricFamily(
            "finfocus_consumer_assigned_partitions",
            "Partitions this process holds",
            labels=["service", "group"],
        )
        now = time.time()
        seen: set[tuple] = set()
        for runtime in list(_runtimes):
            for pipeline in getattr(runtime, "pipelines", []):
                try:
                    runtime._attach(pipeline)
                    parts = pipeline.partitions()
                except Exception:  # noqa: BLE001 - a stopping consumer: nothing to report
                    continue
                key = (runtime.name, pipeline.group)
                if key in seen:
                    continue
                seen.add(key)
                assigned.add_metric(list(key), len(parts))
                for p in parts:
                    values = [runtime.name, p.group, p.topic, str(p.partition)]
                    behind = health.lag(p.committed, p.log_end)
                    if behind is not None:
                        lag.add_metric(values, behind)
                    stalled.add_metric(values, 1 if health.is_stalled(p, now) else 0)
                    retrying.add_metric(values, 1 if p.retrying_since is not None else 0)
        yield from (lag, stalled, retrying, assigned)


# -- values sampled from a service's own tables ----------------------------------------------

#: family -> (help, kind); a sample row naming another family is ignored
SAMPLED: dict[str, tuple[str, str]] = {
    "finfocus_cost_current_month": ("Billed cost in the current UTC month", "gauge"),
    "finfocus_budget_consumption_ratio": (
        "Actual to date / budget amount, current period",
        "gauge",
    ),
    "finfocus_budget_projected_ratio": ("Projected period total / budget amount", "gauge"),
    "finfocus_anomalies": ("Anomalies detected, by severity", "counter"),
    "finfocus_budget_alerts": ("Budget threshold alerts raised", "counter"),
    "finfocus_remediation_commands": ("Remediation commands by status", "gauge"),
    "finfocus_forecast_refits": ("Forecast refits run", "counter"),
    "finfocus_forecast_refit_duration_seconds": ("Duration of the last forecast refit", "gauge"),
    "finfocus_forecast_last_refit_timestamp_seconds": ("When the last refit finished", "gauge"),
    "finfocus_remediation_analysis_duration_seconds": (
        "Duration of the last remediation analysis",
        "gauge",
    ),
    "finfocus_remediation_last_analysis_timestamp_seconds": (
        "When the last remediation analysis finished",
        "gauge",
    ),
    "finfocus_ingest_jobs": ("Import jobs by status", "gauge"),
    "finfocus_ingest_rows": ("Rows of all import jobs by outcome", "counter"),
    "finfocus_ingest_last_job_duration_seconds": (
        "Duration of the last finished import job",
        "gauge",
    ),
    "finfocus_outbox_backlog": ("Rows saved but not yet confirmed published", "gauge"),
}
#: series per family and service at most: label values come from tables, keep them bounded
MAX_SERIES = 200

_samples: dict[str, dict[str, list[tuple[dict[str, str], float]]]] = {}
SAMPLE_ERRORS = Counter(
    "finfocus_sample_errors", "Failed samples of the service's tables", ["service"]
)
SAMPLED_AT = Gauge(
    "finfocus_sample_timestamp_seconds", "When the tables were last sampled", ["service"]
)


def set_samples(service: str, rows: Iterable[tuple[str, dict[str, Any] | None, Any]]) -> None:
    """Replace `service`'s sampled series with rows of (family, labels, value)."""
    families: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family, labels, value in rows:
        if family not in SAMPLED or value is None:
            continue
        series = families.setdefault(family, [])
        if len(series) < MAX_SERIES:
            series.append(({str(k): str(v) for k, v in (labels or {}).items()}, float(value)))
    _samples[service] = families
    SAMPLED_AT.labels(service).set(time.time())


def clear_samples(service: str) -> None:
    _samples.pop(service, None)


class SampleCollector(Collector):
    def collect(self) -> Iterator[Any]:
        for family, (text, kind) in SAMPLED.items():
            rows = [
                (s, labels, v) for s, fams in _samples.items() for labels, v in fams.get(family, [])
            ]
            if not rows:
                continue
            names = sorted({k for _, labels, _ in rows for k in labels})
            make = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            metric = make(family, text, labels=names)
            for _, labels, value in rows:
                metric.add_metric([labels.get(n, "") for n in names], value)
            yield metric


_registered = False


def register_collectors() -> None:
    """Register the scrape-time collectors once per process."""
    global _registered
    if not _registered:
        REGISTRY.register(ConsumerCollector())
        REGISTRY.register(SampleCollector())
        _registered = True


register_collectors()


def exposition() -> tuple[bytes, str]:
    """The registry in Prometheus text format, and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def asgi_app():
    """An ASGI app serving this process's `/metrics` (mount it: `app.mount("/metrics",
    finfocus.metrics.asgi_app())`)."""
    from prometheus_client import make_asgi_app

    return make_asgi_app(REGISTRY)


def mount(app, ready=None) -> None:
    """Add `/metrics`, `/healthz` and `/readyz` to a Starlette or FastAPI app (the api service):
    `finfocus.metrics.mount(app, ready=check)`, `check` an async callable returning
    (ready, reasons); without it `/readyz` answers like `/healthz`."""
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    async def metrics_endpoint(request):
        body, ctype = exposition()
        return Response(body, media_type=ctype)

    async def healthz(request):
        return PlainTextResponse("ok\n")

    async def readyz(request):
        ok, reasons = (True, []) if ready is None else await ready()
        return PlainTextResponse(
            "ready\n" if ok else "\n".join(reasons) + "\n", status_code=200 if ok else 503
        )

    app.router.routes[:0] = [
        Route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False),
        Route("/healthz", healthz, methods=["GET"], include_in_schema=False),
        Route("/readyz", readyz, methods=["GET"], include_in_schema=False),
    ]
