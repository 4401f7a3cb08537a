"""`finfocus remediation|playbooks|recommendations|savings|metrics`: remediation commands.

Reads go through the `remediation.v_*` views (read-only role); decisions (approve, reject,
undo, dismiss, snooze) are published as signed events (`remediation-decisions`,
`recommendation-decisions`) that the remediation service applies and audits, and metrics
imports are published on the `resource-metrics` topic.
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

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
from schemas.reads import remediation as reads
from schemas.reads.remediation import (
    SAVINGS_KEYS,
    recommendation_totals,
    savings_groups,
    savings_totals,
)

__all__ = ["SAVINGS_KEYS", "recommendation_totals", "register", "savings_groups", "savings_totals"]

STATUSES = ("pending-approval", "approved", "executed", "dry-run", "rejected", "expired", "failed")

remediation_app = typer.Typer(
    help="Remediation commands: list, approve, reject, undo, audit.", no_args_is_help=True
)
playbooks_app = typer.Typer(
    help="Remediation playbooks (YAML in FINFOCUS_HOME/playbooks/).", no_args_is_help=True
)
recommendations_app = typer.Typer(
    help="Savings recommendations from billing data and utilisation.", no_args_is_help=True
)
savings_app = typer.Typer(
    help="Realised against expected savings of executed actions.", no_args_is_help=True
)
metrics_app = typer.Typer(
    help="Resource utilisation (CPU, network) for recommendations.", no_args_is_help=True
)


def _settings():
    from finfocus.settings import FinFocusSettings

    return FinFocusSettings()


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no user name in some containers (no passwd entry)
        return "cli"


# --- remediation -------------------------------------------------------------------------


def _remote():
    from finfocus.cli.remote import remote

    return remote()


async def _list_commands(status: str | None) -> list[dict]:
    from finfocus.db import reader

    api = _remote()
    if api is not None:  # a remote deployment: GET /api/v1/remediation/commands, the same list
        return api.get("/api/v1/remediation/commands", {"status": status} if status else None)[
            "commands"
        ]

    async with reader(_settings().database) as conn:
        rows = await conn.fetch(
            "SELECT command, status, result FROM remediation.v_actions "
            "WHERE ($1::text IS NULL OR status = $1) ORDER BY issued_at, command_id",
            status,
        )
    return [{**r["command"], "status": r["status"], "result": r["result"]} for r in rows]


@remediation_app.command("list")
def list_commands(
    status: str = typer.Option(
        None, "--status", "-s", help=f"Only this status: {', '.join(STATUSES)}"
    ),
    output: OutputFormat = OUTPUT_OPTION,
    wide: bool = WIDE_OPTION,
) -> None:
    """List remediation commands with their status and result."""
    if status is not None and status not in STATUSES:
        fail(f"unknown status {status!r}; expected one of {', '.join(STATUSES)}", 2)
    commands = run(_list_commands(status))
    if output == OutputFormat.JSON:
        print_json({"commands": commands})
    elif output == OutputFormat.NDJSON:
        print_ndjson(commands)
    else:
        from finfocus.cli.output import Column, render_table
        from finfocus.cli.vocab import cents

        ordered = sorted(
            commands, key=lambda c: -Decimal(str(c.get("expected_monthly_savings") or 0))
        )
        render_table(
            [
                Column("id", kind="id", prefix=True),
                Column("status", kind="id"),
                Column("action", kind="id"),
                Column("monthly", kind="money"),
                Column("resource", kind="key"),
                Column("mode", drop=3),
                Column("playbook", drop=2),
                Column("reason", drop=1),
            ],
            [
                [
                    c["command_id"],
                    c["status"],
                    c["action"],
                    cents(c.get("expected_monthly_savings")),
                    c["target"]["resource_id"],
                    c["mode"],
                    c.get("playbook"),
                    c["reason"]["text"],
                ]
                for c in ordered
            ],
            title="Remediation commands, largest saving first",
            wide=wide,
            whole="finfocus remediation show ID",
        )


async def _command_ids(prefix: str) -> list[str]:
    """Ids of the commands that start with `prefix` (the exact id first when it exists)."""
    from finfocus.cli.output import PREFIX_CANDIDATES
    from finfocus.db import reader

    api = _remote()
    if api is not None:
        return sorted(
            (
                c["command_id"]
                for c in api.get("/api/v1/remediation/commands")["commands"]
                if c["command_id"].startswith(prefix)
            ),
            key=lambda c: (c != prefix, c),
        )
    async with reader(_settings().database) as conn:
        return [
            r["command_id"]
            for r in await conn.fetch(
                "SELECT command_id FROM remediation.v_actions WHERE starts_with(command_id, $1) "
                "ORDER BY command_id = $1 DESC, command_id LIMIT $2",
                prefix,
                PREFIX_CANDIDATES,
            )
        ]


def _resolve_command(prefix: str) -> str:
    """A full command id or a unique prefix of one (like git): exit 1 if none, 2 if several."""
    from finfocus.cli.output import resolve_prefix

    return resolve_prefix("command", prefix, run(_command_ids(prefix)))


def command_detail(c: dict) -> None:
    """`remediation show`: one field per line, the reason and the result whole (folded)."""
    from finfocus.cli.output import render_detail
    from finfocus.cli.vocab import cents

    target = c.get("target") or {}
    render_detail(
        f"Remediation command {c['command_id']}",
        [
            (k, v)
            for k, v in [  # unset fields left out
                ("status", c.get("status")),
                ("action", c.get("action")),
                ("mode", c.get("mode")),
                ("resource", target.get("resource_id")),
                *((k, v) for k, v in target.items() if k != "resource_id"),
                (
                    "monthly",
                    f"{cents(c.get('expected_monthly_savings'))} {c.get('currency') or ''}".strip(),
                ),
                ("playbook", c.get("playbook")),
                ("anomaly", c.get("anomaly_id")),
                ("recommendation", c.get("recommendation_id")),
                ("issued", c.get("issued_at")),
                ("expires", c.get("expires_at")),
                ("reason", (c.get("reason") or {}).get("text")),
                *(((f"reason {k}", v) for k, v in (c.get("reason") or {}).items() if k != "text")),
                ("result", c.get("result")),
            ]
            if v not in (None, "", {}, [])
        ],
    )


@remediation_app.command("show")
def show_command(
    command_id: str = typer.Argument(..., help="Command id (cmd-...) or a unique prefix of one"),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """One remediation command, every field, its reason and result whole."""
    full = _resolve_command(command_id)
    found = [c for c in run(_list_commands(None)) if c["command_id"] == full]
    if not found:
        fail(f"no command {command_id}")
    if output == OutputFormat.TABLE:
        command_detail(found[0])
    else:
        print_json(found[0])


def _user() -> str:
    return _actor().removeprefix("cli:")


async def _publish_decision(topic: str, key: str, model, schema: str) -> None:
    """Send a decision signed as the command line; the remediation service applies it."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    from finfocus.cli.publish import sign_as_cli
    from schemas.topics import schema_headers

    settings = _settings()
    value = model.model_dump_json().encode()
    headers = [(k, v.encode()) for k, v in schema_headers(schema).items()]
    headers.append(sign_as_cli(settings, topic, value))
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka, enable_idempotence=False)
    try:
        await producer.start()
        await producer.send_and_wait(topic, value, key=key.encode(), headers=headers)
    except KafkaError as exc:
        fail(f"cannot send the decision to the broker at {settings.kafka}: {exc}")
    finally:
        await producer.stop()


