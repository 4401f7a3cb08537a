"""`finfocus anomalies`: list anomalies, give feedback, manage monitors.

`list` reads `anomaly.v_anomalies` only, through the read-only role. `feedback` publishes
on the `anomaly-feedback` topic (the anomaly service records it); `monitors add|remove`
publish MonitorCommand v1 on `monitor-commands` signed `cli` (the anomaly service applies and
audits them, `anomaly.v_monitor_audit`), `monitors list` reads `anomaly.v_monitors`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import typer

from finfocus.cli.output import (
    OUTPUT_OPTION,
    WIDE_OPTION,
    OutputFormat,
    fail,
    print_json,
    print_ndjson,
    print_table,
    run,
)
from schemas.reads import anomaly as reads
from schemas.reads.anomaly import SEVERITIES, VIEW, list_query

__all__ = ["SEVERITIES", "VIEW", "list_query", "register"]
from schemas.topics import Topics

FEEDBACK_TOPIC = Topics.ANOMALY_FEEDBACK


def parse_since(text: str | None) -> datetime | None:
    """`--since`: YYYY-MM-DD, RFC 3339, or a relative `7d` / `12h`."""
    try:
        return reads.parse_since(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


async def fetch_anomalies(database_url: str, since, severities, statuses) -> list[dict]:
    from finfocus.db import reader

    async with reader(database_url) as conn:
        return await reads.anomalies(conn, since, severities, statuses)


def _expand(severity: list[str] | None) -> list[str]:
    """`--severity high` means exactly high (repeatable); `high+` means high or worse."""
    try:
        return reads.expand_severities(severity)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


#: how dimension values read best: provider, account, service, then the rest
_ORDER = (
    "ProviderName",
    "BillingAccountId",
    "SubAccountId",
    "ServiceName",
    "ServiceCategory",
    "RegionId",
)


def _ordered(dimension: dict) -> list[str]:
    keys = sorted(dimension, key=lambda k: (_ORDER.index(k) if k in _ORDER else len(_ORDER), k))
    return [dimension[k] for k in keys]


def _days(r: dict) -> int:
    start = datetime.fromisoformat(r["window_start"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(r["window_end"].replace("Z", "+00:00"))
    return max(1, round((end - start).total_seconds() / 86400))


def _print(rows: list[dict], output: OutputFormat, wide: bool = False) -> None:
    if output == OutputFormat.JSON:
        print_json({"anomalies": rows})
    elif output == OutputFormat.NDJSON:
        print_ndjson(rows)
    else:
        from finfocus.cli.output import Column, render_table
        from finfocus.cli.vocab import cents, plural

        render_table(
            [
                Column("id", kind="id", prefix=True),
                Column("impact", kind="money"),
                Column("severity", kind="id"),
                Column("dimension", kind="key"),
                Column("start", kind="date", drop=3),
                Column("days", kind="number", drop=2),
                Column("actual", kind="money", drop=4),
                Column("%", kind="number", drop=1),
                Column("status", drop=5),
            ],
            [
                (
                    r["anomaly_id"],
                    f"{cents(r['impact'])} {r['currency']}",
                    r["severity"],
                    " / ".join(_ordered(r["dimension"])),
                    r["window_start"][:10],
                    _days(r),
                    cents(r["actual_cost"]),
                    r.get("impact_pct") or "",
                    r["status"],
                )
                for r in rows
            ],
            title=plural(len(rows), "anomaly", "anomalies"),
            wide=wide,
        )


def series_text(series: list | None) -> str:
    """The daily series as a sparkline with its days and range, for `show`."""
    from finfocus.cli.output import sparkline
    from finfocus.cli.vocab import cents

    if not series:
        return "not available (no cost lines of this dimension are readable)"
    costs = [c for _, c in series]
    return (
        f"{sparkline(costs)}  {series[0][0]} to {series[-1][0]}, daily "
        f"{cents(min(costs))} to {cents(max(costs))}"
    )


def series_window(r: dict) -> tuple:
    """The days `show` draws: three weeks before the anomalous window, the window, a week after."""
    from datetime import timedelta

    start = datetime.fromisoformat(r["window_start"].replace("Z", "+00:00")).date()
    end = datetime.fromisoformat(r["window_end"].replace("Z", "+00:00")).date()
    return start - timedelta(days=21), end + timedelta(days=7), end


async def fetch_series(conn, r: dict) -> list | None:
    """The anomaly's daily series from the cost lines; None when it cannot be read."""
    import asyncpg

    from schemas.reads.series import daily_costs

    start, end, window_end = series_window(r)
    try:
        series = await daily_costs(conn, r["dimension"], start, end)
    except (asyncpg.PostgresError, OSError):
        return None
    while series and series[-1][0] >= window_end and not series[-1][1]:
        series.pop()  # days after the window not billed yet
    return series


