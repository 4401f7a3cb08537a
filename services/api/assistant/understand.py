"""Reading a FinOps question into a plan: intent, period, scope and dimension (pure, no I/O).

The offline engine understands by rules, not by a model: a period (`dates`), names matched
against the data (`vocab`), a dimension word ("by service", "which team") and an intent
keyword. Every word it cannot place is reported back instead of being guessed around, so
"spend on foobar" is a question it says it did not understand, not the total bill.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import date, timedelta

from services.api.assistant.dates import Period, find_period, month_start, previous_like
from services.api.assistant.vocab import Vocabulary, compact, words


class NotUnderstood(ValueError):
    """The question (or part of it) could not be read; the message says which part."""


#: dimension words -> dimension names (tag keys are added from the data)
DIMENSION_WORDS: dict[str, str] = {
    "service": "service", "services": "service", "product": "service", "products": "service",
    "account": "account", "accounts": "account", "subscription": "account", "subscriptions": "account",
    "project": "account", "projects": "account",
    "region": "region", "regions": "region", "location": "region", "locations": "region",
    "resource": "resource", "resources": "resource", "instance": "resource", "instances": "resource",
    "provider": "provider", "providers": "provider", "cloud": "provider", "clouds": "provider",
    "vendor": "provider", "vendors": "provider",
    "day": "day", "days": "day", "month": "month", "months": "month",
    "sku": "sku", "skus": "sku", "type": "type", "types": "type", "category": "category",
    "categories": "category",
}  # fmt: skip

#: words that carry no meaning of their own here (after intents, periods and names are taken)
STOPWORDS = set(
    """a an the of on in for to by per and or with at from is are was were be been do does did
    we our us i me my you your it its this that these those what which who how much many
    show give tell list get see find display let know please can could would should will
    there their they them all any each every total overall sum so far much money amount
    spend spent spending spends cost costs costing costed bill billed billing charges charge
    charged pay paid payed expense expenses expensive most more least less than about
    top biggest largest highest lowest smallest cheapest rank ranked ranking breakdown
    split across between vs versus compared compare comparison against over under up down
    grew grow grown growing growth increase increased increases decrease decreased drop
    dropped rose risen fell change changed changes difference delta jump jumped went go
    trend trends daily monthly weekly day days week weeks month months year years quarter
    time per by each everything anything
    what's whats whos where when why have has had been being get got just only also too
    anomaly anomalies spike spikes unusual unexpected outlier outliers open unresolved active
    ongoing current currently recent latest new detected severity critical high medium low
    forecast forecasts forecasted projected projection projections project predict predicted
    prediction end month-end eom expected expect going likely land landing track on-track
    budget budgets risk at-risk exceed exceeding exceeded over-budget blow overspend overspending
    recommendation recommendations recommend recommended suggestions suggest opportunities
    opportunity idle rightsize rightsizing right-size right-sizing optimise optimize
    optimisation optimization save saving savings saved realised realized realise realize
    achieved potential possible
    unpriced price priced prices pricing without missing no not untagged tag tags tagged tagging
    lines line rows row usage
    cloud clouds next last previous past this current since until till through
    same period periods number count counts dollars usd eur currency
    everywhere ever been anything something whole entire full complete
    status state limit limits playbook playbooks action actions figure figures numbers
    worst costliest priciest had have
    """.split()  # noqa: SIM905 - a word list reads better as text
)

INTENT_PATTERNS: list[tuple[str, str]] = [
    (
        "unpriced",
        r"\bunpriced\b|\bno price|without (?:a )?price|not priced|missing price|price source none",
    ),
    (
        "untagged",
        r"\buntagged\b|without (?:any )?tags?\b|no tags?\b|missing (?:\w+ )?tags?\b|not tagged|without (?:an? )?[\w-]+ tag\b|no [\w-]+ tag\b",
    ),
    ("budgets", r"\bbudgets?\b|over-budget|overspend"),
    (
        "recommendations",
        r"recommend|rightsiz|right-siz|opportunit|\bidle\b|could (?:we )?save|can (?:we )?save|potential sav|possible sav|save money|optimi[sz]|suggest",
    ),
    ("savings", r"\bsaved\b|realis|realiz|\bsavings\b|did (?:we )?save|have (?:we )?save"),
    ("anomalies", r"anomal|spike|unusual|unexpected|outlier"),
    (
        "forecast",
        r"forecast|project|predict|month[- ]end|end of (?:the )?month|\beom\b|on track|\bland(?:ing)?\b|going to (?:spend|cost)|will (?:we|it|\w+) (?:spend|cost)|expected to|next (?:month|week|\d+ days|quarter)|likely",
    ),
    (
        "compare",
        r"\bover (?:month|week|day)\b|\bmom\b|\bwow\b|\bdod\b|compar|\bvs\.?\b|versus|\bgr[eo]w|growth|increase|decrease|\bdrop|\brose\b|risen|change|difference|\bdelta\b|went (?:up|down)|jump|\bfell\b",
    ),
    (
        "trend",
        r"\btrend|\bdaily\b|per day|each day|by day|day by day|every day|\bmonthly\b|per month|by month|each month|month by month|over time|\bweekly\b",
    ),
    (
        "top",
        r"\btop\b|most expensive|\bbiggest\b|\blargest\b|\bhighest\b|\bmost\b|\bbreakdown\b|\bby \w+|\bper \w+|\bwhich \w+|\brank|\bcheapest\b|\blowest\b|\bleast\b|\bsplit\b",
    ),
    ("spend", r"spen[dt]|\bcost|\bbill|\bpa(?:y|id)\b|charge|how much|\btotal\b|expense"),
]

_TYPO_WORDS = sorted(
    (STOPWORDS | set(DIMENSION_WORDS) | {
        "january", "february", "march", "april", "june", "july", "august", "september",
        "october", "november", "december", "yesterday", "today", "quarter", "anomalies",
        "recommendations", "forecast", "budget", "untagged", "unpriced", "service", "services",
        "compute", "storage", "database", "lambda",
    }) - {"a", "i"}
)  # fmt: skip


@dataclass
class Scope:
    providers: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
    tags: dict[str, list[str]] = field(default_factory=dict)

    def empty(self) -> bool:
        return not (
            self.providers
            or self.services
            or self.accounts
            or self.regions
            or self.resources
            or self.tags
        )

    def describe(self, vocab: Vocabulary) -> str:
        parts = [*self.services, *self.providers]
        parts += [
            f"account {a}" + (f" ({vocab.accounts[a]})" if vocab.accounts.get(a) else "")
            for a in self.accounts
        ]
        parts += [f"region {r}" for r in self.regions]
        parts += [f"resource {r}" for r in self.resources]
        parts += [f"{k}={'/'.join(v)}" for k, v in self.tags.items()]
        return ", ".join(parts)


@dataclass
class Plan:
    intent: str
    period: Period | None = None
    previous: Period | None = None  # compare: the period compared with
    scope: Scope = field(default_factory=Scope)
    dimension: str | None = None  # service, account, ..., day, month, tag:KEY
    limit: int | None = None
    ascending: bool = False  # cheapest / dropped the most
    grain: str | None = None  # trend: day or month
    options: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # defaults taken, said in the answer


def _fix_typos(text: str, known: set[str]) -> str:
    out = []
    for token in re.split(r"(\s+)", text):
        bare = token.strip(".,?!;")
        if bare.isalpha() and len(bare) >= 4 and bare not in known:
            match = difflib.get_close_matches(bare, _TYPO_WORDS, n=1, cutoff=0.8)
            if match:
                token = token.replace(bare, match[0])
        out.append(token)
    return "".join(out)


def _remove(text: str, span: tuple[int, int]) -> str:
    return text[: span[0]] + " " + text[span[1] :]


_RESOURCE = re.compile(
    r"(?<![\w-])(i-[0-9a-f]{6,}|vol-[0-9a-f]{6,}|arn:[^\s,?]+|/subscriptions/[^\s,?]+|projects/[^\s,?]+)"
)
_TOP_N = re.compile(
    r"\b(?:top|first|biggest|largest|highest|most expensive|cheapest|lowest)\s+(\d{1,3}|one|two|three|four|five|ten)\b"
    r"|\b(\d{1,3}|one|two|three|four|five|ten)\s+(?:most expensive|biggest|largest|highest|cheapest|costliest)\b"
)
_NUM = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "ten": 10}
_COMPARE_UNIT = re.compile(r"\b(month|week|day)[- ]over[- ](?:month|week|day)\b|\b(mom|wow|dod)\b")


def understand(question: str, vocab: Vocabulary, today: date) -> Plan:  # noqa: C901 - the question grammar: one branch per phrase the parser reads
    """The plan for `question`, or `NotUnderstood` naming what could not be read."""
    text = " " + question.lower().replace("’", "'").strip() + " "
    text = re.sub(r"(\w)'(?:s|re|ve|ll|d)\b", r"\1", text)  # what's, we've: the stem is enough
    if len(text) > 500:
        raise NotUnderstood("the question is longer than 500 characters")
    index = vocab.index()
    known = set(STOPWORDS) | set(DIMENSION_WORDS) | {w for k in index for w in [k]}
    for name in [
        *vocab.services,
        *vocab.providers,
        *vocab.regions,
        *(n or "" for n in vocab.accounts.values()),
        *vocab.tags,
    ]:
        known |= set(words(name))
    for values in vocab.tags.values():
        for v in values:
            known |= set(words(v))
    text = _fix_typos(text, known)
    intent = next((name for name, pattern in INTENT_PATTERNS if re.search(pattern, text)), None)
    plan = Plan(intent or "spend")

    # comparisons first: "last month" inside "vs last month" is the other period
    unit = None
    if m := _COMPARE_UNIT.search(text):
        unit = {"mom": "month", "wow": "week", "dod": "day"}.get(m.group(2) or "", m.group(1))
        text = _remove(text, m.span())
        if plan.intent not in ("anomalies", "forecast", "budgets", "recommendations", "savings"):
            plan.intent = "compare"
    periods: list[Period] = []
    against = re.search(
        r"\b(?:vs\.?|versus|compared (?:to|with)|against|than)\s+(?:the\s+)?(last|previous|prior)\s+(month|week)\b",
        text,
    )
    while True:
        period, rest = find_period(text, today)
        if period is None:
            break
        periods.append(period)
        text = " " + rest + " "
    if periods:
        plan.period = periods[0]
    if plan.intent == "compare" and against and len(periods) == 1:
        # "lambda vs last month": this month (or week) to date against the same days before it
        unit = against.group(2)
        monday = today - timedelta(days=today.weekday())
        start = month_start(today) if unit == "month" else monday
        plan.period = Period(start, today + timedelta(days=1), f"this {unit}")
        plan.previous = previous_like(plan.period, unit)
    elif plan.intent == "compare":
        _compare_periods(plan, periods, unit, today, text)

    # resources and explicit tag filters (key=value, key:value)
    for m in list(_RESOURCE.finditer(text)):
        plan.scope.resources.append(
            question[m.start() - 1 : m.end() - 1]
            if question.lower()[m.start() - 1 : m.end() - 1] == m.group(1)
            else m.group(1)
        )
    text = _RESOURCE.sub(" ", text)
    for m in list(re.finditer(r"(?:tag(?:ged)?\s+)?([a-z][\w-]*)\s*[=:]\s*([\w.@-]+)", text)):
        key = _tag_key(m.group(1), vocab)
        if key is not None:
            value = _tag_value(key, m.group(2), vocab)
            if value is None:
                raise NotUnderstood(f"no {key} tag has the value {m.group(2)!r}")
            plan.scope.tags.setdefault(key, []).append(value)
            text = text.replace(m.group(0), " ", 1)

    if plan.intent == "untagged":
        m = re.search(
            r"(?:without|no|missing|not tagged with)\s+(?:an?\s+|the\s+)?([\w-]+)\s+tag", text
        )
        if m and m.group(1) not in ("any",):
            key = _tag_key(m.group(1), vocab)
            if key is None:
                raise NotUnderstood(f"there is no tag key {m.group(1)!r} in the data")
            plan.options["tag_key"] = key
            text = text.replace(m.group(0), " ", 1)

    # dimension words: "by service", "which team", "top 5 accounts"
    if m := _TOP_N.search(text):
        n = m.group(1) or m.group(2)
        plan.limit = int(n) if n.isdigit() else _NUM[n]
        text = text[: m.start()] + m.group(0).replace(n, " ", 1) + text[m.end() :]
    plan.dimension = _dimension(text, vocab)

    text = _match_names(text, plan, vocab, index)
    _leftovers(text, vocab)
    if intent is None and plan.dimension is None and plan.scope.empty() and not periods:
        raise NotUnderstood(
            "I could not tell what to look up; ask about spend, top services, "
            "changes, trends, anomalies, forecasts, budgets, recommendations or savings"
        )
    _finish(plan, text, today)
    return plan


def _compare_periods(
    plan: Plan, periods: list[Period], unit: str | None, today: date, text: str
) -> None:
    if len(periods) >= 2:
        plan.period, plan.previous = periods[0], periods[1]
        if plan.previous.start > plan.period.start:
            plan.period, plan.previous = plan.previous, plan.period
        return
    if unit is None:
        unit = (
            "week"
            if re.search(r"\bweek", text)
            else "day"
            if re.search(r"\bday\b", text)
            else "month"
        )
    if not periods:
        if unit == "month":
            plan.period = Period(month_start(today, -1), month_start(today), "last month")
        elif unit == "week":
            plan.period = Period(today - timedelta(days=7), today, "the last 7 days")
        else:
            plan.period = Period(today - timedelta(days=1), today, "yesterday")
    assert plan.period is not None
    plan.previous = previous_like(plan.period, unit)


def _tag_key(word: str, vocab: Vocabulary) -> str | None:
    for key in vocab.tags:
        if compact(key) in (compact(word), compact(word.rstrip("s"))):
            return key
    for key in vocab.tags:  # "environment" for env: a word that a short key abbreviates
        if len(compact(key)) >= 3 and compact(word).startswith(compact(key)):
            return key
    return None


def _tag_value(key: str, word: str, vocab: Vocabulary) -> str | None:
    for value in vocab.tags.get(key, ()):
        if compact(value) == compact(word):
            return value
    return None


def _dimension(text: str, vocab: Vocabulary) -> str | None:
    tag_words = {}
    for key in vocab.tags:
        for form in (key.lower(), key.lower() + "s", key.lower().replace("-", " ")):
            tag_words[form] = f"tag:{key}"
    for word in set(words(text)) - set(DIMENSION_WORDS):
        found = _tag_key(word, vocab)
        if found is not None:
            tag_words.setdefault(word, f"tag:{found}")
    lookup = {**DIMENSION_WORDS, **tag_words}
    alternatives = "|".join(re.escape(w) for w in sorted(lookup, key=len, reverse=True))
    pattern = rf"\b(?:by|per|which|what|each|top(?:\s+\d+)?|most expensive|biggest|largest|cheapest|every)\s+(?:the\s+)?({alternatives})\b|\b({alternatives})\s+(?:breakdown|split|grew|rose|increased|dropped|fell|costs?|spent|spend)\b"
    m = re.search(pattern, text)
    if m:
        return lookup[m.group(1) or m.group(2)]
    return None


def _match_names(text: str, plan: Plan, vocab: Vocabulary, index: dict) -> str:
    """Longest phrases first: "cloud storage" is a service before "storage" is another."""
    tokens = words(text)
    used = [False] * len(tokens)
    for size in range(min(6, len(tokens)), 0, -1):
        for i in range(len(tokens) - size + 1):
            if any(used[i : i + size]):
                continue
            phrase = compact("".join(tokens[i : i + size]))
            hits = index.get(phrase)
            if not hits or (size == 1 and tokens[i] in STOPWORDS and not _strong(tokens[i], hits)):
                continue
            taken = _apply(hits, plan, tokens, i, size, used)
            if taken:
                for j in range(i, i + size):
                    used[j] = True
    return " ".join(t for t, u in zip(tokens, used) if not u)


def _strong(token: str, hits: list[tuple[str, str]]) -> bool:
    return any(kind in ("provider", "service") for kind, _ in hits) and token not in {
        "cloud",
        "storage",
    }


def _apply(hits, plan: Plan, tokens: list[str], i: int, size: int, used: list[bool]) -> bool:
    kinds = {k for k, _ in hits}
    for kind in ("service", "account", "region", "provider"):
        if kind in kinds:
            values = [v for k, v in hits if k == kind]
            target = {
                "service": plan.scope.services,
                "account": plan.scope.accounts,
                "region": plan.scope.regions,
                "provider": plan.scope.providers,
            }[kind]
            if kind == "provider" and plan.scope.services:
                return True  # "aws lambda": the service already says the provider
            target.extend(v for v in values if v not in target)
            return True
    if "tag" in kinds:
        pairs = [v.split("=", 1) for k, v in hits if k == "tag"]
        near = {compact(t) for t in tokens[max(0, i - 2) : i] + tokens[i + size : i + size + 2]}
        keyed = [p for p in pairs if compact(p[0]) in near or compact(p[0]) + "s" in near]
        chosen = keyed or (pairs if len(pairs) == 1 else [])
        if not chosen:
            raise NotUnderstood(
                f"{tokens[i]!r} is a value of several tags ({', '.join(p[0] for p in pairs)}); say which"
            )
        key, value = chosen[0]
        plan.scope.tags.setdefault(key, [])
        if value not in plan.scope.tags[key]:
            plan.scope.tags[key].append(value)
        for j in range(max(0, i - 2), min(len(tokens), i + size + 2)):
            if compact(tokens[j]) in (compact(key), compact(key) + "s") or tokens[j] in (
                "tag",
                "tagged",
            ):
                used[j] = True
        return True
    # a tag key alone: a dimension word, already read
    return "tagkey" in kinds


def _leftovers(text: str, vocab: Vocabulary) -> None:
    unknown = [
        w
        for w in words(text)
        if w not in STOPWORDS
        and w not in DIMENSION_WORDS
        and not w.isdigit()
        and not re.fullmatch(r"\d+(?:st|nd|rd|th)?", w)
        and w.rstrip("s") not in STOPWORDS
        and w.rstrip("'s") not in STOPWORDS
    ]
    unknown = [w for w in unknown if _tag_key(w, vocab) is None]
    if unknown:
        raise NotUnderstood(
            "I did not understand "
            + ", ".join(repr(w) for w in unknown)
            + ": not a service, account, region, provider, tag or period in the data"
        )


def _finish(plan: Plan, text: str, today: date) -> None:  # noqa: C901 - one default per part of a plan the question left out, each noted
    """Defaults for what the question left out, each noted so the answer can say it."""
    if plan.intent == "top" and plan.dimension is None:
        plan.dimension = "service"
        plan.notes.append("by service")
    if plan.intent == "trend":
        plan.grain = "month" if re.search(r"month", text) or (plan.dimension == "month") else "day"
        if plan.dimension in ("day", "month"):
            plan.dimension = None
    if plan.intent == "top" and plan.dimension in ("day", "month") and plan.limit is None:
        plan.limit = 1
    if plan.intent == "top" and re.search(r"\b(cheapest|lowest|least)\b", text):
        plan.ascending = True
    if plan.intent == "compare" and re.search(
        r"\b(dropped|decreased?|fell|down|shrank|declined?)\b", text
    ):
        plan.ascending = True
    if (
        plan.intent == "compare"
        and plan.dimension
        and plan.limit is None
        and re.search(r"\bmost\b|\bbiggest\b|\blargest\b|which", text)
    ):
        plan.limit = 1
    if (
        plan.intent in ("top",)
        and plan.limit is None
        and re.search(r"\b(most|biggest|largest|highest|cheapest|lowest|least)\b", text)
        and not re.search(r"\b(services|accounts|regions|resources|providers|teams)\b", text)
    ):
        plan.limit = 1
    if plan.period is None and plan.intent in ("spend", "top", "trend", "unpriced", "untagged"):
        plan.period = Period(month_start(today), today + timedelta(days=1), "this month")
        plan.notes.append("month to date, as no period was named")
    if plan.intent == "anomalies":
        if re.search(r"\b(open|unresolved|active|ongoing|current)\b", text):
            plan.options["open"] = "1"
        for s in ("critical", "high", "medium", "low"):
            if re.search(rf"\b{s}\b", text):
                plan.options["severity"] = s
        if re.search(r"\bhow many\b|\bcount\b|\bnumber of\b", text):
            plan.options["count"] = "1"
        if (
            re.search(r"\b(largest|biggest|worst|highest|top|most)\b", text)
            and plan.limit is None
            and plan.dimension is None
        ):
            plan.limit = 1
    if plan.intent == "forecast":
        if re.search(r"next month", text) or (plan.period and plan.period.start > today):
            plan.options["kind"] = "next-month"
        elif m := re.search(r"next (\d+) days", text):
            plan.options["kind"] = "days"
            plan.options["days"] = m.group(1)
        elif re.search(r"next week", text):
            plan.options["kind"] = "days"
            plan.options["days"] = "7"
        else:
            plan.options["kind"] = "month-end"
    if plan.intent == "budgets" and re.search(
        r"\b(risk|over|exceed\w*|blow|overspend\w*|breach\w*)\b", text
    ):
        plan.options["at_risk"] = "1"
    if plan.intent == "recommendations":
        if re.search(r"\bidle\b", text):
            plan.options["type"] = "idle"
        elif re.search(r"right-?siz", text):
            plan.options["type"] = "rightsize"
        if (
            re.search(r"how much|total|potential|could|can we", text)
            and plan.dimension is None
            and plan.limit is None
        ):
            plan.options["total"] = "1"
    if plan.intent == "savings" and re.search(r"\b(playbook|action)s?\b", text):
        plan.dimension = "playbook" if "playbook" in text else "action"
