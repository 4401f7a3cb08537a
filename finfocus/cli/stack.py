"""`finfocus up|status|down|scale|serve|demo`: the embedded stack and its service processes."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import sys

import typer

from finfocus.cli.output import (
    OUTPUT_OPTION,
    OutputFormat,
    console,
    fail,
    print_json,
    print_ndjson,
    print_table,
)


def _settings():
    from finfocus.settings import FinFocusSettings

    return FinFocusSettings()


def up(
    detach: bool = typer.Option(
        False, "--detach", "-d", help="run in the background; return once every service is up"
    ),
    timeout: float = typer.Option(
        180.0, help="with --detach: seconds to wait for the broker, database and services"
    ),
    replicas: str = typer.Option(
        "",
        "--replicas",
        metavar="SERVICE=N,...",
        help="instances of the consumer services, e.g. pricing=2,anomaly=2 (pricing, anomaly, "
        "forecast, remediation; at most FINFOCUS_PARTITIONS each): they share each topic's "
        "partitions in one consumer group",
    ),
    only: str = typer.Option(
        "",
        "--only",
        metavar="SERVICE,...",
        help="start these services only, e.g. pricing,anomaly (all six by default)",
    ),
) -> None:
    """Start the embedded stack: Kafka broker, PostgreSQL and the five services.

    No broker when FINFOCUS_KAFKA_BOOTSTRAP is set, no PostgreSQL when FINFOCUS_DATABASE_URL is set.

    --replicas runs several instances of a consumer service (`status` lists each);
    `finfocus scale` changes the number on a running stack. --only starts a subset of the
    services. See docs/operations.md.

    Without --detach it runs until Ctrl-C, then stops everything it started.

    Logs go to FINFOCUS_HOME/logs (see docs/operations.md).
    """
    from finfocus.embedded.stack import (
        EmbeddedStack,
        StackError,
        failed_services,
        parse_replicas,
        start_detached,
    )
    from finfocus.settings import SERVICES

    settings = _settings()
    try:
        wanted = parse_replicas(replicas, settings.partitions)
    except ValueError as exc:
        fail(f"--replicas {exc}", code=2)
    services = tuple(s.strip() for s in only.split(",") if s.strip()) or SERVICES
    unknown = [s for s in services if s not in SERVICES]
    if unknown:
        fail(
            f"--only: unknown service(s) {', '.join(unknown)}; choose among {', '.join(SERVICES)}",
            code=2,
        )
    services = tuple(s for s in SERVICES if s in services)  # in the stack's start order
    if detach:
        try:
            state = start_detached(
                settings,
                timeout=timeout,
                replicas=wanted,
                services=services if services != SERVICES else None,
            )
        except StackError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            fail(
                "stopped waiting; the stack goes on starting in the background "
                "(`finfocus status`, `finfocus down`)"
            )
        _print_status(state, OutputFormat.TABLE)
        failed = failed_services(state)
        if failed:
            fail(
                f"service(s) failed to start: {', '.join(failed)}; see {settings.home / 'logs'} "
                "(the rest of the stack keeps running; `finfocus down` stops it)"
            )
        console.print("stack is up; stop it with [bold]finfocus down[/bold]")
        return
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s supervisor %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    from finfocus.telemetry import protect_logging

    protect_logging()  # the supervisor's log holds no URL credential or token either
    stack = EmbeddedStack(settings, services=services, replicas=wanted)

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    # `down` during start-up: unwind what was started so far (start() cleans up on any exit)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        stack.start()
    except StackError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted while starting; everything started so far was stopped")
    logging.getLogger(__name__).info("stack started; Ctrl-C stops it")
    stack.run_forever()


def _recoveries(state: dict) -> list[dict] | None:
    """Rows of `ingest.v_recoveries` (what ingest replayed after broker restarts) and of
    `pricing.v_recoveries` (the stored lines pricing published again), each with its
    `service`, newest first; None when neither view exists or the database does not answer
    quickly."""
    from finfocus.db import reader

    async def fetch() -> list[dict] | None:
        async with reader(_settings().database) as conn:
            found: list[dict] | None = None
            if await conn.fetchval("SELECT to_regclass('ingest.v_recoveries') IS NOT NULL"):
                rows = await conn.fetch(
                    "SELECT 'ingest' AS service, epoch, NULL::timestamptz AS since, started_at, "
                    "finished_at, jobs, rows, state "
                    "FROM ingest.v_recoveries ORDER BY started_at DESC LIMIT 20"
                )
                found = [dict(r) for r in rows]
            if await conn.fetchval("SELECT to_regclass('pricing.v_recoveries') IS NOT NULL"):
                rows = await conn.fetch(
                    "SELECT 'pricing' AS service, epoch, since, started_at, finished_at, "
                    "NULL::integer AS jobs, rows, state "
                    "FROM pricing.v_recoveries ORDER BY started_at DESC LIMIT 20"
                )
                found = sorted(
                    (found or []) + [dict(r) for r in rows],
                    key=lambda r: r["started_at"],
                    reverse=True,
                )
            return found

    if not state.get("database_url"):
        return None
    try:
        return asyncio.run(asyncio.wait_for(fetch(), 5))
    except Exception:  # noqa: BLE001 - status must answer even when the database does not
        return None


def status_document(state: dict, *, with_recovery: bool = True) -> dict:
    """`status --output json`: the contract keys, services as seen through their health
    files (`degraded` with a reason), plus consumers, broker restarts and recovery."""
    from finfocus.embedded.health import service_health
    from finfocus.embedded.stack import broker_status, public_status

    public = public_status(state)
    home = _settings().home.expanduser().resolve()
    health = service_health(home, state.get("services") or {})
    public["services"] = health["services"]
    public["degraded_reasons"] = health["degraded_reasons"]
    public["consumers"] = health["consumers"]
    # each service's /metrics, /healthz, /readyz (from its health file); the embedded Prometheus
    public["metrics"] = health["metrics"]
    public["prometheus_url"] = state.get("prometheus_url")
    # instances per service where more than one runs (`--replicas`, `finfocus scale`)
    public["replicas"] = {k: v for k, v in (state.get("replicas") or {}).items() if v != 1}
    public["broker"] = broker_status(state)
    public["recovery"] = _recoveries(state) if with_recovery else None
    return public


def _print_status(state: dict, output: OutputFormat) -> None:
    public = status_document(state)
    if output is OutputFormat.TABLE:
        console.print(f"kafka_bootstrap: {public['kafka_bootstrap']}")
        console.print(f"database_url:    {public['database_url']}")
        if public.get("prometheus_url"):
            console.print(f"prometheus_url:  {public['prometheus_url']}")
        services = state.get("services") or {}
        reasons = public["degraded_reasons"]
        print_table(
            ["service", "state", "pid", "restarts", "note"],
            [
                [
                    n,
                    public["services"].get(n, e.get("state")),
                    e.get("pid"),
                    e.get("restarts", 0),
                    reasons.get(n) or e.get("reason") or "",
                ]
                for n, e in services.items()
            ],
        )
        if public["consumers"]:
            print_table(
                [
                    "group",
                    "partition",
                    "instance",
                    "committed",
                    "log end",
                    "lag",
                    "flag",
                    "last error",
                ],
                [
                    [
                        c["group"],
                        f"{c['topic']}[{c['partition']}]",
                        c.get("instance"),
                        c["committed"],
                        c["log_end"],
                        c["lag"],
                        "stalled" if c["stalled"] else "retrying" if c["retrying"] else "",
                        c["last_error"] or "",
                    ]
                    for c in public["consumers"]
                ],
            )
        broker = public["broker"]
        for restart in broker.get("restarts") or []:
            console.print(
                f"[yellow]broker restarted at {restart['at']} (epoch {restart['epoch']})[/yellow]: "
                f"{restart.get('lost') or ''}"
            )
        rotations = broker.get("rotations") or []
        if rotations:
            last = rotations[-1]
            outcome = (
                "failed: handled as a broker loss"
                if last.get("failed")
                else f"deferred: {last['deferred']}"
                if last.get("deferred")
                else f"kept {last.get('kept', 0):,} unread record(s), dropped "
                f"{last.get('dropped', 0):,} consumed"
            )
            console.print(
                f"broker log rotated {len(rotations)} time(s), last at {last['at']} "
                f"({last.get('rss_mb_before')} -> {last.get('rss_mb_after')} MB): {outcome}"
            )
        waiting = broker.get("rotation_waiting")
        if waiting:
            console.print(
                f"broker log at {waiting.get('rss_mb')} MB: its rotation waits for the consumers "
                f"since {waiting.get('since')} ({100 * waiting.get('consumed_share', 0):.0f}% "
                "of the log consumed)"
            )
        if broker.get("recovery_pending"):
            console.print(
                f"[yellow]recovery of broker epoch {broker['recovery_pending']['epoch']} pending[/yellow]: "
                f"pricing re-publishes what it stored since {broker['recovery_pending']['since']}"
            )
        for rec in public["recovery"] or []:
            what = (
                f"{rec['jobs']} job(s), {rec['rows']} row(s) re-published"
                if rec.get("jobs") is not None
                else f"{rec['rows']} stored line(s) since {rec.get('since')} re-published"
            )
            console.print(
                f"{rec.get('service', 'ingest')} recovery of epoch {rec['epoch']}: {rec['state']}, "
                f"{what} ({rec['started_at']} .. {rec['finished_at']})"
            )
    elif output is OutputFormat.NDJSON:
        print_ndjson([public])
    else:
        print_json(public)


def status(output: OutputFormat = OUTPUT_OPTION) -> None:
    """Show the embedded stack: broker and database addresses, the state of each service.

    Exits 1 when the stack is not running. Passwords in the database URL are masked.
    """
    from finfocus.embedded.state import StateFile, supervisor_alive

    state = StateFile(_settings().state_file).read()
    if not state or not supervisor_alive(state):
        if state:
            fail("the stack is not running (its state file is stale: `finfocus down` cleans up)")
        fail("the stack is not running; start it with `finfocus up --detach`")
    _print_status(state, output)


def down(
    timeout: float = typer.Option(60.0, help="seconds to wait for a clean stop before killing"),
) -> None:
    """Stop everything `finfocus up` started (services, broker, PostgreSQL) and nothing else."""
    from finfocus.embedded.stack import stop_stack

    stopped = stop_stack(_settings(), timeout=timeout)
    if not stopped:
        console.print("the stack is not running; nothing to stop")
    else:
        console.print(f"stopped: {', '.join(stopped)}")


def scale(
    request: str = typer.Argument(
        ..., metavar="SERVICE=N,...", help="e.g. pricing=3 or pricing=2,anomaly=1"
    ),
    timeout: float = typer.Option(
        120.0, help="seconds to wait until the new instances are running"
    ),
) -> None:
    """Change the number of instances of consumer services on the running stack.

    New instances start and join the service's consumer groups (the partitions are shared
    again after a rebalance); when lowering the number, the last instances stop cleanly.
    Returns once every instance asked for is running. See docs/operations.md.
    """
    import json
    import time

    from finfocus.embedded.health import instance_name
    from finfocus.embedded.stack import parse_replicas, scale_request
    from finfocus.embedded.state import StateFile, supervisor_alive

    settings = _settings()
    try:
        wanted = parse_replicas(request, settings.partitions)
    except ValueError as exc:
        fail(str(exc), code=2)
    state_file = StateFile(settings.state_file)
    state = state_file.read()
    if not state or not supervisor_alive(state):
        fail("the stack is not running; start it with `finfocus up --detach`")
    running = {(e or {}).get("service") or n for n, e in (state.get("services") or {}).items()}
    missing = [s for s in wanted if s not in running]
    if missing:
        fail(f"not part of the running stack: {', '.join(missing)} (see `finfocus up --only`)")
    path = scale_request(settings.home.expanduser().resolve())
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(wanted))
    tmp.replace(path)
    names = {instance_name(s, i) for s, n in wanted.items() for i in range(1, n + 1)}
    gone = {
        instance_name(s, i)
        for s, n in wanted.items()
        for i in range(n + 1, settings.partitions + 1)
    }
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = state_file.read()
        if state.get("scale_error"):
            fail(state["scale_error"])
        services = state.get("services") or {}
        if all((services.get(n) or {}).get("state") == "running" for n in names) and not gone & set(
            services
        ):
            _print_status(state, OutputFormat.TABLE)
            return
        time.sleep(0.2)
    fail(f"the instances did not all run within {timeout:.0f}s; see `finfocus status`")


def serve(
    service: str = typer.Argument(
        ..., help="ingest, pricing, anomaly, forecast, remediation or api"
    ),
) -> None:
    """Run one service in the foreground against the configured broker and database.

    Stops cleanly on SIGTERM or Ctrl-C; logs one JSON object per line.
    Exits 78 when the service is not installed (the supervisor then marks it failed).
    """
    from finfocus.embedded.stack import ready_marker
    from finfocus.embedded.supervisor import EXIT_CONFIG
    from finfocus.settings import SERVICES, EmbeddedStackNotRunning
    from finfocus.telemetry import configure_logging

    if service not in SERVICES:
        fail(f"unknown service {service!r}; choose one of {', '.join(SERVICES)}", code=2)
    settings = _settings()
    configure_logging(service, settings.log_level)
    log = logging.getLogger("finfocus.serve")
    module_name = f"services.{service}.app"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            log.error(f"service {service} is not installed: no module {module_name}")
            fail(
                f"service {service!r} is not available (no module {module_name})", code=EXIT_CONFIG
            )
        raise
    if not hasattr(module, "build_app"):
        fail(f"{module_name} has no build_app()", code=EXIT_CONFIG)
    try:
        # an HTTP service (api) offers build_service(): the same hooks and run() as FastStream
        app = getattr(module, "build_service", module.build_app)()
    except EmbeddedStackNotRunning as exc:
        fail(str(exc))
    # FastStream's own logger prints coloured text on its handler: route it through the
    # JSON handler instead, so a service log is one JSON object per line
    _json_logs_for_faststream(service)
    # an instance of a service run several times (`up --replicas`) has a marker of its own
    instance = os.environ.get("FINFOCUS_SERVICE_INSTANCE") or service
    marker = ready_marker(settings.home.expanduser().resolve(), instance)

    @app.after_startup
    async def _announce_ready() -> None:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(str(os.getpid()))
        log.info(f"service {service} ready")

    @app.on_shutdown
    async def _withdraw_ready() -> None:
        marker.unlink(missing_ok=True)

    try:
        asyncio.run(app.run())
    except EmbeddedStackNotRunning as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        pass


def _json_logs_for_faststream(service: str) -> None:
    """FastStream's loggers print coloured text on their own stdout handler unless one is
    there already: give them a JSON one first, so a service log is one JSON object a line."""
    from finfocus.telemetry import JsonLogFormatter

    class BrokerLogFormatter(JsonLogFormatter):
        """Keeps the topic, group and message id FastStream's filter puts on its records."""

        def format(self, record: logging.LogRecord) -> str:
            context = {
                key: value
                for key in ("topic", "group_id", "message_id")
                if (value := getattr(record, key, None))
            }
            if context:
                record.fields = {**context, **getattr(record, "fields", {})}
            return super().format(record)

    for name in ("faststream", "faststream.access.kafka"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(BrokerLogFormatter(service))
        logger.addHandler(handler)


def demo(
    timeout: float = typer.Option(180.0, help="seconds to wait for anomalies and commands"),
    days: int = typer.Option(60, min=1, max=3660, help="days of sample data"),
) -> None:
    """Start the stack, import a multi-cloud sample and print costs, anomalies, forecasts
    and remediation commands. Leaves the stack running (`finfocus down` stops it)."""
    from finfocus.embedded.demo import run_demo

    raise typer.Exit(run_demo(_settings(), wait_timeout=timeout, days=days))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `finfocus` app."""
    app.command()(up)
    app.command()(status)
    app.command()(down)
    app.command()(scale)
    app.command()(serve)
    app.command()(demo)