def show_detail(r: dict, feedback: dict | None, series: list | None = None) -> None:
    """`anomalies show`: one field per line (the daily series as a sparkline), the root causes
    below, the feedback with its note."""
    from finfocus.cli.output import Column, render_detail, render_table
    from finfocus.cli.vocab import cents

    fb = feedback or {}
    render_detail(
        f"Anomaly {r['anomaly_id']}",
        [
            ("dimension", ", ".join(f"{k}={v}" for k, v in r["dimension"].items())),
            ("window", f"{r['window_start']} to {r['window_end']} ({_days(r)} days)"),
            ("series", series_text(series)),
            ("expected", f"{cents(r['expected_cost'])} {r['currency']}"),
            ("actual", f"{cents(r['actual_cost'])} {r['currency']}"),
            (
                "impact",
                f"{cents(r['impact'])} {r['currency']}"
                + (f" ({r['impact_pct']} %)" if r.get("impact_pct") else ""),
            ),
            ("severity", r["severity"]),
            ("status", r["status"]),
            ("detector", r.get("detector")),
            ("score", r.get("score")),
            ("detected", r.get("detected_at")),
            ("feedback", fb.get("verdict") or "none yet"),
            *([("note", fb["note"])] if fb.get("note") else []),
            *([("feedback by", fb["actor"])] if fb.get("actor") else []),
        ],
    )
    if r.get("root_causes"):
        render_table(
            [Column("root cause", kind="key"), Column("contribution", kind="money")],
            [
                (", ".join(f"{k}={v}" for k, v in c["dimension"].items()), cents(c["contribution"]))
                for c in r["root_causes"]
            ],
        )