async def _audited(command_id: str, actor: str) -> int:
    from finfocus.db import reader

    async with reader(_settings().database) as conn:
        return await conn.fetchval(
            "SELECT count(*) FROM remediation.v_audit WHERE command_id = $1 AND actor = $2",
            command_id,
            actor,
        )


async def _send_command_decision(
    command_id: str,
    decision: str,
    reason: str | None,
    timeout: float = 15.0,  # noqa: ASYNC109 - at the deadline the caller shows the state seen, not an error
) -> tuple[bool, str]:
    """Check the decision applies (the view), publish it as a RemediationDecision v1 signed
    `cli`, and wait for remediation's audit to show it."""
    import asyncio
    import uuid

    from finfocus.db import reader
    from schemas.decisions import REMEDIATION_DECISIONS, RemediationDecisionV1

    api = _remote()
    if api is not None:
        return _remote_command_decision(api, command_id, decision, reason)
    async with reader(_settings().database) as conn:
        found = [
            r["command_id"]
            for r in await conn.fetch(  # a full id or a unique prefix, like git
                "SELECT command_id FROM remediation.v_actions WHERE starts_with(command_id, $1) "
                "ORDER BY command_id = $1 DESC, command_id LIMIT 6",
                command_id,
            )
        ]
        if found and (found[0] == command_id or len(found) == 1):
            command_id = found[0]
        elif found:
            return False, f"{command_id} is ambiguous: {', '.join(found[:5])}"
        row = await conn.fetchrow(
            "SELECT status, mode, undo, undone_at, expires_at FROM remediation.v_actions WHERE command_id = $1",
            command_id,
        )
    if row is None:
        return False, f"no command {command_id}"
    if decision != "undo" and row["status"] != "pending-approval":
        if row["status"] == "expired":
            return False, f"command {command_id} expired at {row['expires_at']:%Y-%m-%d %H:%M}Z"
        return False, f"command {command_id} is {row['status']}, not pending approval"
    if decision == "undo":
        if row["status"] != "executed" or row["mode"] != "execute":
            return (
                False,
                f"command {command_id} is {row['status']} ({row['mode']}): nothing to undo",
            )
        if not row["undo"]:
            return False, f"command {command_id}: its action cannot be undone"
    before = await _audited(command_id, _actor())
    event = RemediationDecisionV1(
        decision_id=f"dec-{uuid.uuid4().hex}",
        command_id=command_id,
        decision=decision,
        reason=reason,
        actor=_user(),
        decided_at=datetime.now(UTC),
    )
    await _publish_decision(REMEDIATION_DECISIONS, command_id, event, "RemediationDecision")
    deadline = asyncio.get_running_loop().time() + timeout
    while await _audited(command_id, _actor()) <= before:
        if asyncio.get_running_loop().time() > deadline:
            return (
                False,
                f"decision {event.decision_id} sent; the remediation service has not applied it yet",
            )
        await asyncio.sleep(0.3)
    done = {"approve": "approved", "reject": "rejected"}
    return True, (
        f"command {command_id} {done[decision]}"
        if decision in done
        else f"undo of {command_id} requested"
    )


