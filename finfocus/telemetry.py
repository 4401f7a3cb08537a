"""OpenTelemetry tracing and JSON logs that carry trace ids.

One tracer provider per service (`service.name`); OTLP export only when
`OTEL_EXPORTER_OTLP_ENDPOINT` is set, so a laptop run exports nothing.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def make_tracer_provider(
    service_name: str, extra_processors: list[SpanProcessor] | None = None
) -> TracerProvider:
    """A tracer provider for one service, exporting over OTLP/HTTP when an endpoint is configured."""
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    for processor in extra_processors or []:
        provider.add_span_processor(processor)
    return provider


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, with the current trace and span ids when inside a span."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            entry["trace_id"] = format(ctx.trace_id, "032x")
            entry["span_id"] = format(ctx.span_id, "016x")
        for key, value in getattr(record, "fields", {}).items():
            entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(service: str, level: str = "INFO", stream=None) -> None:
    """JSON logs on stderr for a service process; FastStream's per-message logs stay quiet."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLogFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "faststream.access", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def log_fields(**fields: object) -> dict[str, dict[str, object]]:
    """`logger.info("msg", extra=log_fields(rows=3))` adds structured fields to a JSON log line."""
    return {"fields": fields}


_PROPAGATOR = None


def _propagator():
    global _PROPAGATOR
    if _PROPAGATOR is None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        _PROPAGATOR = TraceContextTextMapPropagator()
    return _PROPAGATOR


def context_from_headers(headers: dict[str, bytes]):
    """The trace context a record carries in its `traceparent` header (or an empty one)."""
    carrier = {}
    for name in ("traceparent", "tracestate"):
        value = headers.get(name)
        if value:
            carrier[name] = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    return _propagator().extract(carrier)


def start_record_span(tracer: trace.Tracer, name: str, headers: dict[str, bytes], **attributes):
    """A span for one record, child of the trace that record carries: traces follow records
    through batch consumers, not only through per-message ones."""
    return tracer.start_span(name, context=context_from_headers(headers), attributes=attributes or None)


def trace_headers(span: trace.Span) -> list[tuple[str, bytes]]:
    """`traceparent` (and `tracestate`) headers continuing `span`'s trace in an outgoing record."""
    carrier: dict[str, str] = {}
    _propagator().inject(carrier, context=trace.set_span_in_context(span))
    return [(k, v.encode("ascii")) for k, v in carrier.items()]