async def resolve_anomaly_id(conn, prefix: str) -> str:
    """A full id or a unique prefix of one (like git): exit 1 if none, 2 (with the candidates)
    if several."""
    from finfocus.cli.output import PREFIX_CANDIDATES, resolve_prefix

    found = [
        r["anomaly_id"]
        for r in await conn.fetch(
            f"SELECT anomaly_id FROM {VIEW} WHERE starts_with(anomaly_id, $1) "
            "ORDER BY anomaly_id = $1 DESC, anomaly_id LIMIT $2",
            prefix,
            PREFIX_CANDIDATES,
        )
    ]
    return resolve_prefix("anomaly", prefix, found)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `finfocus` app."""
    anomalies = typer.Typer(
        help="Cost anomalies: list them, give feedback, manage monitors.", no_args_is_help=True
    )
    app.add_typer(anomalies, name="anomalies")

    @anomalies.command("list")
    def list_(
        since: str = typer.Option(
            None,
            "--since",
            help="Only anomalies whose window ends after D (YYYY-MM-DD, RFC 3339, 7d)",
        ),
        severity: list[str] = typer.Option(
            None,
            "--severity",
            help="low, medium, high or critical (repeatable or comma-separated); high+ means high or worse",
        ),
        status: list[str] = typer.Option(
            None, "--status", help="open, ongoing, resolved or acknowledged (repeatable)"
        ),
        output: OutputFormat = OUTPUT_OPTION,
        wide: bool = WIDE_OPTION,
    ) -> None:
        """List detected anomalies, most recent first; `--output json` prints {"anomalies": [...]}."""
        from finfocus.settings import FinFocusSettings

        window = parse_since(since)
        severities = _expand(severity)
        from finfocus.cli.remote import remote

        api = remote()
        if api is not None:  # a remote deployment: GET /api/v1/anomalies answers the same records
            params = [("severity", s) for s in severities] + [("status", s) for s in status or []]
            if window is not None:
                params.append(("since", window.isoformat()))
            _print(api.get("/api/v1/anomalies", params)["anomalies"], output, wide)
            return

        async def go() -> None:
            _print(
                await fetch_anomalies(
                    FinFocusSettings().database, window, severities, list(status or [])
                ),
                output,
                wide,
            )

        run(go())

    register_admin(anomalies)

    @anomalies.command("show")
    def show(
        anomaly_id: str = typer.Argument(
            ..., help="Anomaly id (anm-...) or a unique prefix of one"
        ),
        output: OutputFormat = OUTPUT_OPTION,
    ) -> None:
        """Show one anomaly with its root causes and the feedback given (verdict and note)."""
        from finfocus.db import reader
        from finfocus.settings import FinFocusSettings

        async def go() -> None:
            async with reader(FinFocusSettings().database) as conn:
                full = await resolve_anomaly_id(conn, anomaly_id)
                row = await conn.fetchrow(f"SELECT * FROM {VIEW} WHERE anomaly_id = $1", full)
                if row is None:
                    fail(f"no anomaly {anomaly_id}")
                row = dict(row)
                series = (
                    await fetch_series(conn, row["record"])
                    if output == OutputFormat.TABLE
                    else None
                )
            note = {
                "verdict": row["feedback"],
                "note": row.get("feedback_note"),
                "actor": row.get("feedback_actor"),
            }
            if output != OutputFormat.TABLE:
                print_json(
                    row["record"] | {"feedback": row["feedback"], "feedback_note": note["note"]}
                )
                return
            show_detail(row["record"], note if row["feedback"] else None, series)

        run(go())


def _monitor_rows(monitors) -> list[dict]:
    return [
        {
            "name": m.name,
            "dimensions": list(m.dimensions),
            "filters": dict(m.filters),
            "top": m.top,
            "detector": m.detector,
            "params": dict(m.params),
        }
        for m in monitors
    ]


async def _stored_monitors(name: str | None = None) -> list[dict]:
    """The monitors in effect, from `anomaly.v_monitors` through the read-only role."""
    import asyncpg

    from finfocus.cli.remote import remote
    from finfocus.db import reader
    from finfocus.settings import FinFocusSettings

    api = remote()
    if api is not None:  # a remote deployment: GET /api/v1/monitors, in the same columns
        keys: dict[str, Any] = {
            "name": None,
            "dimensions": [],
            "filters": {},
            "top": None,
            "detector": "robust-seasonal",
            "params": {},
        }
        found = api.get("/api/v1/monitors")["monitors"]
        return [
            {k: r.get(k, default) for k, default in keys.items()}
            for r in found
            if name is None or r["name"] == name
        ]
    try:
        async with reader(FinFocusSettings().database) as conn:
            rows = await conn.fetch(
                "SELECT name, spec FROM anomaly.v_monitors WHERE $1::text IS NULL OR name = $1 ORDER BY name",
                name,
            )
    except asyncpg.UndefinedTableError:
        fail("the anomaly service has not created its monitors yet (start it: finfocus up)")
    except (OSError, asyncpg.PostgresError) as exc:
        fail(f"cannot read the monitors: {exc}")
    return [
        {
            "name": r["name"],
            "dimensions": [],
            "filters": {},
            "top": None,
            "detector": "robust-seasonal",
            "params": {},
            **r["spec"],
        }
        for r in rows
    ]


def _actor() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        return "unknown"


async def _send_monitor_command(command, wait: float) -> dict | None:
    """Publish a MonitorCommand v1 signed `cli`; the anomaly service's audit row for it once it
    shows within `wait` seconds, else None."""
    import asyncio

    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    from finfocus.cli.publish import sign_as_cli
    from finfocus.cli.remote import remote
    from finfocus.db import reader
    from finfocus.settings import FinFocusSettings
    from schemas.monitors import MONITOR_COMMANDS
    from schemas.topics import schema_headers

    api = remote()
    if api is not None:
        return await _remote_monitor_command(api, command, wait)
    settings = FinFocusSettings()
    value = command.model_dump_json().encode()
    # signed as the command line: the anomaly service applies only signed monitor commands
    signature = sign_as_cli(settings, MONITOR_COMMANDS, value)
    headers = [(k, v.encode()) for k, v in schema_headers("MonitorCommand").items()]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka, enable_idempotence=False)
    try:
        await producer.start()
        await producer.send_and_wait(
            MONITOR_COMMANDS, value, key=command.name.encode(), headers=[*headers, signature]
        )
    except KafkaError as exc:
        fail(f"cannot send the monitor command to the broker at {settings.kafka}: {exc}")
    finally:
        await producer.stop()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while wait > 0:
        async with reader(settings.database) as conn:
            row = await conn.fetchrow(
                "SELECT outcome, detail, actor FROM anomaly.v_monitor_audit WHERE command_id = $1",
                command.command_id,
            )
        if row is not None:
            return dict(row)
        if loop.time() >= deadline:
            break
        await asyncio.sleep(0.3)
    return None


async def _remote_monitor_command(api, command, wait: float) -> dict | None:
    """PUT or DELETE /api/v1/monitors/{name} (admin): the API sends the command as the token's
    holder and answers with the outcome once the anomaly service audited it (else 202, then
    its audit is polled up to `wait` seconds)."""
    import asyncio

    from finfocus.cli.remote import RemoteError, path

    try:
        if command.action == "remove":
            status, answer = api.request("DELETE", path("monitors", command.name))
        else:
            status, answer = api.request(
                "PUT", path("monitors", command.name), json=command.monitor.model_dump(mode="json")
            )
    except RemoteError as exc:
        if exc.status == 404:
            fail(f"no monitor {command.name}")
        if exc.status == 422:
            fail(f"monitor {command.name}: {exc.detail}")
        api.fail(exc)
    if status == 200:
        return {"outcome": answer["outcome"], "detail": None, "actor": None}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while loop.time() < deadline:
        audit = api.get("/api/v1/monitors/audit")["audit"]
        row = next((a for a in audit if a["command_id"] == answer["decision_id"]), None)
        if row is not None:
            return row
        await asyncio.sleep(0.3)
    return None


def _report(name: str, verb: str, audit: dict | None, wait: float) -> None:
    if audit is None:
        if wait > 0:
            fail(
                f"monitor {name}: sent, but the anomaly service has not applied it within {wait:.0f}s "
                "(it will when it runs)"
            )
        typer.echo(f"monitor {name}: sent")
    elif audit["outcome"] == "refused":
        fail(f"monitor {name}: the anomaly service refused it: {audit['detail']}")
    else:
        typer.echo(
            f"monitor {name} {verb}" + (" (no change)" if audit["outcome"] == "unchanged" else "")
        )


def _print_monitors(rows: list[dict], output: OutputFormat, wide: bool = False) -> None:
    if output == OutputFormat.JSON:
        print_json({"monitors": rows})
    elif output == OutputFormat.NDJSON:
        print_ndjson(rows)
    else:
        from finfocus.cli.output import Column

        print_table(
            [
                "name",
                Column("dimensions", kind="key"),
                Column("filters", kind="key"),
                "top",
                Column("detector", drop=1),
                Column("params", kind="key"),
            ],
            [
                (
                    r["name"],
                    ", ".join(r["dimensions"]),
                    ", ".join(f"{k}={v}" for k, v in r["filters"].items()),
                    r["top"] or "",
                    r["detector"],
                    ", ".join(f"{k}={v}" for k, v in r["params"].items()),
                )
                for r in rows
            ],
            wide=wide,
        )


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r}: expected {what} as KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def _param_value(text: str):
    import yaml

    return yaml.safe_load(text)


def _feedback_remote(api, anomaly_id: str, verdict: str, note: str | None) -> None:
    """POST /api/v1/anomalies/{id}/feedback; a unique prefix is resolved on the API's list."""
    from finfocus.cli.remote import RemoteError, path

    body = {"verdict": verdict, **({"note": note} if note is not None else {})}
    try:
        api.request("POST", path("anomalies", anomaly_id, "feedback"), json=body)
    except RemoteError as exc:
        if exc.status != 404:
            api.fail(exc)
        from finfocus.cli.output import resolve_prefix

        found = sorted(
            a["anomaly_id"]
            for a in api.get("/api/v1/anomalies")["anomalies"]
            if a["anomaly_id"].startswith(anomaly_id)
        )
        anomaly_id = resolve_prefix("anomaly", anomaly_id, found)
        api.call("POST", path("anomalies", anomaly_id, "feedback"), json=body)
    typer.echo(f"feedback '{verdict}' sent for {anomaly_id}")


