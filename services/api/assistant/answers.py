"""Rows to one or two sentences that state the figures, their currency and the period read.

Currencies are never added: a result in two currencies is said as two figures.
"""

from __future__ import annotations

from decimal import Decimal

from services.api.assistant.offline import PLURAL, dim_name, money
from services.api.assistant.understand import Plan
from services.api.assistant.vocab import Vocabulary


def _amounts(rows: list[dict], column: str) -> str:
    return " and ".join(f"{money(r[column])} {r['currency']}" for r in rows)


def _what(plan: Plan, vocab: Vocabulary) -> str:
    return plan.scope.describe(vocab) or "Total"


def _note(plan: Plan) -> str:
    return f" ({'; '.join(plan.notes)})" if plan.notes else ""


def _pct(value) -> str:
    if value is None:
        return "n/a"
    d = Decimal(str(value))
    return f"{'+' if d > 0 else ''}{d}%"


def _signed(value, currency: str) -> str:
    d = Decimal(str(value or 0))
    return f"{'+' if d > 0 else ''}{money(d)} {currency}"


def phrase(plan: Plan, rows: list[dict], vocab: Vocabulary) -> str:
    text = _PHRASES[plan.intent](plan, rows, vocab)
    return text[:1].upper() + text[1:]


def _spend(plan: Plan, rows: list[dict], vocab: Vocabulary) -> str:
    assert plan.period
    if not rows:
        scope = "" if plan.scope.empty() else f" for {_what(plan, vocab)}"
        return f"No cost lines{scope} {plan.period.text()}{_note(plan)}."
    return f"{_what(plan, vocab)} cost {_amounts(rows, 'cost')} {plan.period.text()}{_note(plan)}."


def _label(plan: Plan) -> str:
    assert plan.dimension
    name = dim_name(plan.dimension)
    return PLURAL.get(name, name + "s")


def _top(plan: Plan, rows: list[dict], vocab: Vocabulary) -> str:
    assert plan.period and plan.dimension
    key = dim_name(plan.dimension)
    scope = f" for {plan.scope.describe(vocab)}" if not plan.scope.empty() else ""
    if not rows:
        return f"No cost lines{scope} {plan.period.text()}{_note(plan)}."
    if plan.limit == 1:
        r = rows[0]
        word = "cheapest" if plan.ascending else "most expensive"
        return (
            f"The {word} {key} {plan.period.text()}{scope} was {r[key] or '(none)'} at "
            f"{money(r['cost'])} {r['currency']}{_note(plan)}."
        )
    shown = rows[:10]
    items = "; ".join(f"{r[key] or '(none)'} {money(r['cost'])} {r['currency']}" for r in shown)
    more = f" (and {len(rows) - len(shown)} more)" if len(rows) > len(shown) else ""
    head = f"Top {len(rows)} {_label(plan)}" if plan.limit else f"Cost by {key}"
    return f"{head}{scope} {plan.period.text()}{_note(plan)}: {items}{more}."


def _compare(plan: Plan, rows: list[dict], vocab: Vocabulary) -> str:
    assert plan.period and plan.previous
    periods = f"{plan.previous.text()} against {plan.period.text()}"
    if not rows:
        return f"No cost lines {periods}."
    if plan.dimension:
        key = dim_name(plan.dimension)
        if plan.limit == 1:
            r = rows[0]
            verb = "dropped" if plan.ascending else "grew"
            return (
                f"{r[key] or '(none)'} {verb} the most: {money(r['previous_cost'])} {r['currency']} "
                f"{plan.previous.text()} to {money(r['current_cost'])} {r['currency']} {plan.period.text()} "
                f"({_signed(r['change'], r['currency'])}, {_pct(r['change_pct'])})."
            )
        items = "; ".join(
            f"{r[key] or '(none)'} {_signed(r['change'], r['currency'])} ({_pct(r['change_pct'])})"
            for r in rows[:10]
        )
        return f"Change by {key}, {periods}: {items}."
    parts = [
        f"{money(r['previous_cost'])} {r['currency']} {plan.previous.text()} to {money(r['current_cost'])} "
        f"{r['currency']} {plan.period.text()} ({_signed(r['change'], r['currency'])}, {_pct(r['change_pct'])})"
        for r in rows
    ]
    return f"{_what(plan, vocab)} cost went from " + "; ".join(parts) + "."


