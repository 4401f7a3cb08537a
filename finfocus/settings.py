"""Configuration from the environment (ARCHITECTURE.md), one class per service on this base.

When `FINFOCUS_KAFKA_BOOTSTRAP` or `FINFOCUS_DATABASE_URL` is unset, the embedded stack's
addresses are read from its state file under `FINFOCUS_HOME`, written by `finfocus up`.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Self

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("ingest", "pricing", "anomaly", "forecast", "remediation", "api")
#: the services that are FastStream apps on the bus (the api is an HTTP service)
STREAM_SERVICES = ("ingest", "pricing", "anomaly", "forecast", "remediation")


class EmbeddedStackNotRunning(RuntimeError):
    """Raised when a service needs the embedded broker or database and `finfocus up` is not running."""


class FinFocusSettings(BaseSettings):
    """Settings every service and the CLI share."""

    model_config = SettingsConfigDict(env_prefix="FINFOCUS_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".finfocus")
    kafka_bootstrap: str | None = None
    database_url: str | None = None
    #: the CLI reader's own LOGIN role (`finfocus_reader`); without it, a given
    #: FINFOCUS_DATABASE_URL is used with `SET ROLE finfocus_reader`
    reader_database_url: str | None = None
    #: Kafka client security (all optional; PLAINTEXT when unset): SASL_SSL with SCRAM in
    #: production, see docs/operations.md
    kafka_security_protocol: str | None = None
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    partitions: int = Field(4, ge=1, description="Partitions per topic at bootstrap")
    #: retention of the topics FinFocus creates (schemas/topics.py; docs/operations.md)
    topic_retention_ms: int = Field(
        7 * 24 * 3600 * 1000, ge=-1, description="retention.ms of new topics"
    )
    topic_retention_bytes: int = Field(
        -1, ge=-1, description="retention.bytes (per partition) of new topics; -1: no size bound"
    )
    #: the embedded broker's RSS above which the stack rotates its log (drops what every
    #: consumer group has consumed: finfocus/embedded/rotation.py); 0: never
    broker_rotate_mb: int = Field(
        1024, ge=0, description="Embedded broker RSS (MB) that triggers a log rotation; 0: off"
    )
    log_level: str = "INFO"
    #: consumer session timeout; the embedded profile uses a short one (group joins take
    #: about half of it on the embedded broker), real clusters keep Kafka's default
    kafka_session_timeout_ms: int | None = None
    kafka_heartbeat_interval_ms: int | None = None
    #: a service's `/metrics`, `/healthz`, `/readyz` (docs/metrics.md); 0 or unset: a free port
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    #: how often a service samples its own tables for the business gauges
    metrics_sample_seconds: float = Field(30.0, gt=0)

    @classmethod
    def extending(cls, settings: FinFocusSettings | None = None) -> Self:
        """A service's settings: from the environment, or on top of shared settings that a
        caller (the CLI, a test) already built, keeping every shared value it holds."""
        if settings is None:
            return cls()
        if isinstance(settings, cls):
            return settings
        return cls(**settings.model_dump())

    def topic_configs(self) -> dict[str, str]:
        """Configs of the topics FinFocus creates (retention by time and by size)."""
        from schemas.topics import topic_configs

        return topic_configs(self.topic_retention_ms, self.topic_retention_bytes)

    @property
    def state_file(self) -> Path:
        """Where `finfocus up` records what it started (addresses, pids)."""
        return self.home / "run" / "stack.json"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    def embedded_state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    @cached_property
    def kafka(self) -> str:
        """Bootstrap servers: the configured cluster, or the running embedded broker."""
        if self.kafka_bootstrap:
            return self.kafka_bootstrap
        found = self.embedded_state().get("kafka_bootstrap")
        if not found:
            raise EmbeddedStackNotRunning(
                "FINFOCUS_KAFKA_BOOTSTRAP is not set and the embedded stack is not running "
                f"(no {self.state_file}); start it with `finfocus up --detach`"
            )
        return found

    @cached_property
    def database(self) -> str:
        """PostgreSQL URL: the configured one, or the running embedded PostgreSQL."""
        if self.database_url:
            return self.database_url
        state = self.embedded_state()
        found = state.get("database_url")
        if found:
            # the admin URL in the state file has no password; its 0600 file has
            return self._with_password(found, state.get("database_password_file"))
        if not found:
            raise EmbeddedStackNotRunning(
                "FINFOCUS_DATABASE_URL is not set and the embedded stack is not running "
                f"(no {self.state_file}); start it with `finfocus up --detach`"
            )
        return found

    def _with_password(self, url: str, password_file: str | None) -> str:
        """`url` with the password kept in `password_file` (0600) put in."""
        if not password_file or "@" not in url:
            return url
        try:
            password = Path(password_file).read_text().strip()
        except OSError:
            return url
        scheme, rest = url.split("://", 1)
        user, host = rest.split("@", 1)
        return f"{scheme}://{user.split(':', 1)[0]}:{password}@{host}"

    def embedded_reader_url(self) -> str | None:
        """The embedded stack's reader URL (`finfocus_reader` and its password), if it has one."""
        state = self.embedded_state()
        url = state.get("reader_url")
        return self._with_password(url, state.get("reader_password_file")) if url else None

    def kafka_security(self) -> dict:
        """aiokafka client options for a secured cluster (empty: PLAINTEXT, the embedded broker)."""
        if not self.kafka_security_protocol:
            return {}
        options: dict = {"security_protocol": self.kafka_security_protocol.upper()}
        if self.kafka_sasl_mechanism:
            options["sasl_mechanism"] = self.kafka_sasl_mechanism.upper()
            options["sasl_plain_username"] = self.kafka_sasl_username
            options["sasl_plain_password"] = self.kafka_sasl_password
        if "SSL" in options["security_protocol"]:
            import ssl

            context = ssl.create_default_context(
                cafile=str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None
            )
            if self.kafka_ssl_certfile:
                context.load_cert_chain(
                    str(self.kafka_ssl_certfile),
                    str(self.kafka_ssl_keyfile) if self.kafka_ssl_keyfile else None,
                )
            options["ssl_context"] = context
        return options

    def faststream_security(self):
        """The same as `kafka_security`, as FastStream's KafkaBroker takes it (None: PLAINTEXT)."""
        options = self.kafka_security()
        if not options:
            return None
        from faststream.security import (
            BaseSecurity,
            SASLPlaintext,
            SASLScram256,
            SASLScram512,
        )

        use_ssl = "SSL" in options["security_protocol"]
        context = options.get("ssl_context")
        mechanism = options.get("sasl_mechanism")
        if mechanism is None:
            return BaseSecurity(ssl_context=context, use_ssl=use_ssl)
        kinds = {
            "SCRAM-SHA-512": SASLScram512,
            "SCRAM-SHA-256": SASLScram256,
            "PLAIN": SASLPlaintext,
        }
        if mechanism not in kinds:
            raise ValueError(
                f"FINFOCUS_KAFKA_SASL_MECHANISM {mechanism!r}: use one of {sorted(kinds)}"
            )
        return kinds[mechanism](
            self.kafka_sasl_username or "",
            self.kafka_sasl_password or "",
            ssl_context=context,
            use_ssl=use_ssl,
        )

    @property
    def is_embedded_broker(self) -> bool:
        return not self.kafka_bootstrap

    def consumer_timeouts(self) -> dict[str, int]:
        """Session/heartbeat for consumer groups: short on the embedded broker, Kafka's defaults otherwise."""
        session = self.kafka_session_timeout_ms
        heartbeat = self.kafka_heartbeat_interval_ms
        if session is None and self.is_embedded_broker:
            session, heartbeat = 1500, heartbeat or 500
        out: dict[str, int] = {}
        if session is not None:
            out["session_timeout_ms"] = session
        if heartbeat is not None:
            out["heartbeat_interval_ms"] = heartbeat
        return out


class ServiceSettings(FinFocusSettings):
    """Base of each service's own settings class (see `services/<name>/app.py`)."""

    service_name: str = "finfocus"


def kafka_client_options() -> dict:
    """aiokafka client options (TLS, SASL) from the environment, for clients made without a
    settings object at hand (producers, the admin client); empty on a PLAINTEXT cluster."""
    return FinFocusSettings().kafka_security()
