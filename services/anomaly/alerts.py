"""Alert subscriptions: who hears about which anomaly, how, and in what words. No I/O.

```yaml
subscriptions:
  - name: ops-slack
    webhook_secret: ops-slack-webhook   # looked up in the secrets provider (Vault or env)
    format: slack                       # slack, teams or json (the AnomalyV1 itself)
    min_impact: 100                     # money
    min_impact_pct: 20                  # percent
    combine: and                        # and: both thresholds; or: either one
    frequency: immediate                # immediate, or daily (one digest a day)
    digest_hour: 8                      # UTC hour of the daily digest
    severities: [high, critical]        # optional
    monitors: [services]                # optional
```
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class Subscription(BaseModel):
    """One alert subscription (unknown keys are an error)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    webhook_secret: str = Field(min_length=1, description="Secret holding the webhook URL")
    format: str = Field("slack", pattern="^(slack|teams|json)$")
    min_impact: Decimal | None = Field(None, ge=0)
    min_impact_pct: Decimal | None = Field(None, ge=0)
    combine: str = Field("and", pattern="^(and|or)$")
    frequency: str = Field("immediate", pattern="^(immediate|daily)$")
    digest_hour: int = Field(8, ge=0, le=23)
    severities: list[str] | None = None
    monitors: list[str] | None = None

    @model_validator(mode="after")
    def _severities(self) -> Subscription:
        for s in self.severities or []:
            if s not in ("low", "medium", "high", "critical"):
                raise ValueError(f"unknown severity {s!r}")
        return self

    def wants(self, anomaly: dict) -> bool:
        """Whether an anomaly (AnomalyV1 as JSON) passes this subscription's thresholds."""
        if anomaly.get("status") in ("resolved", "acknowledged"):
            return False
        if self.severities and anomaly["severity"] not in self.severities:
            return False
        if self.monitors and anomaly.get("monitor") not in self.monitors:
            return False
        impact = Decimal(anomaly["impact"])
        pct = Decimal(anomaly["impact_pct"]) if anomaly.get("impact_pct") is not None else None
        checks = []
        if self.min_impact is not None:
            checks.append(impact >= self.min_impact)
        if self.min_impact_pct is not None:
            checks.append(pct is None or pct >= self.min_impact_pct)
        if not checks:
            return impact > 0
        return all(checks) if self.combine == "and" else any(checks)

    def due_at(self, now: datetime) -> datetime:
        """When a delivery created `now` is due: now, or the next digest hour."""
        if self.frequency == "immediate":
            return now
        at = now.astimezone(UTC).replace(hour=self.digest_hour, minute=0, second=0, microsecond=0)
        return at if at > now else at + timedelta(days=1)


class SubscriptionFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subscriptions: list[Subscription] = Field(default_factory=list)


def load_subscriptions(path: Path) -> list[Subscription]:
    if not path.exists():
        return []
    return SubscriptionFile.model_validate(yaml.safe_load(path.read_text()) or {}).subscriptions


def _line(a: dict) -> str:
    dim = ", ".join(f"{k}={v}" for k, v in a["dimension"].items())
    pct = f" ({a['impact_pct']} %)" if a.get("impact_pct") is not None else ""
    return (
        f"[{a['severity'].upper()}] {dim}: {a['actual_cost']} {a['currency']} instead of "
        f"{a['expected_cost']}, +{a['impact']}{pct}, {a['window_start'][:10]}..{a['window_end'][:10]} ({a['anomaly_id']})"
    )


def render(fmt: str, anomalies: list[dict]) -> dict:
    """The webhook body for one anomaly or a digest of several."""
    title = (
        "FinFocus cost anomaly"
        if len(anomalies) == 1
        else f"FinFocus daily digest: {len(anomalies)} cost anomalies"
    )
    text = "\n".join(_line(a) for a in anomalies)
    if fmt == "slack":
        return {"text": f"*{title}*\n{text}"}
    if fmt == "teams":
        return {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": title,
            "title": title,
            "text": text.replace("\n", "\n\n"),
        }
    return {"title": title, "anomalies": anomalies}


def backoff(attempts: int, base: float) -> timedelta:
    """Delay before the next attempt: base x 2^(attempts-1), capped at an hour."""
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), 3600))
