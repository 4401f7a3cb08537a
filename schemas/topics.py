"""Topic names and message headers: part of the public contract (ARCHITECTURE.md)."""

from __future__ import annotations


class Topics:
    """Kafka topics exchanged between FinFocus services."""

    RAW_BILLING = "raw-billing"
    PRICED_RESOURCES = "priced-resources"
    ANOMALIES = "anomalies"
    REMEDIATION_COMMANDS = "remediation-commands"
    REMEDIATION_RESULTS = "remediation-results"
    RECOMMENDATIONS = "recommendations"
    FORECASTS = "forecasts"
    RESOURCE_METRICS = "resource-metrics"
    ANOMALY_FEEDBACK = "anomaly-feedback"
    BUDGET_COMMANDS = "budget-commands"
    REMEDIATION_DECISIONS = "remediation-decisions"
    RECOMMENDATION_DECISIONS = "recommendation-decisions"
    MONITOR_COMMANDS = "monitor-commands"
    PLAYBOOK_COMMANDS = "playbook-commands"

    #: the four topics of the contract table; each has a `.dlq` sibling
    CORE = (RAW_BILLING, PRICED_RESOURCES, ANOMALIES, REMEDIATION_COMMANDS)
    EXTRA = (
        REMEDIATION_RESULTS,
        RECOMMENDATIONS,
        FORECASTS,
        RESOURCE_METRICS,
        ANOMALY_FEEDBACK,
        BUDGET_COMMANDS,
        REMEDIATION_DECISIONS,
        RECOMMENDATION_DECISIONS,
        MONITOR_COMMANDS,
        PLAYBOOK_COMMANDS,
    )

    @staticmethod
    def dlq(topic: str) -> str:
        """Dead-letter topic of `topic`: where its consumers park what they cannot process."""
        return f"{topic}.dlq"

    @classmethod
    def all(cls) -> list[str]:
        """Every topic FinFocus creates at bootstrap, dead-letter topics included."""
        names = [*cls.CORE, *cls.EXTRA]
        return names + [cls.dlq(t) for t in cls.CORE]


#: retention FinFocus sets on every topic it creates (Kafka's `retention.ms`, and
#: `retention.bytes` per partition); FINFOCUS_TOPIC_RETENTION_MS / _BYTES override them. A
#: consumer that stays behind by more than this loses what the broker deleted, so the size
#: bound is off (-1) unless set: one large import can put gigabytes on a partition before the
#: consumers catch up. See docs/operations.md ("Broker retention").
DEFAULT_RETENTION_MS = 7 * 24 * 3600 * 1000
DEFAULT_RETENTION_BYTES = -1


def topic_configs(
    retention_ms: int = DEFAULT_RETENTION_MS, retention_bytes: int = DEFAULT_RETENTION_BYTES
) -> dict[str, str]:
    """The configs of a topic FinFocus creates: delete by time and by size (-1: unbounded)."""
    return {
        "cleanup.policy": "delete",
        "retention.ms": str(retention_ms),
        "retention.bytes": str(retention_bytes),
    }


#: header naming the schema of a message value, e.g. "BillingRecord"
SCHEMA_HEADER = "finfocus-schema"
#: header carrying the schema version, e.g. "1"
SCHEMA_VERSION_HEADER = "finfocus-schema-version"


def schema_headers(name: str, version: int = 1) -> dict[str, str]:
    """Headers every FinFocus producer sets (traceparent is added by the telemetry middleware)."""
    return {SCHEMA_HEADER: name, SCHEMA_VERSION_HEADER: str(version)}
