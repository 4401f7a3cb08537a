"""Playbooks: YAML policies that turn anomalies and recommendations into commands.

A playbook is validated against the action registry when it loads: an unknown action, an
unknown parameter or an unknown key anywhere is an error before anything runs.
"""

from __future__ import annotations

import fnmatch
import shutil
from datetime import datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.remediation.actions import KEBAB, validate_params

PACKAGED_DIR = Path(__file__).parent / "playbooks"
SEVERITIES = ("low", "medium", "high", "critical")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnomalyTrigger(_Strict):
    detectors: list[str] | None = Field(None, description="Detector names; any when unset")
    min_severity: Literal["low", "medium", "high", "critical"] = "low"
    dimension: dict[str, str] = Field(default_factory=dict, description="Glob per dimension key")
    min_impact: Decimal | None = Field(
        None,
        allow_inf_nan=False,
        max_digits=38,
        decimal_places=18,
        description="Minimum impact in the anomaly currency",
    )
    min_impact_pct: Decimal | None = Field(
        None, allow_inf_nan=False, max_digits=38, decimal_places=18
    )


class RecommendationTrigger(_Strict):
    types: list[str] = Field(min_length=1, description="Recommendation types, e.g. idle-address")


class Trigger(_Strict):
    anomaly: AnomalyTrigger | None = None
    recommendation: RecommendationTrigger | None = None

    @model_validator(mode="after")
    def _one(self) -> Trigger:
        if (self.anomaly is None) == (self.recommendation is None):
            raise ValueError("a trigger has exactly one of 'anomaly' or 'recommendation'")
        return self


class ResourceFilter(_Strict):
    types: list[str] | None = Field(None, description="Resource kinds (globs), e.g. instance")
    regions: list[str] | None = None
    accounts: list[str] | None = None
    tags: dict[str, str] = Field(default_factory=dict, description="Tags the resource must carry")
    max_targets: int = Field(1, ge=1, le=100, description="Most resources acted on per trigger")


class ActionStep(_Strict):
    action: str
    params: dict = Field(default_factory=dict)

    @field_validator("action")
    @classmethod
    def _kebab(cls, value: str) -> str:
        if not KEBAB.match(value):
            raise ValueError(f"action {value!r} is not a kebab-case name")
        return value

    @model_validator(mode="after")
    def _registered(self) -> ActionStep:
        self.params = validate_params(self.action, self.params).model_dump(exclude_none=True)
        return self


#: longest approval window a playbook may set (90 days): a command waits no longer than this
MAX_EXPIRY_HOURS = 90 * 24
#: most executed actions per account per hour a playbook may allow
MAX_RATE_PER_HOUR = 1000


class Approval(_Strict):
    required: bool = False
    expires_after_hours: float = Field(
        24,
        gt=0,
        le=MAX_EXPIRY_HOURS,
        allow_inf_nan=False,
        description="Approval window from issue time (at most 90 days)",
    )


class RateLimit(_Strict):
    per_account_per_hour: int = Field(
        10, ge=0, le=MAX_RATE_PER_HOUR, description="Executed actions per account per hour"
    )


class Protection(_Strict):
    allow: list[str] = Field(
        default_factory=list, description="Resource id globs that may be acted on"
    )
    deny: list[str] = Field(default_factory=list, description="Resource id globs never acted on")
    tag: str = Field("finfocus:protect=true", description="KEY=VALUE tag that protects a resource")

    @field_validator("tag")
    @classmethod
    def _pair(cls, value: str) -> str:
        if value and "=" not in value:
            raise ValueError("protect tag must be KEY=VALUE")
        return value


class Window(_Strict):
    days: list[Day] = Field(default_factory=lambda: list(DAYS))
    start: time = time(0, 0)
    end: time = time(23, 59, 59)


