"""`finfocus ingest`: import provider billing exports (and replay what was imported).

`finfocus ingest FILE...` acts as the ingest service for one import job: it records the job
in schema `ingest` through the service's store and publishes BillingRecord v1 on
`raw-billing`. `--wait` reads `pricing.v_cost_lines` (through the read-only role) until every
accepted row is priced and stored, and reconciles the totals per currency.
"""

from __future__ import annotations

import asyncio
import sys
import time
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from finfocus.cli.output import (
    OUTPUT_OPTION,
    WIDE_OPTION,
    OutputFormat,
    err_console,
    fail,
    print_json,
    print_ndjson,
    print_table,
    run,
)

IMPORT_COMMAND = "import"


class IngestFormat(StrEnum):
    AUTO = "auto"
    FOCUS = "focus"
    AWS_CUR = "aws-cur"
    AZURE = "azure"
    GCP = "gcp"


class FilesFirstGroup(TyperGroup):
    """`finfocus ingest FILE...` is `finfocus ingest import FILE...`: a first argument that
    is not a sub-command name (replay, jobs, show, import) is taken as a file."""

    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [IMPORT_COMMAND, *args]
        return super().parse_args(ctx, args)


ingest_app = typer.Typer(
    cls=FilesFirstGroup,
    no_args_is_help=True,
    help="Import provider billing exports into FinFocus.\n\n"
    "  finfocus ingest FILE... [--format auto|focus|aws-cur|azure|gcp] [--wait] [--strict]\n"
    "                  [--dry-run] [--replace-scope] [--force]\n\n"
    "imports files (same as `finfocus ingest import FILE...`); give every part of a "
    "multi-file export (a CUR month in several parts) in one command: one job, one version "
    "of each billing period. A job reads and checks its files to the end before it publishes "
    "anything, so a failed import counts nothing. `finfocus ingest replay --job ID | --period "
    "YYYY-MM` publishes again what was imported; `jobs` and `show` report import jobs.",
)


def _settings():
    from services.ingest.config import IngestSettings

    return IngestSettings()


async def _stack(settings):  # noqa: ANN202 - internal
    """The pieces an import job needs when the CLI acts as the ingest service: chunks are
    published with acks=all, and records carrying a billing scope are signed as ingest."""
    from finfocus.broker import RecordPublisher, ensure_topics
    from finfocus.db import create_pool, migrate_url
    from finfocus.telemetry import make_tracer_provider
    from services.ingest.store import MIGRATIONS_DIR, IngestStore

    await migrate_url(settings.database, "ingest", MIGRATIONS_DIR)
    await ensure_topics(settings.kafka, settings.partitions)
    pool = await create_pool(settings.database, min_size=1, max_size=3)
    publisher = RecordPublisher(settings.kafka, acks="all")
    await publisher.start()
    provider = make_tracer_provider("finfocus-ingest")
    return pool, publisher, provider, IngestStore(pool)


def _importer(settings, store, publisher, provider, source: str = "cli"):  # noqa: ANN202 - internal
    from finfocus.signing import service_keys
    from services.ingest.importer import Importer

    keys = service_keys(settings.home, ["ingest"])  # the stack's key file where no secret
    return Importer(
        store,
        publisher,
        provider.get_tracer("finfocus.ingest"),
        source=source,
        keys=keys,
        lease_s=settings.ingest_job_lease_s,
    )


class WaitTimeout(RuntimeError):
    pass


#: what a PostgreSQL restart looks like to a client: refused, lost, still starting up
def _database_away(exc: BaseException) -> bool:
    import asyncpg

    return isinstance(
        exc,
        OSError
        | asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.CannotConnectNowError
        | asyncpg.AdminShutdownError
        | asyncpg.CrashShutdownError
        | asyncio.TimeoutError,
    )