def _remote_command_decision(
    api, command_id: str, decision: str, reason: str | None
) -> tuple[bool, str]:
    """POST /api/v1/remediation/commands/{id}/{decision} as the token's user; the API checks
    the role (403: not an approver) and the state (409), publishes the decision and waits."""
    from finfocus.cli.remote import RemoteError, path

    commands = api.get("/api/v1/remediation/commands")["commands"]
    found = sorted(
        (c["command_id"] for c in commands if c["command_id"].startswith(command_id)),
        key=lambda c: (c != command_id, c),
    )
    if found and (found[0] == command_id or len(found) == 1):
        command_id = found[0]
    elif found:
        return False, f"{command_id} is ambiguous: {', '.join(found[:5])}"
    try:
        status, answer = api.request(
            "POST",
            path("remediation", "commands", command_id, decision),
            json={"reason": reason} if reason is not None else {},
        )
    except RemoteError as exc:
        if exc.status in (404, 409):
            return False, exc.detail
        api.fail(exc)
    if status != 200:
        return (
            False,
            f"decision {answer['decision_id']} sent; the remediation service has not applied it yet",
        )
    done = {"approve": "approved", "reject": "rejected"}
    return True, (
        f"command {command_id} {done[decision]}"
        if decision in done
        else f"undo of {command_id} requested"
    )


async def _decide(command_id: str, approve: bool, reason: str | None) -> tuple[bool, str]:
    return await _send_command_decision(command_id, "approve" if approve else "reject", reason)


async def _wait_for(command_id: str, done: set[str], timeout: float) -> dict | None:  # noqa: ASYNC109 - at the deadline the caller shows the state seen, not an error
    import asyncio

    from finfocus.db import reader

    api = _remote()
    if api is not None:
        return await _remote_wait_for(api, command_id, done, timeout)
    deadline = asyncio.get_running_loop().time() + timeout
    async with reader(_settings().database) as conn:
        while True:
            row = await conn.fetchrow(
                "SELECT status, result, undone_at FROM remediation.v_actions WHERE command_id = $1",
                command_id,
            )
            if row and (row["status"] in done or ("undone" in done and row["undone_at"])):
                return dict(row)
            if asyncio.get_running_loop().time() > deadline:
                return dict(row) if row else None
            await asyncio.sleep(0.5)


async def _remote_wait_for(api, command_id: str, done: set[str], timeout: float) -> dict | None:  # noqa: ASYNC109 - at the deadline the caller shows the state seen, not an error
    """The command's status from the API until it is in `done` (an "undone" audit entry for
    "undone") or `timeout` seconds pass."""
    import asyncio

    from finfocus.cli.remote import path

    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        rows = [
            c
            for c in api.get("/api/v1/remediation/commands")["commands"]
            if c["command_id"] == command_id
        ]
        row = (
            {"status": rows[0]["status"], "result": rows[0]["result"], "undone_at": None}
            if rows
            else None
        )
        if row and "undone" in done:
            audit = api.get(path("remediation", "commands", command_id, "audit"))["audit"]
            row["undone_at"] = next((a["at"] for a in audit if a["event"] == "undone"), None)
        if row and (row["status"] in done or ("undone" in done and row["undone_at"])):
            return row
        if asyncio.get_running_loop().time() > deadline:
            return row
        await asyncio.sleep(0.5)


def _decision(command_id: str, approve: bool, reason: str | None, wait: float) -> None:
    command_id = _resolve_command(command_id)
    changed, message = run(_decide(command_id, approve, reason))
    if not changed:
        fail(message)
    typer.echo(message)
    if approve and wait > 0:
        row = run(
            _wait_for(command_id, {"executed", "dry-run", "failed", "rejected", "expired"}, wait)
        )
        status = row["status"] if row else "unknown"
        typer.echo(f"status: {status}")
        if status in {"failed", "rejected", "expired"}:
            raise typer.Exit(1)