class Playbook(_Strict):
    """One remediation playbook (see docs/remediation.md for the format)."""

    name: str
    description: str = ""
    enabled: bool = True
    trigger: Trigger
    resources: ResourceFilter = Field(default_factory=ResourceFilter)
    actions: list[ActionStep] = Field(min_length=1)
    mode: Literal["dry-run", "execute"] = "dry-run"
    approval: Approval = Field(default_factory=Approval)
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    protect: Protection = Field(default_factory=Protection)
    schedule: list[Window] = Field(
        default_factory=list, description="UTC windows; always when empty"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not KEBAB.match(value):
            raise ValueError(f"playbook name {value!r} is not kebab-case")
        return value

    @model_validator(mode="after")
    def _execute_says_who_approves(self) -> Playbook:
        # `approval.required` defaults to false: a playbook that acts for real must say so
        # explicitly, so no cloud action ever runs unapproved by an omission
        if self.mode == "execute" and "approval" not in self.model_fields_set:
            raise ValueError(
                "mode: execute needs an explicit approval block "
                "(approval: {required: true}, or {required: false} to act without a person)"
            )
        return self


class PlaybookError(ValueError):
    """A playbook file that does not parse or validate; the message names the file and field."""


def parse_playbook(text: str, source: str = "<playbook>") -> Playbook:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PlaybookError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise PlaybookError(f"{source}: a playbook is a YAML mapping")
    try:
        return Playbook.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise PlaybookError(f"{source}: {problems}") from None


def load_playbook(path: Path) -> Playbook:
    return parse_playbook(path.read_text(), str(path))


def load_playbooks(directory: Path) -> tuple[list[Playbook], list[str]]:
    """Every valid playbook of a directory and the errors of the invalid ones (never run)."""
    found: list[Playbook] = []
    errors: list[str] = []
    names: set[str] = set()
    if not directory.is_dir():
        return found, errors
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        try:
            playbook = load_playbook(path)
        except PlaybookError as exc:
            errors.append(str(exc))
            continue
        if playbook.name in names:
            errors.append(f"{path}: duplicate playbook name {playbook.name!r}")
            continue
        names.add(playbook.name)
        found.append(playbook)
    return found, errors


def install_defaults(directory: Path) -> list[Path]:
    """Copy the packaged example playbooks into `directory` when they are absent there."""
    directory.mkdir(parents=True, exist_ok=True)
    copied = []
    for source in sorted(PACKAGED_DIR.glob("*.yaml")):
        target = directory / source.name
        if not target.exists():
            shutil.copyfile(source, target)
            copied.append(target)
    return copied


# --- matching (pure) ---------------------------------------------------------------------


def glob_any(value: str | None, patterns: list[str] | None) -> bool:
    if not patterns:
        return True
    return value is not None and any(fnmatch.fnmatchcase(value, p) for p in patterns)


def anomaly_matches(
    trigger: AnomalyTrigger,
    *,
    detector: str,
    severity: str,
    dimension: dict[str, str],
    impact: Decimal,
    impact_pct: Decimal | None,
) -> bool:
    if trigger.detectors and detector not in trigger.detectors:
        return False
    if SEVERITIES.index(severity) < SEVERITIES.index(trigger.min_severity):
        return False
    for key, pattern in trigger.dimension.items():
        if not fnmatch.fnmatchcase(dimension.get(key, ""), pattern):
            return False
    if trigger.min_impact is not None and impact < trigger.min_impact:
        return False
    return not (
        trigger.min_impact_pct is not None
        and (impact_pct is None or impact_pct < trigger.min_impact_pct)
    )


def resource_matches(
    flt: ResourceFilter, *, kind: str, region: str | None, account: str | None, tags: dict[str, str]
) -> bool:
    return (
        glob_any(kind, flt.types)
        and glob_any(region, flt.regions)
        and glob_any(account, flt.accounts)
        and all(tags.get(k) == v for k, v in flt.tags.items())
    )


def in_schedule(windows: list[Window], now: datetime) -> bool:
    """True when `now` (UTC) falls in one of the windows, or when there are none."""
    if not windows:
        return True
    day = DAYS[now.weekday()]
    moment = now.time().replace(tzinfo=None)
    return any(day in w.days and w.start <= moment <= w.end for w in windows)
