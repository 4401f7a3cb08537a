"""`finfocus anomalies`: list anomalies, give feedback, manage monitors.

`list` reads `anomaly.v_anomalies` only, through the read-only role. `feedback` publishes
on the `anomaly-feedback` topic (the anomaly service records it); `monitors` edits the
monitors YAML file the anomaly service reloads (`FINFOCUS_HOME/anomaly/monitors.yaml`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import typer

from finfocus.cli.output import OUTPUT_OPTION, OutputFormat, fail, print_json, print_ndjson, print_table, run

VIEW = "anomaly.v_anomalies"
SEVERITIES = ("low", "medium", "high", "critical")
FEEDBACK_TOPIC = "anomaly-feedback"


def parse_since(text: str | None) -> datetime | None:
    """`--since`: YYYY-MM-DD, RFC 3339, or a relative `7d` / `12h`."""
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
        raise typer.BadParameter(f"{text!r}: expected YYYY-MM-DD, RFC 3339 or 7d/12h") from None


def list_query(since: datetime | None, severities: list[str], statuses: list[str]) -> tuple[str, list]:
    """SQL over the view: anomalies whose window ends after `since`, most impact first."""
    conds, params = [], []
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
    return f"SELECT record FROM {VIEW} {where} ORDER BY window_start DESC, impact DESC, anomaly_id", params


async def fetch_anomalies(database_url: str, since, severities, statuses) -> list[dict]:
    from finfocus.db import reader

    sql, params = list_query(since, severities, statuses)
    async with reader(database_url) as conn:
        return [r["record"] for r in await conn.fetch(sql, *params)]


def _expand(severity: list[str] | None) -> list[str]:
    """`--severity high` means exactly high (repeatable); `high+` means high or worse."""
    out: list[str] = []
    for item in severity or []:
        for s in item.lower().split(","):
            at_least = s.endswith("+")
            s = s.rstrip("+")
            if s not in SEVERITIES:
                raise typer.BadParameter(f"{s!r}: use one of {', '.join(SEVERITIES)} (or e.g. high+)")
            out += list(SEVERITIES[SEVERITIES.index(s):]) if at_least else [s]
    return sorted(set(out), key=SEVERITIES.index)


def _print(rows: list[dict], output: OutputFormat) -> None:
    if output == OutputFormat.JSON:
        print_json({"anomalies": rows})
    elif output == OutputFormat.NDJSON:
        print_ndjson(rows)
    else:
        print_table(
            ["id", "window", "dimension", "expected", "actual", "impact", "impact %", "severity", "status"],
            [
                (
                    r["anomaly_id"], f"{r['window_start'][:10]} .. {r['window_end'][:10]}",
                    ", ".join(f"{k}={v}" for k, v in r["dimension"].items()),
                    r["expected_cost"], r["actual_cost"], f"{r['impact']} {r['currency']}",
                    r.get("impact_pct") or "", r["severity"], r["status"],
                )
                for r in rows
            ],
            title=f"{len(rows)} anomalies",
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `finfocus` app."""
    anomalies = typer.Typer(help="Cost anomalies: list them, give feedback, manage monitors.", no_args_is_help=True)
    app.add_typer(anomalies, name="anomalies")

    @anomalies.command("list")
    def list_(
        since: str = typer.Option(None, "--since", help="Only anomalies whose window ends after D (YYYY-MM-DD, RFC 3339, 7d)"),
        severity: list[str] = typer.Option(None, "--severity", help="low, medium, high or critical (repeatable or comma-separated); high+ means high or worse"),
        status: list[str] = typer.Option(None, "--status", help="open, ongoing, resolved or acknowledged (repeatable)"),
        output: OutputFormat = OUTPUT_OPTION,
    ) -> None:
        """List detected anomalies, most recent first; `--output json` prints {"anomalies": [...]}."""
        from finfocus.settings import FinFocusSettings

        window = parse_since(since)
        severities = _expand(severity)

        async def go() -> None:
            _print(await fetch_anomalies(FinFocusSettings().database, window, severities, list(status or [])), output)

        run(go())

    @anomalies.command("show")
    def show(anomaly_id: str = typer.Argument(..., help="Anomaly id (anm-...)"), output: OutputFormat = OUTPUT_OPTION) -> None:
        """Show one anomaly with its root causes."""
        from finfocus.db import reader
        from finfocus.settings import FinFocusSettings

        async def go() -> None:
            async with reader(FinFocusSettings().database) as conn:
                row = await conn.fetchrow(f"SELECT record, feedback FROM {VIEW} WHERE anomaly_id = $1", anomaly_id)
            if row is None:
                fail(f"no anomaly {anomaly_id}")
            if output != OutputFormat.TABLE:
                print_json(row["record"] | {"feedback": row["feedback"]})
                return
            r = row["record"]
            _print([r], OutputFormat.TABLE)
            print_table(["root cause", "contribution"], [
                (", ".join(f"{k}={v}" for k, v in c["dimension"].items()), c["contribution"]) for c in r["root_causes"]
            ])

        run(go())
