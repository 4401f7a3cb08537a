"""Periods people name in questions, resolved against a fixed `today` (pure, no I/O).

Every period is half-open, `[start, end)` on the day of `ChargePeriodStart`, like FOCUS and
`finfocus cost actual`. Periods "to date" (this month, since June) end tomorrow, so today's
lines count; named past periods (last month, Q3, yesterday) end where they end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

MONTHS = {
    name: i + 1
    for i, names in enumerate(
        [("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",),
         ("june", "jun"), ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"),
         ("october", "oct"), ("november", "nov"), ("december", "dec")]
    )
    for name in names
}  # fmt: skip
_MONTH = r"(?P<month>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")"
_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
            "ten": 10, "twelve": 12, "fourteen": 14, "thirty": 30}  # fmt: skip


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # exclusive
    label: str  # how the question named it, for the answer

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def text(self) -> str:
        return f"from {self.start.isoformat()} to {self.end.isoformat()}"


def month_start(d: date, shift: int = 0) -> date:
    index = d.year * 12 + d.month - 1 + shift
    return date(index // 12, index % 12 + 1, 1)


def _quarter(year: int, q: int) -> tuple[date, date]:
    start = date(year, 3 * (q - 1) + 1, 1)
    return start, month_start(start, 3)


def _latest_month(month: int, today: date) -> int:
    """The year of the most recent `month` that has begun by `today`."""
    return today.year if date(today.year, month, 1) <= today else today.year - 1


def _count(text: str) -> int:
    return int(text) if text.isdigit() else _NUMBERS[text]


_N = r"(?P<n>\d{1,3}|" + "|".join(_NUMBERS) + r")"
_ISO = r"\d{4}-\d{2}-\d{2}"


def find_period(text: str, today: date) -> tuple[Period | None, str]:
    """The first period named in `text` (lower case), and the text with it removed."""
    tomorrow = today + timedelta(days=1)
    monday = today - timedelta(days=today.weekday())
    rules: list[tuple[str, object]] = [
        (rf"(?:from|between)\s+(?P<a>{_ISO})\s+(?:to|and|until|till)\s+(?P<b>{_ISO})",
         lambda m: Period(date.fromisoformat(m["a"]), date.fromisoformat(m["b"]), "")),
        (rf"(?:from|between)\s+(?P<a>{_ISO})\s+through\s+(?P<b>{_ISO})",
         lambda m: Period(date.fromisoformat(m["a"]), date.fromisoformat(m["b"]) + timedelta(days=1), "")),
        (rf"since\s+(?P<a>{_ISO})", lambda m: Period(date.fromisoformat(m["a"]), tomorrow, "")),
        (rf"(?:on\s+)?(?P<a>{_ISO})", lambda m: Period(date.fromisoformat(m["a"]),
                                                       date.fromisoformat(m["a"]) + timedelta(days=1), "")),
        (r"day before yesterday", lambda m: Period(today - timedelta(days=2), today - timedelta(days=1), "the day before yesterday")),
        (r"yesterday", lambda m: Period(today - timedelta(days=1), today, "yesterday")),
        (r"today", lambda m: Period(today, tomorrow, "today")),
        (rf"(?:last|past|previous|trailing)\s+{_N}\s+days?",
         lambda m: Period(today - timedelta(days=_count(m["n"])), today, f"the last {_count(m['n'])} days")),
        (rf"(?:last|past|previous)\s+{_N}\s+weeks?",
         lambda m: Period(today - timedelta(days=7 * _count(m["n"])), today, f"the last {_count(m['n'])} weeks")),
        (rf"(?:last|past|previous)\s+{_N}\s+months?",
         lambda m: Period(month_start(today, -_count(m["n"])), month_start(today), f"the last {_count(m['n'])} months")),
        (r"(?:this|current)\s+week|week\s+to\s+date|wtd", lambda m: Period(monday, tomorrow, "this week")),
        (r"(?:last|previous|past)\s+week", lambda m: Period(monday - timedelta(days=7), monday, "last week")),
        (r"(?:so\s+far\s+)?(?:this|current)\s+month(?:\s+so\s+far)?|month\s+to\s+date|mtd",
         lambda m: Period(month_start(today), tomorrow, "this month")),
        (r"(?:last|previous|past|prior)\s+month", lambda m: Period(month_start(today, -1), month_start(today), "last month")),
        (r"(?:this|current)\s+quarter|quarter\s+to\s+date|qtd",
         lambda m: Period(month_start(today, -((today.month - 1) % 3)), tomorrow, "this quarter")),
        (r"(?:last|previous|past)\s+quarter",
         lambda m: Period(month_start(today, -((today.month - 1) % 3) - 3), month_start(today, -((today.month - 1) % 3)), "last quarter")),
        (r"\bq(?P<q>[1-4])(?:\s+(?P<y>\d{4}))?",
         lambda m: _q(int(m["q"]), m["y"], today)),
        (r"(?:this|current)\s+year|year\s+to\s+date|ytd", lambda m: Period(date(today.year, 1, 1), tomorrow, "this year")),
        (r"(?:last|previous|past)\s+year", lambda m: Period(date(today.year - 1, 1, 1), date(today.year, 1, 1), "last year")),
        (rf"since\s+(?:the\s+start\s+of\s+|beginning\s+of\s+)?{_MONTH}(?:\s+(?P<y>\d{{4}}))?",
         lambda m: Period(date(int(m["y"]) if m["y"] else _latest_month(MONTHS[m["month"]], today), MONTHS[m["month"]], 1),
                          tomorrow, f"since {m['month'].capitalize()}")),
        (rf"\b{_MONTH}(?:\s+(?P<y>\d{{4}}))?\b",
         lambda m: _named_month(MONTHS[m["month"]], m["y"], today)),
        (r"(?:in|for|during|of)\s+(?P<y>20\d{2})",
         lambda m: Period(date(int(m["y"]), 1, 1), min(date(int(m["y"]) + 1, 1, 1), tomorrow), m["y"])),
    ]  # fmt: skip
    for pattern, make in rules:
        match = re.search(r"(?<![\w-])" + pattern + r"(?![\w-])", text)
        if match:
            period = make(match)  # type: ignore[operator]
            rest = (text[: match.start()] + " " + text[match.end() :]).strip()
            return period, rest
    return None, text


def _q(q: int, year: str | None, today: date) -> Period:
    y = (
        int(year)
        if year
        else (today.year if _quarter(today.year, q)[0] <= today else today.year - 1)
    )
    start, end = _quarter(y, q)
    return Period(start, end, f"Q{q} {y}")


def _named_month(month: int, year: str | None, today: date) -> Period:
    y = int(year) if year else _latest_month(month, today)
    start = date(y, month, 1)
    return Period(start, month_start(start, 1), start.strftime("%B %Y"))


def previous_like(period: Period, unit: str) -> Period:
    """The period before `period`: the month (or week, day) before, as long as `period` is.

    A month to date (Oct 1-15) compares with the same days of the month before (Sep 1-15),
    a full month with the full month before."""
    if unit == "month":
        start = month_start(period.start, -1)
        full = period.end == month_start(period.start, 1)
        end = period.start if full else min(start + timedelta(days=period.days), period.start)
        return Period(start, end, "the month before")
    if unit == "week" and period.start.weekday() == 0 and period.days < 7:
        return Period(
            period.start - timedelta(days=7),
            period.start - timedelta(days=7 - period.days),
            "the week before",
        )
    length = timedelta(days=period.days)
    return Period(period.start - length, period.start, f"the {period.days} days before")