def _trend(plan: Plan, rows: list[dict], vocab: Vocabulary) -> str:
    assert plan.period and plan.grain
    grain = plan.grain
    word = "Daily" if grain == "day" else "Monthly"
    scope = f" for {plan.scope.describe(vocab)}" if not plan.scope.empty() else ""
    if not rows:
        return f"No cost lines{scope} {plan.period.text()}."
    by_currency: dict[str, list[dict]] = {}
    for r in rows:
        by_currency.setdefault(r["currency"], []).append(r)
    parts = []
    for cur, items in by_currency.items():
        totals: dict[str, Decimal] = {}
        for r in items:
            totals[r[grain]] = totals.get(r[grain], Decimal(0)) + Decimal(str(r["cost"] or 0))
        high = max(totals, key=lambda k: (totals[k], k))
        low = min(totals, key=lambda k: (totals[k], k))
        if grain == "month" and len(totals) <= 12:
            listed = ", ".join(f"{k} {money(v)}" for k, v in totals.items())
            parts.append(f"{listed} {cur}")
        else:
            parts.append(
                f"{len(totals)} {PLURAL[grain]}, total {money(sum(totals.values()))} {cur}, highest {high} "
                f"({money(totals[high])} {cur}), lowest {low} ({money(totals[low])} {cur})"
            )
    return f"{word} cost{scope} {plan.period.text()}{_note(plan)}: " + "; ".join(parts) + "."


def _anomalies(plan: Plan, rows: list[dict], vocab: Vocabulary) -> str:
    which = "open anomalies" if plan.options.get("open") else "anomalies"
    if sev := plan.options.get("severity"):
        which = f"{sev} {which}"
    scope = f" for {plan.scope.describe(vocab)}" if not plan.scope.empty() else ""
    when = f" {plan.period.text()}" if plan.period else ""
    if plan.options.get("count"):
        n = sum(r["anomalies"] for r in rows)
        impact = f", impact {_amounts(rows, 'impact')}" if rows else ""
        if n == 1:
            which = which.replace("anomalies", "anomaly")
        return f"{n} {which}{scope}{when}{impact}."
    if not rows:
        return f"No {which}{scope}{when}."
    if plan.dimension and plan.dimension in rows[0]:
        items = "; ".join(
            f"{r[plan.dimension] or '(none)'}: {r['anomalies']} ({_signed(r['impact'], r['currency'])})"
            for r in rows[:10]
        )
        return f"{which.capitalize()}{scope}{when} by {plan.dimension}: {items}."
    r = rows[0]
    first = (
        f"{r['service'] or 'total'}"
        + (f" in account {r['account']}" if r["account"] else "")
        + f" from {r['window_start']} to {r['window_end']}: {money(r['actual_cost'])} {r['currency']} against "
        f"{money(r['expected_cost'])} expected, impact {_signed(r['impact'], r['currency'])} ({r['severity']}, {r['status']})"
    )
    if plan.limit == 1:
        return f"The largest {which[:-3] + 'y' if which.endswith('ies') else which}{scope}{when}: {first}."
    if len(rows) == 1:
        return f"1 {which.replace('anomalies', 'anomaly')}{scope}{when}: {first}."
    return f"{len(rows)} {which}{scope}{when}; the largest is {first}."


