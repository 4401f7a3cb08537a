"""OpenTelemetry tracing and JSON logs that carry trace ids.

One tracer provider per service (`service.name`); OTLP export only when
`OTEL_EXPORTER_OTLP_ENDPOINT` is set, so a laptop run exports nothing.
"""

from __future__ import annotations

import json
import logging
import os
import re
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
        elif record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, default=str)


#: an http(s) URL with a path, query or user info: webhook URLs carry their credential there
_URL = re.compile(
    r"(?P<base>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s@'\"<>]*@)?"
    r"(?P<host>[^/\s?#'\"<>]+)(?P<rest>[/?#][^\s'\"<>]*)?"
)
#: `token=...`, `Bearer ...`, `password: ...` and the like outside URLs
_TOKEN = re.compile(
    r"(?i)\b(bearer\s+|(?:token|secret|password|passwd|api[_-]?key|signature|sig|"
    r"access[_-]?key(?:[_-]?id)?|secret[_-]?access[_-]?key)[\"']?\s*[=:]\s*[\"']?)"
    r"[A-Za-z0-9._~+/=-]{6,}"
)
#: words shaped like well-known credentials (Slack, Vault, GitHub, AWS access key ids)
_SECRET_WORD = re.compile(
    r"\b(?:xox[abprs]-[A-Za-z0-9-]+|hvs\.[A-Za-z0-9_-]+|gh[pousr]_[A-Za-z0-9]{20,}|"
    r"AKIA[A-Z0-9]{16})\b"
)
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """`text` with credentials taken out: a URL keeps its scheme and host only (a webhook
    URL's path is its credential), tokens after `token=`/`Bearer` and secret-looking words go.
    Used on every log line and on every error, result or audit text a service stores."""
    if not text:
        return text

    def url(m: re.Match) -> str:
        rest = REDACTED if m.group("rest") else ""
        user = REDACTED + "@" if m.group("userinfo") else ""
        return (
            f"{m.group('base')}{user}{m.group('host')}/{rest}"
            if rest
            else f"{m.group('base')}{user}{m.group('host')}"
        )

    text = _URL.sub(url, text)
    text = _TOKEN.sub(lambda m: m.group(1) + REDACTED, text)
    return _SECRET_WORD.sub(REDACTED, text)


class RedactingFilter(logging.Filter):
    """Redacts every record's message, arguments, structured fields and traceback before any
    handler formats it: no library (httpx logs each request's URL) can leak a credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string still gets logged, redacted
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = redact(message), None
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {k: redact(v) if isinstance(v, str) else v for k, v in fields.items()}
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


#: libraries that log per request (with URLs) or per poll at INFO/DEBUG: warnings only
QUIET_LOGGERS = (
    "aiokafka",
    "faststream.access",
    "asyncio",
    "httpx",
    "httpcore",
    "botocore",
    "boto3",
    "urllib3",
    "s3transfer",
    "hvac",
)


def protect_logging() -> None:
    """Redact every handler of the root logger and quiet the client libraries: for processes
    that set up their own log format (the stack's supervisor)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def configure_logging(service: str, level: str = "INFO", stream=None) -> None:
    """JSON logs on stderr for a service process, every line redacted; FastStream's
    per-message logs and the HTTP/AWS client libraries stay at WARNING."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLogFormatter(service))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in QUIET_LOGGERS:
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
    return tracer.start_span(
        name, context=context_from_headers(headers), attributes=attributes or None
    )


def trace_headers(span: trace.Span) -> list[tuple[str, bytes]]:
    """`traceparent` (and `tracestate`) headers continuing `span`'s trace in an outgoing record."""
    carrier: dict[str, str] = {}
    _propagator().inject(carrier, context=trace.set_span_in_context(span))
    return [(k, v.encode("ascii")) for k, v in carrier.items()]