@remediation_app.command("approve")
def approve(
    command_id: str = typer.Argument(
        ..., help="Command id (see `finfocus remediation list`) or a unique prefix"
    ),
    reason: str = typer.Option(None, "--reason", help="Why, recorded in the audit log"),
    wait: float = typer.Option(0, "--wait", help="Seconds to wait for the executor's result"),
) -> None:
    """Approve a command waiting for approval; the executor runs it (guardrails still apply)."""
    _decision(command_id, True, reason, wait)


@remediation_app.command("reject")
def reject(
    command_id: str = typer.Argument(..., help="Command id or a unique prefix of one"),
    reason: str = typer.Option(None, "--reason", help="Why, recorded in the audit log"),
) -> None:
    """Reject a command waiting for approval: it never runs."""
    _decision(command_id, False, reason, 0)


async def _undo(command_id: str, reason: str | None) -> tuple[bool, str]:
    return await _send_command_decision(command_id, "undo", reason)


@remediation_app.command("undo")
def undo(
    command_id: str = typer.Argument(
        ..., help="Id of an executed command, or a unique prefix of one"
    ),
    reason: str = typer.Option(None, "--reason", help="Why, recorded in the audit log"),
    wait: float = typer.Option(0, "--wait", help="Seconds to wait for the executor to undo it"),
) -> None:
    """Undo an executed, reversible action (restart, previous type, restore from snapshot...)."""
    command_id = _resolve_command(command_id)
    changed, message = run(_undo(command_id, reason))
    if not changed:
        fail(message)
    typer.echo(message)
    if wait > 0:
        row = run(_wait_for(command_id, {"undone"}, wait))
        if not row or not row.get("undone_at"):
            fail("the executor has not undone it yet")
        typer.echo("undone")


async def _audit(command_id: str | None) -> list[dict]:
    from finfocus.db import reader

    api = _remote()
    if api is not None:  # the API has one command's audit (GET .../commands/{id}/audit)
        from finfocus.cli.remote import path

        if command_id is None:
            fail(
                "remote mode (FINFOCUS_API_URL): name a command, `finfocus remediation audit ID`", 2
            )
        return api.get(path("remediation", "commands", command_id, "audit"))["audit"]

    async with reader(_settings().database) as conn:
        rows = await conn.fetch(
            "SELECT * FROM remediation.v_audit WHERE ($1::text IS NULL OR command_id = $1) "
            "ORDER BY audit_id",
            command_id,
        )
    return [dict(r) for r in rows]


@remediation_app.command("audit")
def audit(
    command_id: str = typer.Argument(None, help="Only this command (its id or a unique prefix)"),
    output: OutputFormat = OUTPUT_OPTION,
    wide: bool = WIDE_OPTION,
) -> None:
    """The append-only audit log: what, why, when, state before and after, result."""
    if command_id is not None:
        command_id = _resolve_command(command_id)
    rows = run(_audit(command_id))
    if output == OutputFormat.JSON:
        print_json({"audit": rows})
    elif output == OutputFormat.NDJSON:
        print_ndjson(rows)
    else:
        from finfocus.cli.output import Column, render_table

        render_table(
            [
                Column("at", kind="date"),
                Column("command", kind="id", prefix=True),
                Column("event", kind="id"),
                Column("actor", kind="key", drop=2),
                Column("result", kind="key", drop=3),
                Column("reason", drop=1),
            ],
            [
                [r["at"], r["command_id"], r["event"], r["actor"], r["result"], r["reason"]]
                for r in rows
            ],
            title="Remediation audit",
            wide=wide,
            whole="finfocus remediation audit ID --wide",
        )


# --- playbooks ---------------------------------------------------------------------------


@playbooks_app.command("validate")
def validate_playbook(
    files: list[Path] = typer.Argument(..., help="Playbook YAML file(s)"),
) -> None:
    """Check playbooks against the action registry; exit 1 on the first invalid one."""
    from services.remediation.playbooks import PlaybookError, load_playbook

    bad = 0
    for path in files:
        if not path.is_file():
            fail(f"{path}: no such file", 2)
        try:
            playbook = load_playbook(path)
        except PlaybookError as exc:
            typer.echo(f"invalid: {exc}", err=True)
            bad += 1
            continue
        actions = ", ".join(a.action for a in playbook.actions)
        typer.echo(f"ok: {path}: playbook {playbook.name} ({playbook.mode}; {actions})")
    if bad:
        raise typer.Exit(1)


async def _playbook_switches() -> dict[str, bool]:
    """An admin's switches (`remediation.v_playbooks`), which override the files' `enabled`;
    none when the database cannot be read (the files alone are listed then)."""
    import asyncpg

    from finfocus.db import reader

    try:
        async with reader(_settings().database) as conn:
            rows = await conn.fetch(
                "SELECT name, enabled FROM remediation.v_playbooks WHERE switched"
            )
    except (OSError, asyncpg.PostgresError, RuntimeError):
        return {}
    return {r["name"]: r["enabled"] for r in rows}


