"""Telemetry helpers: JSON logs with trace ids, and trace context carried per record."""

from __future__ import annotations

import io
import json
import logging

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from finfocus.telemetry import (
    configure_logging,
    log_fields,
    make_tracer_provider,
    start_record_span,
    trace_headers,
)


def test_json_logs_carry_service_fields_and_the_current_trace_id():
    stream = io.StringIO()
    configure_logging("pricing", "INFO", stream=stream)
    provider = make_tracer_provider("finfocus-pricing")
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("work") as span:
        logging.getLogger("finfocus.test").info("priced", extra=log_fields(rows=3))
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["service"] == "pricing" and line["msg"] == "priced" and line["rows"] == 3
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    logging.getLogger().handlers.clear()


def test_record_spans_continue_the_trace_each_record_carries():
    exporter = InMemorySpanExporter()
    provider = make_tracer_provider("finfocus-test", [SimpleSpanProcessor(exporter)])
    tracer = provider.get_tracer("t")
    upstream = tracer.start_span("ingest.publish")
    headers = dict(trace_headers(upstream))
    upstream.end()
    child = start_record_span(tracer, "pricing.price", headers)
    child.end()
    orphan = start_record_span(tracer, "pricing.price", {})
    orphan.end()
    spans = {s.name + str(i): s for i, s in enumerate(exporter.get_finished_spans())}
    ids = [s.context.trace_id for s in spans.values()]
    assert ids[0] == ids[1] != ids[2]
    assert list(spans.values())[1].parent.span_id == upstream.get_span_context().span_id
    assert headers["traceparent"].startswith(b"00-")


def test_no_exporter_is_configured_without_an_otlp_endpoint(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    provider = make_tracer_provider("finfocus-x")
    assert provider._active_span_processor._span_processors == ()
    assert provider.resource.attributes["service.name"] == "finfocus-x"