def register_admin(anomalies: typer.Typer) -> None:
    """`anomalies feedback` and `anomalies monitors ...`."""

    @anomalies.command("feedback")
    def feedback(
        anomaly_id: str = typer.Argument(
            ..., help="Anomaly id (anm-...) or a unique prefix of one"
        ),
        verdict: str = typer.Argument(
            ..., help="yes (real), no (false alarm) or planned (expected spend)"
        ),
        note: str = typer.Option(None, "--note", help="Free text kept with the verdict"),
    ) -> None:
        """Tell the detector whether an anomaly was real; 'no' and 'planned' mute its series for a while."""
        if verdict not in ("yes", "no", "planned"):
            raise typer.BadParameter(f"{verdict!r}: use yes, no or planned")
        from finfocus.cli.remote import remote

        api = remote()
        if api is not None:  # a remote deployment: the API publishes it as the token's user
            _feedback_remote(api, anomaly_id, verdict, note)
            return

        async def go() -> None:
            from aiokafka import AIOKafkaProducer
            from aiokafka.errors import KafkaError

            from finfocus.cli.publish import sign_as_cli
            from finfocus.db import reader
            from finfocus.settings import FinFocusSettings

            settings = FinFocusSettings()
            nonlocal anomaly_id
            async with reader(settings.database) as conn:
                anomaly_id = await resolve_anomaly_id(conn, anomaly_id)
            from schemas.anomaly import AnomalyFeedbackV1  # pydantic models: built when used

            body = AnomalyFeedbackV1(
                anomaly_id=anomaly_id, verdict=verdict, note=note, given_at=datetime.now(UTC)
            )
            value = body.model_dump_json().encode()
            # signed as the command line: the anomaly service records only signed verdicts
            signature = sign_as_cli(settings, FEEDBACK_TOPIC, value)
            producer = AIOKafkaProducer(bootstrap_servers=settings.kafka)
            try:
                await producer.start()
                await producer.send_and_wait(
                    FEEDBACK_TOPIC, value, key=anomaly_id.encode(), headers=[signature]
                )
            except KafkaError as exc:
                fail(f"cannot send the feedback to the broker at {settings.kafka}: {exc}")
            finally:
                await producer.stop()
            typer.echo(f"feedback '{verdict}' sent for {anomaly_id}")

        run(go())

    monitors = typer.Typer(
        help="Monitors: what the anomaly service watches (changed by signed commands it "
        "applies and audits).",
        no_args_is_help=True,
    )
    anomalies.add_typer(monitors, name="monitors")
    wait_option = typer.Option(
        30.0, "--wait", help="seconds to wait for the anomaly service (0: do not wait)"
    )

    @monitors.command("list")
    def monitors_list(output: OutputFormat = OUTPUT_OPTION, wide: bool = WIDE_OPTION) -> None:
        """List the monitors in effect (anomaly.v_monitors)."""
        _print_monitors(run(_stored_monitors()), output, wide)

    @monitors.command("add")
    def monitors_add(
        name: str = typer.Argument(..., help="kebab-case monitor name"),
        dimension: list[str] = typer.Option(
            None,
            "--dimension",
            "-d",
            help="ProviderName, SubAccountId, ServiceName, RegionId, tag:KEY, ... (repeatable)",
        ),
        filters: list[str] = typer.Option(
            None, "--filter", "-f", help="DIMENSION=VALUE a line must match (repeatable)"
        ),
        top: int = typer.Option(
            None, "--top", min=1, help="Watch only the N costliest values of the last 30 days"
        ),
        detector: str = typer.Option(
            "robust-seasonal", "--detector", help="robust-seasonal or mad"
        ),
        params: list[str] = typer.Option(
            None,
            "--param",
            "-p",
            help="Detector parameter KEY=VALUE, e.g. threshold=6 (repeatable)",
        ),
        replace: bool = typer.Option(False, "--replace", help="Replace a monitor of the same name"),
        wait: float = wait_option,
    ) -> None:
        """Add a dimensional (--dimension) or custom (--filter) monitor: checked here, sent as a
        signed MonitorCommand to the anomaly service, which applies and audits it."""
        from schemas.monitors import MonitorCommandV1
        from services.anomaly.monitors import MonitorSpec, spec_of

        try:
            spec = MonitorSpec(
                name=name,
                dimensions=list(dimension or []),
                filters=_pairs(filters, "--filter"),
                top=top,
                detector=detector,
                params={k: _param_value(v) for k, v in _pairs(params, "--param").items()},
            )
            command = MonitorCommandV1(
                command_id=f"cli-{uuid.uuid4().hex}",
                action="set",
                name=name,
                monitor=spec_of(spec.to_monitor()),
                actor=_actor(),
                issued_at=datetime.now(UTC),
            )
        except ValueError as exc:
            fail(f"invalid monitor: {exc}", code=2)
        if not replace and run(_stored_monitors(name)):
            fail(f"monitor {name} exists (use --replace)")
        _report(name, "saved", run(_send_monitor_command(command, wait)), wait)

    @monitors.command("remove")
    def monitors_remove(
        name: str = typer.Argument(..., help="Monitor name"), wait: float = wait_option
    ) -> None:
        """Remove a monitor (the last one cannot be removed: add another first)."""
        from schemas.monitors import MonitorCommandV1

        if not run(_stored_monitors(name)):
            fail(f"no monitor {name}")
        command = MonitorCommandV1(
            command_id=f"cli-{uuid.uuid4().hex}",
            action="remove",
            name=name,
            actor=_actor(),
            issued_at=datetime.now(UTC),
        )
        _report(name, "removed", run(_send_monitor_command(command, wait)), wait)

    @monitors.command("validate")
    def monitors_validate(path: str = typer.Argument(..., help="A monitors YAML file")) -> None:
        """Check a monitors file against the dimension and detector registries."""
        from pathlib import Path

        from services.anomaly.monitors import load_monitors

        if not Path(path).exists():
            fail(f"{path} does not exist", code=2)
        try:
            found = load_monitors(Path(path))
        except Exception as exc:  # noqa: BLE001 - any reason the file is invalid (YAML, schema, values) is shown in one line
            fail(f"{path}: {exc}")
        typer.echo(f"{path}: {len(found)} monitor(s) valid")
