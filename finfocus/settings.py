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

SERVICES = ("ingest", "pricing", "anomaly", "forecast", "remediation")


class EmbeddedStackNotRunning(RuntimeError):
    """Raised when a service needs the embedded broker or database and `finfocus up` is not running."""


class FinFocusSettings(BaseSettings):
    """Settings every service and the CLI share."""

    model_config = SettingsConfigDict(env_prefix="FINFOCUS_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".finfocus")
    kafka_bootstrap: str | None = None
    database_url: str | None = None
    partitions: int = Field(4, ge=1, description="Partitions per topic at bootstrap")
    log_level: str = "INFO"
    #: consumer session timeout; the embedded profile uses a short one (group joins take
    #: about half of it on the embedded broker), real clusters keep Kafka's default
    kafka_session_timeout_ms: int | None = None
    kafka_heartbeat_interval_ms: int | None = None

    @classmethod
    def extending(cls, settings: FinFocusSettings | None = None) -> Self:
        """A service's settings: from the environment, or on top of shared settings that a
        caller (the CLI, a test) already built, keeping every shared value it holds."""
        if settings is None:
            return cls()
        if isinstance(settings, cls):
            return settings
        return cls(**settings.model_dump())

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
        found = self.embedded_state().get("database_url")
        if not found:
            raise EmbeddedStackNotRunning(
                "FINFOCUS_DATABASE_URL is not set and the embedded stack is not running "
                f"(no {self.state_file}); start it with `finfocus up --detach`"
            )
        return found

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
