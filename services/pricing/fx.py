"""Exchange rates: dated reference rates, and the one rate a projection is converted at.

Files read by `finfocus fx import` (and `cost projected --fx-rates`):

* the ECB reference rates CSV (`eurofxref.csv`, `eurofxref-hist.csv`): a header
  `Date,USD,JPY,...` then one row per day, each value the units of that currency per 1 EUR
  (`N/A` where the ECB published none);
* or any `date,currency,rate` file: one rate per row, units of `currency` per 1 `base`
  (EUR unless told otherwise).

A conversion from A to B on a date uses the latest published date on or before it (the ECB
publishes on working days), rate = (B per base) / (A per base); there is never a silent
default: no rate is an error that says which one is missing.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from schemas.currencies import is_iso_4217

ECB = "ECB euro foreign exchange reference rates"
#: how many days back a rate may be taken from when the stated day has none (weekends, holidays)
MAX_GAP_DAYS = 7


@dataclass(frozen=True, slots=True)
class Rate:
    day: date
    base: str
    currency: str
    rate: Decimal  # units of `currency` per 1 `base`
    source: str


def parse_rates(text: str, *, base: str = "EUR", source: str | None = None) -> list[Rate]:
    """Rates of an ECB CSV or a `date,currency,rate` file; ValueError with the line on a bad row."""
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    rows = [[c.strip() for c in r] for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise ValueError("the rates file is empty")
    header = [h.lower() for h in rows[0]]
    base = base.upper()
    if not is_iso_4217(base):
        raise ValueError(f"unknown base currency {base!r}")
    out: list[Rate] = []
    if header[:3] == ["date", "currency", "rate"]:
        for n, row in enumerate(rows[1:], start=2):
            if len(row) < 3:
                raise ValueError(f"line {n}: expected date,currency,rate")
            out.append(_rate(row[0], row[1], row[2], base, source or "file", n))
    elif header and header[0] == "date" and len(header) > 1:
        currencies = [h.upper() for h in rows[0][1:]]
        for n, row in enumerate(rows[1:], start=2):
            for currency, value in zip(currencies, row[1:], strict=False):
                if not currency or value in {"", "N/A"}:
                    continue
                out.append(_rate(row[0], currency, value, "EUR", source or ECB, n))
    else:
        raise ValueError(
            "not a rates file: expected the ECB header `Date,USD,...` or `date,currency,rate`"
        )
    if not out:
        raise ValueError("the rates file holds no rate")
    return out


def _rate(day: str, currency: str, value: str, base: str, source: str, line: int) -> Rate:
    try:
        when = date.fromisoformat(day)
    except ValueError:
        raise ValueError(f"line {line}: {day!r} is not a date (YYYY-MM-DD)") from None
    currency = currency.upper()
    if not is_iso_4217(currency):
        raise ValueError(f"line {line}: {currency!r} is not an ISO 4217 currency")
    try:
        rate = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"line {line}: rate {value!r} is not a decimal") from None
    if not rate.is_finite() or rate <= 0:
        raise ValueError(f"line {line}: rate {value!r} must be positive")
    return Rate(when, base, currency, rate, source)


@dataclass(frozen=True)
class Conversion:
    """One stated rate: amounts in `source_currency` times `rate` are in `target`."""

    source_currency: str
    target: str
    rate: Decimal
    day: date  # the date of the rate used
    asked: date | None  # the date asked for (None: the latest)
    source: str

    def convert(self, amount: Decimal) -> Decimal:
        return amount * self.rate

    def describe(self) -> str:
        when = f"{self.day}" + (
            f" (latest on or before {self.asked})" if self.asked and self.asked != self.day else ""
        )
        shown = format(
            self.rate.quantize(Decimal("0.000001")).normalize(), "f"
        )  # the JSON keeps every digit
        return f"1 {self.source_currency} = {shown} {self.target}, rate of {when}, {self.source}"

    def public(self) -> dict:
        return {
            "from": self.source_currency,
            "to": self.target,
            "rate": format(self.rate, "f"),
            "date": self.day.isoformat(),
            "asked": self.asked.isoformat() if self.asked else None,
            "source": self.source,
            "text": self.describe(),
        }


class RateTable:
    """Rates indexed by (base, currency) -> sorted [(day, rate, source)]."""

    def __init__(self, rates: list[Rate]) -> None:
        self._by: dict[tuple[str, str], dict[date, Rate]] = {}
        for r in rates:
            self._by.setdefault((r.base, r.currency), {})[r.day] = r

    def _on(self, base: str, currency: str, day: date | None) -> Rate | None:
        if currency == base:
            return None
        series = self._by.get((base, currency)) or {}
        days = sorted(d for d in series if day is None or d <= day)
        if not days or (day is not None and (day - days[-1]).days > MAX_GAP_DAYS):
            return None
        return series[days[-1]]

    def latest(self, day: date | None = None, currency: str | None = None) -> list[Rate]:
        """Each series' rate of its latest day on or before `day` (all series, or one currency)."""
        out = []
        for (_base, cur), series in sorted(self._by.items()):
            if currency and cur != currency:
                continue
            days = [d for d in series if day is None or d <= day]
            if days:
                out.append(series[max(days)])
        return out

    def conversion(self, source_currency: str, target: str, day: date | None = None) -> Conversion:
        """The rate from `source_currency` to `target` on `day` (None: the latest date both
        have); ValueError naming the missing rate."""
        source_currency, target = source_currency.upper(), target.upper()
        if not is_iso_4217(target):
            raise ValueError(f"unknown currency {target!r}: expected an ISO 4217 code")
        bases = sorted({b for b, _ in self._by} | {"EUR"})
        for base in bases:
            have_src = source_currency == base or (base, source_currency) in self._by
            have_tgt = target == base or (base, target) in self._by
            if not (have_src and have_tgt):
                continue
            if day is None:  # the latest day both currencies have
                days_src = (
                    set(self._by.get((base, source_currency), {}))
                    if source_currency != base
                    else None
                )
                days_tgt = set(self._by.get((base, target), {})) if target != base else None
                common = (
                    days_src & days_tgt
                    if days_src is not None and days_tgt is not None
                    else (days_src or days_tgt)
                )
                if not common:
                    continue
                on = max(common)
            else:
                on = day
            a, b = self._on(base, source_currency, on), self._on(base, target, on)
            if (source_currency != base and a is None) or (target != base and b is None):
                continue
            rate = (b.rate if b else Decimal(1)) / (a.rate if a else Decimal(1))
            used = max(r.day for r in (a, b) if r is not None)
            sources = sorted({r.source for r in (a, b) if r is not None})
            return Conversion(source_currency, target, rate, used, day, ", ".join(sources))
        when = f"on or up to {MAX_GAP_DAYS} days before {day}" if day else "at any date"
        raise ValueError(
            f"no exchange rate from {source_currency} to {target} {when}: "
            "import one with `finfocus fx import FILE` (ECB CSV or date,currency,rate)"
        )
