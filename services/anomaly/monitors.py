"""Monitors: validated against the dimension and detector registries, stored by the anomaly
service (`anomaly.monitors`, view `v_monitors`) and changed only by MonitorCommand v1 events
(`monitor-commands`, signed by the api or the command line; see monitor_commands.py).

The YAML form below is what a MonitorCommand's `monitor` carries (minus the name) and what the
first start imports once from `FINFOCUS_HOME/anomaly/monitors.yaml` (or
`FINFOCUS_ANOMALY_MONITORS_FILE`), audited as actor `file`; without that file the default
monitor is imported. After that import the file is not read again.

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

import asyncio
import logging
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from finfocus.periodic import Periodic
from schemas.monitors import MonitorAction, MonitorCommandV1
from services.anomaly import store
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
        return cls(
            name=m.name,
            dimensions=list(m.dimensions),
            filters=dict(m.filters),
            top=m.top,
            detector=m.detector,
            params=dict(m.params),
        )


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
    return [spec.to_monitor() for spec in MonitorFile.model_validate(data).monitors] or [
        DEFAULT_MONITOR
    ]


def spec_of(m: Monitor) -> dict[str, Any]:
    """The stored form of a monitor: its YAML entry without the name (JSON-safe)."""
    return MonitorSpec.of(m).model_dump(mode="json", exclude={"name"})


def monitor_of(name: str, spec: dict[str, Any]) -> Monitor:
    return MonitorSpec.model_validate({**spec, "name": name}).to_monitor()


def decide(
    current: dict[str, dict], command: MonitorCommandV1
) -> tuple[str, str | None, dict | None]:
    """(outcome, detail, the spec to store) of a monitor command against the stored monitors:
    `applied`, `unchanged` (nothing to do: a repeat) or `refused` (with the reason). Pure."""
    if command.action == MonitorAction.REMOVE:
        if command.name not in current:
            return "unchanged", f"no monitor {command.name}", None
        if len(current) == 1:
            return "refused", "the last monitor cannot be removed: add another one first", None
        return "applied", None, None
    assert command.monitor is not None  # the contract requires it for set
    try:
        spec = spec_of(monitor_of(command.name, command.monitor.model_dump(mode="json")))
    except (ValueError, KeyError) as exc:  # pydantic's ValidationError is a ValueError
        return "refused", str(exc)[:2000], None
    if current.get(command.name) == spec:
        return "unchanged", "the monitor is already so", spec
    return "applied", None, spec


class MonitorRegistry:
    """The monitors in effect, as the detectors read them (synchronously, per batch): loaded
    from `anomaly.monitors` at start and after every applied monitor command, and polled so
    a change applied by another replica is seen within `poll_s`. Until the first load (the
    moment between the broker's start and the start hook) it holds the file's monitors."""

    def __init__(self, path: Path, poll_s: float = 10.0) -> None:
        self.path = path
        self.poll_s = poll_s
        self._monitors: list[Monitor] = [DEFAULT_MONITOR]
        try:
            self._monitors = load_monitors(path)
        except Exception as exc:  # noqa: BLE001 - a broken file must not stop the service
            logger.error("monitors file %s rejected: %s", path, exc)
        self._imported = False
        self._lock = asyncio.Lock()
        self._poller: Periodic | None = None

    def current(self) -> list[Monitor]:
        return self._monitors

    async def _import(self, conn: asyncpg.Connection) -> None:
        """The one-time import of the file (or the default monitor) into the table."""
        async with conn.transaction():
            if await store.monitors_imported(conn):
                return
            try:
                found, source = load_monitors(self.path), str(self.path)
            except Exception as exc:  # noqa: BLE001 - the default instead of a broken file
                logger.error(
                    "monitors file %s rejected, importing the default monitor: %s", self.path, exc
                )
                found, source = [DEFAULT_MONITOR], "default"
            if not self.path.exists():
                source = "default"
            if await store.import_monitors(conn, source, {m.name: spec_of(m) for m in found}):
                logger.info(
                    "monitors imported",
                    extra={"fields": {"source": source, "monitors": len(found)}},
                )

    async def refresh(self, pool: asyncpg.Pool) -> list[Monitor]:
        """Import once if never done, then load the stored monitors (a row that no longer
        validates, e.g. its detector was removed, is skipped with an error in the log)."""
        async with self._lock, pool.acquire() as conn:
            if not self._imported:
                await self._import(conn)
                self._imported = True
            specs = await store.monitor_specs(conn)
        monitors = []
        for name, spec in specs.items():
            try:
                monitors.append(monitor_of(name, spec))
            except ValueError as exc:
                logger.error("stored monitor %s skipped: %s", name, exc)
        self._monitors = monitors or [DEFAULT_MONITOR]
        return self._monitors

    def start(self, pool_of) -> None:
        """Poll the table every `poll_s` (changes applied by another replica)."""
        if self._poller is None:
            self._poller = Periodic(
                "anomaly-monitors", self.poll_s, lambda: self.refresh(pool_of()), "monitors"
            )
        self._poller.start()

    async def stop(self) -> None:
        if self._poller is not None:
            await self._poller.stop()