async def wait_until_priced(
    database_url: str,
    job_id: str,
    expected_rows: int,
    timeout: float,  # noqa: ASYNC109 - at the deadline it reports the rows seen, not an error
    poll: float = 0.5,
) -> dict[str, Any]:
    """Wait until pricing has stored the job's rows; returns their count and billed totals
    per currency as stored.

    Progress comes from `pricing.v_job_progress` (one row per job, kept by pricing as it
    stores). The totals need a pass over the job's lines in `v_cost_lines`, so that query
    runs only once progress says every row is in (and, backing off, again if it finds
    fewer): polling it every half second took more CPU than pricing itself on large imports.
    A database that restarts meanwhile is waited for (reconnecting with backoff); the
    deadline then reports how many rows were seen, never a traceback."""
    import asyncpg

    from finfocus.db import reader

    deadline = time.monotonic() + timeout
    query = (
        "SELECT billing_currency, count(*) AS n, coalesce(sum(billed_cost), 0) AS total "
        "FROM pricing.v_cost_lines WHERE import_job_id = $1 GROUP BY billing_currency"
    )
    pause = poll
    seen: int | None = 0
    away: str | None = None
    while True:
        try:
            async with reader(database_url) as conn:
                away = None
                while True:
                    try:
                        progress = (
                            await conn.fetchval(
                                "SELECT rows FROM pricing.v_job_progress WHERE import_job_id = $1",
                                job_id,
                            )
                            or 0
                        )
                    except asyncpg.InvalidSchemaNameError:
                        progress = 0  # pricing has not created its schema yet
                    except asyncpg.UndefinedTableError:
                        progress = (
                            None  # a pricing service from before job progress: sum every time
                        )
                    seen, summed = progress, False
                    if progress is None or progress >= expected_rows:
                        try:
                            rows = await conn.fetch(query, job_id)
                        except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
                            rows = []
                        stored = {
                            "rows": sum(r["n"] for r in rows),
                            "totals": {r["billing_currency"]: Decimal(r["total"]) for r in rows},
                        }
                        if stored["rows"] >= expected_rows:
                            return stored
                        seen, summed = stored["rows"], True
                    if time.monotonic() > deadline:
                        break
                    if (
                        summed
                    ):  # the full sum ran and fell short (redelivery, restatement): back off
                        await asyncio.sleep(pause)
                        pause = min(pause * 2, 10.0)
                    else:
                        await asyncio.sleep(poll)
        except Exception as exc:
            if not _database_away(exc):
                raise
            away = f"{type(exc).__name__}: {exc}".splitlines()[0]
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)
            continue
        break
    shortfall = (
        f"{seen or 0} of {expected_rows} rows of {job_id} priced and stored after {timeout:.0f}s"
    )
    if away:
        raise WaitTimeout(f"{shortfall}; the database was unreachable at the end ({away})")
    raise WaitTimeout(f"{shortfall} (is the pricing service running? see raw-billing.dlq)")


def reconcile(file_totals: dict[str, Any], stored_totals: dict[str, Decimal]) -> dict[str, Any]:
    """File totals of accepted rows against stored totals, per currency, to the cent."""
    from services.ingest.domain import money_text

    currencies = sorted(set(file_totals) | set(stored_totals))
    lines = []
    for currency in currencies:
        expected = Decimal(str(file_totals.get(currency, "0")))
        got = stored_totals.get(currency, Decimal(0))
        cents = Decimal("0.01")
        lines.append(
            {
                "currency": currency,
                "file_total": money_text(expected),
                "stored_total": money_text(got),
                "matches": expected.quantize(cents) == got.quantize(cents),
            }
        )
    return {"reconciled": all(line["matches"] for line in lines), "currencies": lines}


