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


def test_redact_keeps_scheme_and_host_and_drops_what_carries_a_credential():
    from finfocus.telemetry import redact

    hook = "https://hooks.slack.com/services/T000/B000/s3cr3tT0ken?token=abcdef123"
    assert (
        redact(f"Server error for url '{hook}'")
        == "Server error for url 'https://hooks.slack.com/[redacted]'"
    )
    assert "pw" not in redact("postgresql://finfocus:pw@127.0.0.1:5432/db")
    assert redact("Authorization: Bearer eyJhbGciOi.x.y and api_key=AAAABBBBCCCC") == (
        "Authorization: Bearer [redacted] and api_key=[redacted]"
    )
    assert redact("vault hvs.CAESIJ0 and xoxb-1-2-abc and AKIAABCDEFGHIJKLMNOP") == (
        "vault [redacted] and [redacted] and [redacted]"
    )
    # ids that operators need stay readable
    text = (
        "command 9f3c2a1b4d5e6f708192a3b4c5d6e7f8 on i-0123456789abcdef0 at http://127.0.0.1:8770"
    )
    assert redact(text) == text


def test_every_log_line_is_redacted_and_http_client_loggers_are_quiet():
    stream = io.StringIO()
    configure_logging("remediation", "DEBUG", stream=stream)
    try:
        secret = "https://example.test/hook/T0KENVALUE42"
        logging.getLogger("finfocus.test").warning(
            "posting to %s", secret, extra=log_fields(url=secret)
        )
        try:
            raise RuntimeError(f"failed on {secret}")
        except RuntimeError:
            logging.getLogger("finfocus.test").exception("boom")
        logging.getLogger("httpx").info("HTTP Request: POST %s", secret)
        assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
        assert logging.getLogger("botocore").getEffectiveLevel() == logging.WARNING
    finally:
        logging.getLogger().handlers.clear()
    out = stream.getvalue()
    assert "T0KENVALUE42" not in out and out.count("https://example.test/[redacted]") >= 3
    assert "HTTP Request" not in out
