"""Reads of the anomaly service's `v_anomalies`: `finfocus anomalies list` and the api's
`anomalies` (and the assistant's tool) select the same rows here."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

VIEW = "anomaly.v_anomalies"
SEVERITIES = ("low", "medium", "high", "critical")


def parse_since(text: str | None) -> datetime | None:
    """`--since`: YYYY-MM-DD, RFC 3339, or a relative `7d` / `12h`; ValueError otherwise."""
    if not text:
        return None
    text = text.strip()
    if text[-1:] in ("d", "h") and text[:-1].isdigit():
        unit = "days" if text[-1] == "d" else "hours"
        return datetime.now(UTC) - timedelta(**{unit: int(text[:-1])})
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"{text!r}: expected YYYY-MM-DD, RFC 3339 or 7d/12h") from None


def expand_severities(severity: list[str] | None) -> list[str]:
    """`high` means exactly high (repeatable); `high+` means high or worse; ValueError otherwise."""
    out: list[str] = []
    for item in severity or []:
        for s in item.lower().split(","):
            at_least = s.endswith("+")
            s = s.rstrip("+")
            if s not in SEVERITIES:
                raise ValueError(f"{s!r}: use one of {', '.join(SEVERITIES)} (or e.g. high+)")
            out += list(SEVERITIES[SEVERITIES.index(s) :]) if at_least else [s]
    return sorted(set(out), key=SEVERITIES.index)


def list_query(
    since: datetime | None, severities: list[str], statuses: list[str]
) -> tuple[str, list]:
    """SQL over the view: anomalies whose window ends after `since`, most impact first."""
    conds: list[str] = []
    params: list[object] = []
    if since is not None:
        params.append(since)
        conds.append(f"window_end > ${len(params)}")
    if severities:
        params.append(severities)
        conds.append(f"severity = ANY(${len(params)}::text[])")
    if statuses:
        params.append(statuses)
        conds.append(f"status = ANY(${len(params)}::text[])")
    where = f"WHERE {' AND '.join(conds)}" if conds else ""
    return (
        f"SELECT record FROM {VIEW} {where} ORDER BY window_start DESC, impact DESC, anomaly_id",
        params,
    )


async def anomalies(
    conn, since: datetime | None, severities: list[str], statuses: list[str]
) -> list[dict]:
    """The anomaly records (`{"anomalies": [...]}` of the CLI and the api), on an open connection."""
    sql, params = list_query(since, severities, statuses)
    return [r["record"] for r in await conn.fetch(sql, *params)]
