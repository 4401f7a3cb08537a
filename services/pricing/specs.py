"""YAML price specs: one file per provider/service/SKU with a unit price and its currency.

Schema (unknown keys are errors)::

    provider: AWS                 # ProviderName, case-insensitive
    service: AmazonEC2            # ServiceName (or the projected-cost service key)
    sku: t3.micro                 # optional: SkuId or ResourceType; absent = service default
    region: us-east-1             # optional: absent = any region
    unit: Hrs                     # unit the price is quoted in
    price: "0.0104"               # decimal string (numbers accepted), price per unit
    currency: USD                 # ISO 4217
    description: ...              # optional

A file may also hold `prices: [ {...}, ... ]` with the same keys, for several SKUs of one
service. Lookup: exact SKU (region, then any region), then the service default, then nothing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.currencies import is_iso_4217
from services.pricing.domain import PriceSpec, SpecBook


class PriceSpecFile(BaseModel):
    """One price entry of a spec file."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field(
        min_length=1, description="ProviderName, e.g. AWS, Microsoft, Google Cloud"
    )
    service: str = Field(min_length=1, description="ServiceName the price applies to")
    sku: str | None = Field(None, description="SkuId or ResourceType; absent = service default")
    region: str | None = Field(None, description="RegionId; absent = any region")
    unit: str = Field(min_length=1, description="Unit of the price, e.g. Hrs, GB-Mo")
    price: Decimal = Field(description="Price per unit (decimal string)")
    currency: str = Field(description="ISO 4217 currency of the price")
    description: str | None = Field(None, description="Free text")

    @field_validator("price", mode="before")
    @classmethod
    def _decimal(cls, value: object) -> object:
        if isinstance(value, float):
            return repr(value)
        return value

    @field_validator("price")
    @classmethod
    def _non_negative(cls, value: Decimal) -> Decimal:
        if not value.is_finite() or value < 0:
            raise ValueError("price must be a finite, non-negative decimal")
        return value

    @field_validator("currency")
    @classmethod
    def _iso(cls, value: str) -> str:
        if not is_iso_4217(value):
            raise ValueError(f"unknown currency {value!r}: expected an ISO 4217 code")
        return value


@dataclass(frozen=True)
class SpecProblem:
    file: str
    error: str


def _entries(data: object) -> list[dict]:
    if isinstance(data, dict) and "prices" in data:
        common = {k: v for k, v in data.items() if k != "prices"}
        items = data["prices"]
        if not isinstance(items, list):
            raise ValueError("'prices' must be a list")
        return [{**common, **item} for item in items]
    if isinstance(data, dict):
        return [data]
    raise ValueError("a spec file holds a mapping (or a mapping with a 'prices' list)")


def load_file(path: Path, root: Path | None = None) -> list[PriceSpec]:
    """The specs of one YAML file; raises ValueError with the reason when it is invalid."""
    name = str(path.relative_to(root)) if root else path.name
    try:
        data = yaml.safe_load(path.read_text())
        entries = _entries(data)
        specs = [PriceSpecFile.model_validate(e) for e in entries]
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise ValueError(reasons) from None
    except (yaml.YAMLError, InvalidOperation, OSError) as exc:
        raise ValueError(str(exc)) from None
    return [
        PriceSpec(
            file=name,
            provider=s.provider,
            service=s.service,
            unit_price=s.price,
            currency=s.currency,
            unit=s.unit,
            sku=s.sku,
            region=s.region,
        )
        for s in specs
    ]


def spec_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if p.suffix in {".yaml", ".yml"} and p.is_file())


def load_specs(*directories: Path) -> tuple[SpecBook, list[SpecProblem]]:
    """Every spec under the directories (earlier directories win on the same key), plus the
    files that could not be loaded and why (they are skipped, never half-applied)."""
    specs: list[PriceSpec] = []
    problems: list[SpecProblem] = []
    for directory in directories:
        for path in spec_files(directory):
            try:
                specs.extend(load_file(path, directory))
            except ValueError as exc:
                problems.append(SpecProblem(str(path), str(exc)))
    return SpecBook.of(specs), problems


class SpecSource:
    """The spec book of a directory, re-read when its files change (checked at most every
    `interval` seconds), so a new spec applies without restarting the service."""

    def __init__(self, *directories: Path, interval: float = 10.0, clock=None) -> None:
        import time

        self._dirs = directories
        self._interval = interval
        self._clock = clock or time.monotonic
        self._checked = float("-inf")
        self._stamp: tuple = ()
        self._book = SpecBook()
        self.problems: list[SpecProblem] = []

    def _fingerprint(self) -> tuple:
        out = []
        for d in self._dirs:
            for p in spec_files(d):
                with contextlib.suppress(OSError):
                    out.append((str(p), p.stat().st_mtime_ns))
        return tuple(out)

    def __call__(self) -> SpecBook:
        now = self._clock()
        if now - self._checked >= self._interval:
            self._checked = now
            stamp = self._fingerprint()
            if stamp != self._stamp:
                self._stamp = stamp
                self._book, self.problems = load_specs(*self._dirs)
        return self._book