@playbooks_app.command("list")
def list_playbooks(output: OutputFormat = OUTPUT_OPTION, wide: bool = WIDE_OPTION) -> None:
    """The playbooks in FINFOCUS_HOME/playbooks/, whether they load, and whether they are
    enabled (an admin's switch, `playbooks enable|disable`, overrides the file)."""
    from services.remediation.playbooks import load_playbooks

    api = _remote()
    if api is not None:  # GET /api/v1/playbooks: what the deployment's remediation loaded
        listed = api.get("/api/v1/playbooks")["playbooks"]
        remote_rows = [
            {
                "name": p["name"],
                "enabled": p["enabled"],
                "mode": p["mode"],
                "trigger": p["trigger"].split(":")[0],
                "actions": p["actions"],
                "approval": None,
                "switched": p["switched"],
            }
            for p in listed
        ]
        _print_playbooks(remote_rows, [], output, wide, api.url)
        return
    directory = _settings().home / "playbooks"
    playbooks, errors = load_playbooks(directory)
    switched = run(_playbook_switches())
    rows = [
        {
            "name": p.name,
            "enabled": switched.get(p.name, p.enabled),
            "mode": p.mode,
            "trigger": "anomaly" if p.trigger.anomaly else "recommendation",
            "actions": [a.action for a in p.actions],
            "approval": p.approval.required,
            "switched": p.name in switched,
        }
        for p in playbooks
    ]
    _print_playbooks(rows, errors, output, wide, str(directory))


def _print_playbooks(
    rows: list[dict], errors: list[str], output: OutputFormat, wide: bool, title: str
) -> None:
    if output == OutputFormat.JSON:
        print_json({"playbooks": rows, "errors": errors})
    elif output == OutputFormat.NDJSON:
        print_ndjson(rows)
    else:
        from finfocus.cli.output import Column

        print_table(
            ["name", "enabled", "mode", "trigger", Column("actions", kind="key"), "approval"],
            [
                [
                    r["name"],
                    r["enabled"],
                    r["mode"],
                    r["trigger"],
                    ", ".join(r["actions"]),
                    "" if r["approval"] is None else r["approval"],
                ]
                for r in rows
            ],
            title=title,
            wide=wide,
        )
        for error in errors:
            typer.echo(f"invalid: {error}", err=True)


async def _switch_playbook(name: str, action: str, reason: str | None, wait: float) -> dict | None:
    """Publish a PlaybookCommand v1 signed `cli`; remediation's audit row for it once it shows
    within `wait` seconds, else None."""
    import asyncio
    import uuid

    from finfocus.db import reader
    from schemas.playbooks import PLAYBOOK_COMMANDS, PlaybookCommandV1

    command = PlaybookCommandV1(
        command_id=f"cli-{uuid.uuid4().hex}",
        action=action,
        name=name,
        reason=reason,
        actor=_user(),
        issued_at=datetime.now(UTC),
    )
    await _publish_decision(PLAYBOOK_COMMANDS, name, command, "PlaybookCommand")
    deadline = asyncio.get_running_loop().time() + wait
    while wait > 0:
        async with reader(_settings().database) as conn:
            row = await conn.fetchrow(
                "SELECT outcome, detail FROM remediation.v_playbook_audit WHERE command_id = $1",
                command.command_id,
            )
        if row is not None:
            return dict(row)
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.3)
    return None


def _switch(name: str, action: str, reason: str | None, wait: float) -> None:
    from pydantic import ValidationError

    from finfocus.cli.remote import path

    api = _remote()
    if api is not None:  # POST /api/v1/playbooks/{name}/enable|disable (admin)
        status, body = api.call("POST", path("playbooks", name, action), json={"reason": reason})
        outcome = body.get("outcome") if status == 200 else None
        typer.echo(
            f"playbook {name}: sent"
            if outcome is None
            else f"playbook {name} {action}d" + (" (no change)" if outcome == "unchanged" else "")
        )
        return
    try:
        audit = run(_switch_playbook(name, action, reason, wait))
    except ValidationError as exc:
        fail(f"invalid playbook name {name!r}: {exc.errors()[0]['msg']}", 2)
    if audit is None:
        if wait > 0:
            fail(
                f"playbook {name}: sent, but the remediation service has not applied it within {wait:.0f}s"
            )
        typer.echo(f"playbook {name}: sent")
    elif audit["outcome"] == "refused":
        fail(f"playbook {name}: the remediation service refused it: {audit['detail']}")
    else:
        typer.echo(
            f"playbook {name} {action}d"
            + (" (no change)" if audit["outcome"] == "unchanged" else "")
        )


