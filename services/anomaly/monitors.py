"""Monitors in YAML: validated against the dimension and detector registries when loaded.

```yaml
monitors:
  - name: services                       # the default: one series per provider/account/service
    dimensions: [ProviderName, SubAccountId, ServiceName]
  - name: regions
    dimensions: [RegionId]
    top: 10                              # only the 10 costliest regions of the last 30 days
  - name: data-team-ec2                  # custom: one series of the matching lines
    filters: {ServiceName: AmazonEC2, "tag:team": data}
    params: {threshold: 5, min_impact: 50}
```
"""

from __future__ import annotations

import logging
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.anomaly.detectors import get_detector
from services.anomaly.domain import DEFAULT_MONITOR, Monitor, check_dimension

logger = logging.getLogger(__name__)


class MonitorSpec(BaseModel):
    """One monitor as written in YAML (unknown keys are an error)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="kebab-case name")
    dimensions: list[str] = Field(default_factory=list, description="FOCUS dimensions or tag:KEY")
    filters: dict[str, str] = Field(default_factory=dict, description="dimension -> required value")
    top: int | None = Field(None, ge=1, description="Track only the N costliest values")
    detector: str = Field("robust-seasonal", description="Registered detector name")
    params: dict[str, object] = Field(default_factory=dict, description="Detector parameters")

    @field_validator("dimensions")
    @classmethod
    def _dims(cls, v: list[str]) -> list[str]:
        return [check_dimension(d) for d in v]

    @field_validator("filters")
    @classmethod
    def _filters(cls, v: dict[str, str]) -> dict[str, str]:
        for k in v:
            check_dimension(k)
        return v

    @model_validator(mode="after")
    def _detector(self) -> MonitorSpec:
        entry = get_detector(self.detector)
        entry.params(**self.params)  # unknown or invalid parameters fail here, at load time
        if not self.dimensions and not self.filters:
            raise ValueError(f"monitor {self.name}: give dimensions, filters or both")
        return self

    def to_monitor(self) -> Monitor:
        return Monitor(
            self.name,
            tuple(self.dimensions),
            tuple(sorted(self.filters.items())),
            self.top,
            self.detector,
            tuple(sorted(self.params.items())),
        )

    @classmethod
    def of(cls, m: Monitor) -> MonitorSpec:
        return cls(name=m.name, dimensions=list(m.dimensions), filters=dict(m.filters), top=m.top,
                   detector=m.detector, params=dict(m.params))


class MonitorFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    monitors: list[MonitorSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> MonitorFile:
        names = [m.name for m in self.monitors]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate monitor names: {dupes}")
        return self


def load_monitors(path: Path) -> list[Monitor]:
    """The monitors of a YAML file; the default monitor when the file does not exist."""
    if not path.exists():
        return [DEFAULT_MONITOR]
    data = yaml.safe_load(path.read_text()) or {}
    return [spec.to_monitor() for spec in MonitorFile.model_validate(data).monitors] or [DEFAULT_MONITOR]


def save_monitors(path: Path, monitors: list[Monitor]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"monitors": [MonitorSpec.of(m).model_dump(exclude_defaults=True) | {"name": m.name} for m in monitors]}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


class MonitorSource:
    """The current monitors, re-read when the file changes; a broken edit keeps the last good set."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: float | None = None
        self._monitors: list[Monitor] = [DEFAULT_MONITOR]

    def current(self) -> list[Monitor]:
        stamp = self.path.stat().st_mtime if self.path.exists() else None
        if stamp != self._stamp:
            try:
                self._monitors = load_monitors(self.path)
            except Exception as exc:  # a typo in the file must not stop detection
                logger.error("monitors file rejected, keeping the previous monitors: %s", exc)
            self._stamp = stamp
        return self._monitors