def _forecast(plan: Plan, rows: list[dict], vocab: Vocabulary) -> str:
    scope = f" for {plan.scope.describe(vocab)}" if not plan.scope.empty() else ""
    if not rows:
        return f"No forecast{scope} yet."
    if "projected" in rows[0]:
        parts = [
            f"{money(r['projected'])} {r['currency']} (95% range {money(r['lo_95'])} to {money(r['hi_95'])}), "
            f"{money(r['actual_to_date'])} {r['currency']} of it spent so far"
            for r in rows
        ]
        return f"Projected month-end spend{scope}: " + "; ".join(parts) + "."
    assert plan.period
    parts = [
        f"{money(r['forecast'])} {r['currency']} (95% range {money(r['lo_95'])} to {money(r['hi_95'])})"
        for r in rows
    ]
    return f"Forecast{scope} {plan.period.text()}: " + "; ".join(parts) + "."


def _budgets(plan: Plan, rows: list[dict], vocab: Vocabulary) -> str:
    if not rows:
        return (
            "No budget is projected to exceed its amount."
            if plan.options.get("at_risk")
            else "No budgets are set."
        )
    items = "; ".join(
        f"{r['name']}: projected {money(r['projected'])} of {money(r['amount'])} {r['currency']} "
        f"({r['projected_pct']}%)"
        for r in rows[:10]
    )
    if plan.options.get("at_risk"):
        return f"{len(rows)} budget(s) projected over their amount: {items}."
    return f"{len(rows)} budget(s): {items}."


def _recommendations(plan: Plan, rows: list[dict], vocab: Vocabulary) -> str:
    if plan.options.get("total"):
        if not rows:
            return "No open recommendations."
        return (
            "Open recommendations could save "
            + " and ".join(
                f"{money(r['monthly_savings'])} {r['currency']} a month ({r['recommendations']} recommendations)"
                for r in rows
            )
            + "."
        )
    if not rows:
        return "No open recommendations."
    items = "; ".join(
        f"{r['type']} {r['resource_id']} ({money(r['estimated_monthly_savings'])} {r['currency']}/month)"
        for r in rows[:5]
    )
    return f"{len(rows)} open recommendation(s), largest first: {items}."


def _savings(plan: Plan, rows: list[dict], vocab: Vocabulary) -> str:
    when = f" {plan.period.text()}" if plan.period else ""
    if not rows:
        return f"No realised savings{when}."
    if plan.dimension in ("playbook", "action"):
        items = "; ".join(
            f"{r[plan.dimension]}: {money(r['realised_monthly'])} {r['currency']}/month"
            for r in rows
        )
        return f"Realised savings by {plan.dimension}{when}: {items}."
    return (
        "Realised savings"
        + when
        + ": "
        + " and ".join(
            f"{money(r['realised_monthly'])} {r['currency']} a month from {r['actions']} action(s) "
            f"(expected {money(r['expected_monthly'])} {r['currency']})"
            for r in rows
        )
        + "."
    )


def _unpriced(plan: Plan, rows: list[dict], vocab: Vocabulary) -> str:
    assert plan.period
    n = sum(r["lines"] for r in rows)
    if not n:
        return f"Every cost line {plan.period.text()} has a price."
    key = next(iter(rows[0]))
    items = ", ".join(f"{r[key] or '(none)'} ({r['lines']})" for r in rows[:10])
    return f"{n} cost line(s) have no price {plan.period.text()}: {items}."


def _untagged(plan: Plan, rows: list[dict], vocab: Vocabulary) -> str:
    assert plan.period
    what = f"without a {plan.options['tag_key']} tag" if plan.options.get("tag_key") else "untagged"
    if not rows:
        return f"No cost lines {plan.period.text()}."
    parts = [
        f"{money(r['untagged_cost'])} {r['currency']} ({r['untagged_lines']} lines, {r['untagged_pct'] or 0}% of "
        f"{money(r['total_cost'])} {r['currency']})"
        for r in rows
    ]
    return f"Spend {what} {plan.period.text()}{_note(plan)}: " + "; ".join(parts) + "."


_PHRASES = {
    "spend": _spend, "top": _top, "compare": _compare, "trend": _trend, "anomalies": _anomalies,
    "forecast": _forecast, "budgets": _budgets, "recommendations": _recommendations,
    "savings": _savings, "unpriced": _unpriced, "untagged": _untagged,
}  # fmt: skip