_SWITCH_REASON = typer.Option(None, "--reason", help="Why, recorded in the audit")
_SWITCH_WAIT = typer.Option(
    30.0, "--wait", help="seconds to wait for the remediation service (0: do not wait)"
)


@playbooks_app.command("enable")
def enable_playbook(
    name: str = typer.Argument(..., help="Playbook name"),
    reason: str = _SWITCH_REASON,
    wait: float = _SWITCH_WAIT,
) -> None:
    """Switch a playbook on without editing its file (a signed PlaybookCommand the
    remediation service applies and audits; overrides the file's `enabled`)."""
    _switch(name, "enable", reason, wait)


@playbooks_app.command("disable")
def disable_playbook(
    name: str = typer.Argument(..., help="Playbook name"),
    reason: str = _SWITCH_REASON,
    wait: float = _SWITCH_WAIT,
) -> None:
    """Switch a playbook off without editing its file: it plans nothing until enabled again."""
    _switch(name, "disable", reason, wait)


# --- recommendations ---------------------------------------------------------------------


async def _recommendations(state: str | None, rec_type: str | None) -> list[dict]:
    from finfocus.db import reader

    async with reader(_settings().database) as conn:
        return await reads.recommendations(conn, state, rec_type)


@recommendations_app.command("list")
def list_recommendations(
    state: str = typer.Option("open", "--state", help="open, dismissed, snoozed, resolved or all"),
    rec_type: str = typer.Option(None, "--type", help="Only this type, e.g. idle-address"),
    output: OutputFormat = OUTPUT_OPTION,
    wide: bool = WIDE_OPTION,
) -> None:
    """Savings recommendations with their estimated monthly saving."""
    api = _remote()
    if (
        api is not None
    ):  # a remote deployment: GET /api/v1/recommendations answers the same document
        doc = api.get(
            "/api/v1/recommendations", {"state": state, **({"type": rec_type} if rec_type else {})}
        )
    else:
        rows = run(_recommendations(None if state == "all" else state, rec_type))
        doc = {"recommendations": rows, "totals": recommendation_totals(rows)}
    rows = doc["recommendations"]
    if output == OutputFormat.JSON:
        print_json(doc)
    elif output == OutputFormat.NDJSON:
        print_ndjson(rows)
    else:
        from finfocus.cli.output import Column, render_table
        from finfocus.cli.vocab import cents

        render_table(
            [
                Column("id", kind="id", prefix=True),
                Column("monthly", kind="money"),
                Column("type", kind="id"),
                Column("resource", kind="key"),
                Column("currency", drop=3),
                Column("account", drop=4),
                Column("action", drop=5),
                Column("state", drop=6),
                Column("rationale", drop=1),
            ],
            [
                [
                    r["recommendation_id"],
                    cents(r["estimated_monthly_savings"]),
                    r["type"],
                    r["resource_id"],
                    r["currency"],
                    r["account_id"],
                    r["action"],
                    r["state"],
                    r["rationale"],
                ]
                for r in rows
            ],
            title="Recommendations (largest saving first)",
            wide=wide,
            whole="finfocus recommendations show ID",
        )


async def _recommendation_ids(prefix: str) -> list[str]:
    """Ids of the recommendations (any state) that start with `prefix`, the exact id first."""
    from finfocus.cli.output import PREFIX_CANDIDATES
    from finfocus.db import reader

    api = _remote()
    if api is not None:
        found = api.get("/api/v1/recommendations", {"state": "all"})["recommendations"]
        return sorted(
            (r["recommendation_id"] for r in found if r["recommendation_id"].startswith(prefix)),
            key=lambda r: (r != prefix, r),
        )
    async with reader(_settings().database) as conn:
        return [
            r["recommendation_id"]
            for r in await conn.fetch(
                "SELECT recommendation_id FROM remediation.v_recommendations WHERE starts_with(recommendation_id, $1) "
                "ORDER BY recommendation_id = $1 DESC, recommendation_id LIMIT $2",
                prefix,
                PREFIX_CANDIDATES,
            )
        ]


def _resolve_recommendation(prefix: str) -> str:
    """A full recommendation id or a unique prefix of one: exit 1 if none, 2 if several."""
    from finfocus.cli.output import resolve_prefix

    return resolve_prefix("recommendation", prefix, run(_recommendation_ids(prefix)))


def recommendation_detail(r: dict) -> None:
    """`recommendations show`: one field per line, the rationale whole (folded)."""
    from finfocus.cli.output import render_detail
    from finfocus.cli.vocab import cents

    known = (
        "recommendation_id",
        "type",
        "state",
        "resource_id",
        "account_id",
        "action",
        "estimated_monthly_savings",
        "currency",
        "rationale",
    )
    render_detail(
        f"Recommendation {r['recommendation_id']}",
        [
            ("type", r.get("type")),
            ("state", r.get("state")),
            ("resource", r.get("resource_id")),
            ("account", r.get("account_id")),
            ("action", r.get("action")),
            (
                "monthly",
                f"{cents(r.get('estimated_monthly_savings'))} {r.get('currency') or ''}".strip(),
            ),
            *(
                (k.replace("_", " "), v)
                for k, v in r.items()
                if k not in known and v not in (None, "", {}, [])
            ),
            ("rationale", r.get("rationale")),
        ],
    )