def _progress_bar(enabled: bool):  # noqa: ANN202
    if not enabled:
        return None, None
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )
    task = bar.add_task("importing", total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return bar, update


async def _import(
    files: list[Path],
    format: IngestFormat,
    wait: bool,
    wait_timeout: float,
    progress: bool,
    *,
    force: bool = False,
    replace_scope: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    settings = _settings()
    pool, publisher, provider, store = await _stack(settings)
    bar, update = _progress_bar(progress)
    try:
        importer = _importer(settings, store, publisher, provider)
        if bar:
            bar.start()
        try:
            result = await importer.import_files(
                files,
                format.value,
                update,
                force=force,
                replace_scope=replace_scope,
                dry_run=dry_run,
            )
        finally:
            if bar:
                bar.stop()
        summary = result.summary()
        if result.duplicate_of:
            job = await store.job(result.duplicate_of) or {}
            summary["totals"] = job.get("totals", {})
            summary["rows_published"] = job.get("rows_published", 0)
        if wait and result.status in ("completed", "duplicate") and summary["rows_published"]:
            try:
                stored = await wait_until_priced(
                    settings.database, result.job_id, summary["rows_published"], wait_timeout
                )
                summary["stored_rows"] = stored["rows"]
                summary["reconciliation"] = reconcile(summary["totals"], stored["totals"])
            except WaitTimeout as exc:
                summary["wait_error"] = str(exc)
        return summary
    finally:
        await publisher.stop()
        await pool.close()
        provider.shutdown()


def _print_summary(summary: dict[str, Any], output: OutputFormat) -> None:
    if output == OutputFormat.JSON:
        print_json(summary)
        return
    if output == OutputFormat.NDJSON:
        print_ndjson([summary])
        return
    status = summary["status"]
    if summary.get("duplicate_of"):
        status = (
            f"already imported by {summary['duplicate_of']}: nothing to do (--force imports again)"
        )
    elif status == "dry-run":
        status = "dry run: nothing recorded or published"
    rows = [
        ("job", summary["job_id"]),
        ("status", status),
        ("format", summary.get("format")),
        ("rows read", summary["rows_read"]),
        ("rows published", summary["rows_published"]),
        ("rows rejected", summary["rows_rejected"]),
    ]
    rows += [(f"billed total {c}", v) for c, v in summary.get("totals", {}).items()]
    if summary.get("billing_scopes"):
        rows.append(("billing scopes", ", ".join(summary["billing_scopes"])))
    if "reconciliation" in summary:
        for line in summary["reconciliation"]["currencies"]:
            verdict = "reconciled to the cent" if line["matches"] else "MISMATCH"
            rows.append((f"stored {line['currency']}", f"{line['stored_total']} ({verdict})"))
    if summary.get("wait_error"):
        rows.append(("wait", summary["wait_error"]))
    if summary.get("error"):
        rows.append(("error", summary["error"]))
    print_table(["", "value"], rows, title="FinFocus import")
    if summary.get("scope_changes"):
        print_table(
            ["billing scope", "stored rows", "stored total", "new rows", "new total", "covers"],
            [
                (
                    c["scope"],
                    c["old_rows"],
                    _money(c["old_totals"]),
                    c["new_rows"],
                    _money(c["new_totals"]),
                    "part only" if c["partial"] else "whole",
                )
                for c in summary["scope_changes"]
            ],
            title="billing scopes this import supersedes (stored version -> this file)",
        )
    if summary.get("rejections"):
        print_table(
            ["file", "row", "reason"],
            [(r["file"], r["row"], r["reason"]) for r in summary["rejections"][:20]],
            title=f"rejected rows (first {min(20, len(summary['rejections']))} of {summary['rows_rejected']})",
        )


def _fail_line(message: str, code: int = 1) -> None:
    """The reason on one line (rich would wrap it, and markup would eat `[...]`)."""
    err_console.print(f"error: {message}", markup=False, soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def _money(totals: dict[str, str]) -> str:
    return ", ".join(f"{v} {c}" for c, v in sorted(totals.items())) or "0"


@ingest_app.command(IMPORT_COMMAND)
def import_files(
    files: list[Path] = typer.Argument(
        ...,
        exists=True,
        dir_okay=False,
        readable=True,
        metavar="FILE",
        help="export files (CSV, CSV.gz, JSON lines, Parquet)",
    ),
    format: IngestFormat = typer.Option(
        IngestFormat.AUTO,
        "--format",
        help="export format; auto detects it from the header (no -f: -f is --filter in every command)",
    ),
    wait: bool = typer.Option(
        False,
        "--wait",
        help="return when every accepted row is priced and stored, and reconcile the totals",
    ),
    wait_timeout: float = typer.Option(
        600.0, "--wait-timeout", help="seconds --wait waits at most"
    ),
    strict: bool = typer.Option(False, "--strict", help="exit 1 when any row is rejected"),
    force: bool = typer.Option(
        False, "--force", help="import again files a completed job already imported"
    ),
    replace_scope: bool = typer.Option(
        False,
        "--replace-scope",
        help="let the files replace billing scopes (provider, account, month) they cover only part of",
    ),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="read and check the files and print the billing scopes they would supersede (rows and totals, stored vs new); record and publish nothing",
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Import billing export files as one job and publish their rows on raw-billing.

    The files are read and checked to the end before anything is published: a file that
    fails (truncated, bad encoding, unbalanced quote, NUL byte) publishes nothing and its job
    is `failed`; it can be imported again, as can a file every row of which was rejected. A
    file bringing less than half the rows a billing scope holds now is refused with the
    figures unless --replace-scope is given.

    Exit code 1 when the job failed or its publishing was interrupted (the ingest service
    finishes it), with --strict on any rejected row, and with --wait when the rows were not
    all stored in time or the totals do not reconcile; 2 for a path that is not a regular
    file (a FIFO, a device). Errors are one line on stderr.
    """
    from services.ingest.formats import UnknownFormat
    from services.ingest.importer import ImportRefused, one_line

    bad = [str(f) for f in files if not f.is_file()]
    if bad:  # a FIFO or a device would block or never end
        _fail_line(f"not a regular file: {', '.join(bad)}", 2)
    progress = output == OutputFormat.TABLE and sys.stderr.isatty()
    try:
        summary = run(
            _import(
                files,
                format,
                wait,
                wait_timeout,
                progress,
                force=force,
                replace_scope=replace_scope,
                dry_run=dry_run,
            )
        )
    except (UnknownFormat, ImportRefused) as exc:
        _fail_line(str(exc))
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        _fail_line(one_line(exc))
    _print_summary(summary, output)
    if summary["status"] == "dry-run":
        if summary.get("error"):
            err_console.print(f"would fail: {summary['error']}", markup=False, soft_wrap=True)
        return
    if summary["status"] in ("failed", "abandoned"):
        _fail_line(summary["error"])
    if strict and summary["rows_rejected"]:
        raise typer.Exit(1)
    if (
        summary.get("wait_error")
        or not summary.get("reconciliation", {"reconciled": True})["reconciled"]
    ):
        raise typer.Exit(1)


async def _replay(job: str | None, period: str | None) -> int:
    settings = _settings()
    pool, publisher, provider, store = await _stack(settings)
    try:
        importer = _importer(settings, store, publisher, provider)
        return await importer.replay(job_id=job, period=period)
    finally:
        await publisher.stop()
        await pool.close()
        provider.shutdown()


@ingest_app.command("replay")
def replay(
    job: str | None = typer.Option(None, "--job", help="import job id to publish again"),
    period: str | None = typer.Option(
        None, "--period", help="billing period YYYY-MM: the newest import of each of its scopes"
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Publish again on raw-billing what an import job (or a billing period) published.

    The embedded broker keeps nothing across a restart; consumers are idempotent, so a
    replay never double counts.
    """
    import re

    if bool(job) == bool(period):
        fail("give exactly one of --job ID or --period YYYY-MM", 2)
    if period and not re.fullmatch(r"\d{4}-\d{2}", period):
        fail(f"--period {period!r} is not YYYY-MM", 2)
    sent = run(_replay(job, period))
    result = {"job_id": job, "period": period, "records_published": sent}
    if output == OutputFormat.TABLE:
        print_table(
            ["", "value"], [(k, v) for k, v in result.items() if v is not None], title="replay"
        )
    elif output == OutputFormat.JSON:
        print_json(result)
    else:
        print_ndjson([result])
    if sent == 0:
        fail("nothing to replay (unknown job or period)")


async def _jobs(limit: int, job_id: str | None) -> list[dict[str, Any]]:
    from finfocus.db import reader
    from schemas.reads.ingest import import_jobs

    async with reader(_settings().database) as conn:
        return await import_jobs(conn, limit, job_id)


@ingest_app.command("jobs")
def jobs(
    limit: int = typer.Option(20, min=1, max=10000, help="most recent jobs to list"),
    output: OutputFormat = OUTPUT_OPTION,
    wide: bool = WIDE_OPTION,
) -> None:
    """List recent import jobs (newest first)."""
    found = run(_jobs(limit, None))
    if output == OutputFormat.JSON:
        print_json({"jobs": found})
    elif output == OutputFormat.NDJSON:
        print_ndjson(found)
    else:
        from finfocus.cli.vocab import cents

        print_table(
            [
                "job",
                "version",
                "status",
                "format",
                "read",
                "published",
                "rejected",
                "totals",
                "finished",
            ],
            [
                (
                    j["job_id"],
                    j["version"],
                    j["status"],
                    j["format"],
                    j["rows_read"],
                    j["rows_published"],
                    j["rows_rejected"],
                    ", ".join(f"{cents(v)} {c}" for c, v in (j["totals"] or {}).items()),
                    j["finished_at"],
                )
                for j in found
            ],
            title="import jobs",
            wide=wide,
            drop={"published": 6, "version": 5, "read": 4, "format": 3, "finished": 1},
        )


async def _job_ids(prefix: str) -> list[str]:
    """Ids of the import jobs that start with `prefix`, the exact id first."""
    from finfocus.cli.output import PREFIX_CANDIDATES
    from finfocus.db import reader

    async with reader(_settings().database) as conn:
        return [
            r["job_id"]
            for r in await conn.fetch(
                "SELECT DISTINCT job_id, job_id = $1 AS exact FROM ingest.v_import_jobs WHERE starts_with(job_id, $1) "
                "ORDER BY exact DESC, job_id LIMIT $2",
                prefix,
                PREFIX_CANDIDATES,
            )
        ]


@ingest_app.command("show")
def show(
    job_id: str = typer.Argument(..., help="import job id or a unique prefix of one"),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Show one import job: files, counts, totals, scopes and rejection reasons."""
    from finfocus.cli.output import resolve_prefix

    job_id = resolve_prefix("import job", job_id, run(_job_ids(job_id)))
    found = run(_jobs(1, job_id))
    if not found:
        fail(f"no import job {job_id}")
    job = found[0]
    if output == OutputFormat.JSON:
        print_json(job)
    elif output == OutputFormat.NDJSON:
        print_ndjson([job])
    else:
        from finfocus.cli.output import render_detail

        render_detail(f"Import job {job_id}", list(job.items()))


def register(app: typer.Typer) -> None:
    """Add `finfocus ingest` to the `finfocus` app."""
    app.add_typer(ingest_app, name="ingest")
