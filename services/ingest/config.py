"""Settings of the ingest service (environment, prefix FINFOCUS_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from finfocus.settings import ServiceSettings


class IngestSettings(ServiceSettings):
    """What the ingest service watches and serves, on top of the shared settings."""

    service_name: str = "ingest"
    #: a local directory whose new or changed export files are imported (unset: no watcher)
    ingest_watch_dir: Path | None = None
    #: an S3-compatible `s3://bucket/prefix` watched the same way (boto3's standard config)
    ingest_watch_s3: str | None = None
    ingest_watch_interval_s: float = Field(30.0, gt=0)
    #: HTTP intake `POST /v1/billing-records` (host/port; port 0 disables it)
    ingest_http_host: str = "127.0.0.1"
    ingest_http_port: int = 0
    #: largest accepted HTTP body, bytes (413 beyond)
    ingest_http_max_bytes: int = Field(16 * 1024 * 1024, gt=0)
    #: rows per HTTP request (413 beyond)
    ingest_http_max_rows: int = Field(50_000, gt=0)
    #: seconds for a client to send the request line and headers, then the body
    ingest_http_head_timeout_s: float = Field(10.0, gt=0)
    ingest_http_body_timeout_s: float = Field(60.0, gt=0)
    #: open HTTP connections (more are closed with a 503)
    ingest_http_max_connections: int = Field(64, gt=0)
    #: name of the bearer token in the secrets provider
    ingest_token_secret: str = "ingest-token"
    #: seconds an import job's lease lasts without a heartbeat (its process renews it every
    #: third of that); a running job whose lease expired is abandoned
    ingest_job_lease_s: float = Field(60.0, gt=0)
    #: how often the ingest service settles abandoned jobs
    ingest_sweep_interval_s: float = Field(15.0, gt=0)
    #: FINFOCUS_BROKER_EPOCH: set by the embedded stack, new for each broker process; a new
    #: epoch makes the ingest service publish its completed jobs again (unset: never)
    broker_epoch: str | None = None