@recommendations_app.command("show")
def show_recommendation(
    rec_id: str = typer.Argument(..., help="Recommendation id (rec-...) or a unique prefix of one"),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """One recommendation, every field, its rationale whole."""
    full = _resolve_recommendation(rec_id)
    api = _remote()
    if api is not None:
        rows = api.get("/api/v1/recommendations", {"state": "all"})["recommendations"]
    else:
        rows = run(_recommendations(None, None))
    found = [r for r in rows if r["recommendation_id"] == full]
    if not found:
        fail(f"no recommendation {rec_id}")
    if output == OutputFormat.TABLE:
        recommendation_detail(found[0])
    else:
        print_json(found[0])


async def _set_state(
    rec_id: str,
    state: str,
    reason: str | None,
    until: datetime | None,
    timeout: float = 15.0,  # noqa: ASYNC109 - at the deadline the caller shows the state seen, not an error
) -> bool:
    """Publish a RecommendationDecision v1 signed `cli`; wait for the view to show it."""
    import asyncio
    import uuid

    from finfocus.db import reader
    from schemas.decisions import RECOMMENDATION_DECISIONS, RecommendationDecisionV1

    api = _remote()
    if api is not None:
        return _remote_set_state(api, rec_id, state, reason, until)

    async def current() -> str | None:
        async with reader(_settings().database) as conn:
            return await conn.fetchval(
                "SELECT state FROM remediation.v_recommendations WHERE recommendation_id = $1",
                rec_id,
            )

    if await current() is None:
        return False
    event = RecommendationDecisionV1(
        decision_id=f"dec-{uuid.uuid4().hex}",
        recommendation_id=rec_id,
        decision="dismiss" if state == "dismissed" else "snooze",
        reason=reason or state,
        until=until,
        actor=_user(),
        decided_at=datetime.now(UTC),
    )
    await _publish_decision(RECOMMENDATION_DECISIONS, rec_id, event, "RecommendationDecision")
    deadline = asyncio.get_running_loop().time() + timeout
    while await current() != state:
        if asyncio.get_running_loop().time() > deadline:
            fail(
                f"decision {event.decision_id} sent; the remediation service has not applied it yet"
            )
        await asyncio.sleep(0.3)
    return True


def _remote_set_state(
    api, rec_id: str, state: str, reason: str | None, until: datetime | None
) -> bool:
    """POST /api/v1/recommendations/{id}/dismiss|snooze as the token's user."""
    from finfocus.cli.remote import RemoteError, path

    decision = "dismiss" if state == "dismissed" else "snooze"
    body = {"reason": reason or state, **({"until": until.isoformat()} if until else {})}
    try:
        status, answer = api.request("POST", path("recommendations", rec_id, decision), json=body)
    except RemoteError as exc:
        if exc.status == 404:
            return False
        api.fail(exc)
    if status != 200:
        fail(
            f"decision {answer['decision_id']} sent; the remediation service has not applied it yet"
        )
    return True


@recommendations_app.command("dismiss")
def dismiss(
    rec_id: str = typer.Argument(..., help="Recommendation id or a unique prefix of one"),
    reason: str = typer.Option(..., "--reason", help="Why it does not apply"),
) -> None:
    """Dismiss a recommendation for good, with a reason."""
    rec_id = _resolve_recommendation(rec_id)
    if not run(_set_state(rec_id, "dismissed", reason, None)):
        fail(f"no recommendation {rec_id}")
    typer.echo(f"recommendation {rec_id} dismissed")


@recommendations_app.command("snooze")
def snooze(
    rec_id: str = typer.Argument(..., help="Recommendation id or a unique prefix of one"),
    until: datetime = typer.Option(..., "--until", help="Date it comes back, e.g. 2026-12-31"),
    reason: str = typer.Option(..., "--reason", help="Why not now"),
) -> None:
    """Hide a recommendation until a date, with a reason."""
    rec_id = _resolve_recommendation(rec_id)
    until = until if until.tzinfo else until.replace(tzinfo=UTC)
    if not run(_set_state(rec_id, "snoozed", reason, until)):
        fail(f"no recommendation {rec_id}")
    typer.echo(f"recommendation {rec_id} snoozed until {until:%Y-%m-%d}")


# --- savings -------------------------------------------------------------------------------


async def _savings() -> list[dict]:
    from finfocus.db import reader

    async with reader(_settings().database) as conn:
        return await reads.savings(conn)


@savings_app.command("report")
def savings_report(
    by: str = typer.Option(
        "playbook,account,action", "--by", help="Comma-separated: playbook, account, action"
    ),
    output: OutputFormat = OUTPUT_OPTION,
    wide: bool = WIDE_OPTION,
) -> None:
    """Realised against expected monthly savings of executed actions, by playbook, account and action."""
    keys = [k.strip() for k in by.split(",") if k.strip()]
    unknown = [k for k in keys if k not in SAVINGS_KEYS]
    if unknown:
        fail(f"unknown --by key(s) {unknown}; use playbook, account, action", 2)
    api = _remote()
    if api is not None:  # a remote deployment: GET /api/v1/savings answers the same document
        doc = api.get("/api/v1/savings", {"by": by})
    else:
        rows = run(_savings())
        doc = {
            "groups": savings_groups(rows, keys),
            "actions": rows,
            "totals": savings_totals(rows),
        }
    groups = doc["groups"]
    if output == OutputFormat.JSON:
        print_json(doc)
    elif output == OutputFormat.NDJSON:
        print_ndjson(groups)
    else:
        from finfocus.cli.output import Column, render_table
        from finfocus.cli.vocab import cents

        groups.sort(key=lambda g: -Decimal(str(g["expected_monthly"])))
        render_table(
            [
                *(Column(k, kind="key") for k in keys),
                Column("expected", kind="money"),
                Column("realised", kind="money"),
                Column("actions", kind="number"),
                Column("measured", kind="number", drop=2),
                Column("currency", drop=1),
            ],
            [
                [
                    *g["group"].values(),
                    cents(g["expected_monthly"]),
                    cents(g["realised_monthly"]) if g["measured"] else "not measured yet",
                    g["actions"],
                    g["measured"],
                    g["currency"],
                ]
                for g in groups
            ],
            title="Savings (monthly): realised is measured from the bills after each action",
            wide=wide,
        )


# --- metrics -------------------------------------------------------------------------------

METRIC_ALIASES = {
    "resource_id": ("resource_id", "ResourceId", "resource"),
    "date": ("date", "day", "Date"),
    "cpu_avg_pct": ("cpu_avg_pct", "cpu_avg", "cpu"),
    "cpu_max_pct": ("cpu_max_pct", "cpu_max"),
    "cpu_p995_pct": ("cpu_p995_pct", "cpu_p995", "cpu_p99_5"),
    "network_mb": ("network_mb", "network", "net_mb"),
}


def parse_metrics_csv(path: Path) -> tuple[list, list[str]]:
    import csv

    from pydantic import ValidationError

    from schemas.remediation import ResourceMetricV1

    good, errors = [], []
    with path.open(newline="") as handle:
        for line, raw in enumerate(csv.DictReader(handle), start=2):
            row = {}
            for field, names in METRIC_ALIASES.items():
                value = next((raw[n] for n in names if raw.get(n) not in (None, "")), None)
                if value is not None:
                    row[field] = value.strip()
            try:
                good.append(ResourceMetricV1.model_validate(row))
            except ValidationError as exc:
                errors.append(f"line {line}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}")
    return good, errors


async def _publish_metrics(metrics: list) -> None:
    from finfocus.broker import RecordPublisher
    from schemas.topics import Topics, schema_headers

    publisher = RecordPublisher(_settings().kafka)
    await publisher.start()
    try:
        headers = [(k, v.encode()) for k, v in schema_headers("ResourceMetric").items()]
        await publisher.publish(
            Topics.RESOURCE_METRICS,
            [(m.resource_id.encode(), m.model_dump_json().encode(), headers) for m in metrics],
        )
    finally:
        await publisher.stop()


@metrics_app.command("import")
def import_metrics(
    file: Path = typer.Argument(
        ..., help="CSV: resource_id, date, cpu_avg_pct, cpu_max_pct, cpu_p995_pct, network_mb"
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Publish daily CPU and network utilisation per resource on `resource-metrics`."""
    if not file.is_file():
        fail(f"{file}: no such file", 2)
    metrics, errors = parse_metrics_csv(file)
    if metrics:
        run(_publish_metrics(metrics))
    summary = {
        "read": len(metrics) + len(errors),
        "published": len(metrics),
        "rejected": len(errors),
        "errors": errors,
    }
    if output == OutputFormat.TABLE:
        typer.echo(
            f"read {summary['read']}, published {summary['published']}, rejected {summary['rejected']}"
        )
        for error in errors:
            typer.echo(f"rejected: {error}", err=True)
    else:
        print_json(summary)
    if errors:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `finfocus` app."""
    app.add_typer(remediation_app, name="remediation")
    app.add_typer(playbooks_app, name="playbooks")
    app.add_typer(recommendations_app, name="recommendations")
    app.add_typer(savings_app, name="savings")
    app.add_typer(metrics_app, name="metrics")
