"""Fault injection on the embedded stack: what survives a bad day, counted per service.

    .venv/bin/python bench/chaos.py [--rows 150000] [--scenario NAME ...] [--json FILE]

For each scenario: `finfocus up --detach` in a fresh FINFOCUS_HOME, N billed BillingRecord v1
rows (each with its own `ResourceId`) imported with `finfocus ingest FILE` (or, `--source
direct`, published straight on raw-billing as an upstream producer would), one fault injected,
then a wait until the pipeline settles (every copy complete, or no progress for `--quiet`
seconds, at most `--timeout`). It prints, per service keeping a copy of the lines (pricing,
anomaly, forecast, remediation): rows stored against rows published, duplicates, missing rows,
and whether the copy's total reconciles to the cent with the input's (Decimal); the dead
letters of valid rows; and what `finfocus status --output json` showed while the fault lasted.

Scenarios (`--scenario`, repeatable; default all, one after the other):
- pricing-after-commit: pricing kills itself right after an offset commit of its group once
  a third of the rows are committed (a hook loaded from bench/chaoshook, see its docstring):
  the worst moment for a consumer that commits ahead of its store.
- pricing-kill-3: pricing killed (SIGKILL) three times at random points of the stream.
- kill-anomaly, kill-remediation: a downstream consumer kills itself the same way, right after
  an offset commit on priced-resources a third of the way in.
- postgres-kill: the embedded PostgreSQL postmaster killed; the stack restarts it.
- broker-kill: the broker killed right after the import published (the stack restarts it,
  empty); then a second, smaller import of new rows, which must be stored too.
- ingest-kill: `finfocus ingest` killed mid-import, then the same file imported again, as an
  operator would.

The bench reads each service's tables as the database owner (it is a test harness; the CLI
itself only reads the `v_*` views through the reader role), on one connection it keeps open.
Tests may run several scenarios one after the other on one stack (`shared_stack`,
`run_scenario(..., stack)`): each run then takes resource ids and a billing account of its own
and counts only those.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HOOK_DIR = Path(__file__).resolve().parent / "chaoshook"
COPIES = ("pricing", "anomaly", "forecast", "remediation")
SCENARIOS = (
    "pricing-after-commit",
    "pricing-kill-3",
    "kill-anomaly",
    "kill-remediation",
    "postgres-kill",
    "broker-kill",
    "ingest-kill",
)
PREFIX = "chaos-"
#: scenarios where a consumer kills itself right after an offset commit: (group, topic)
COMMIT_HOOKS = {
    "pricing-after-commit": ("finfocus-pricing", "raw-billing"),
    "kill-anomaly": ("finfocus-anomaly", "priced-resources"),
    "kill-remediation": ("finfocus-remediation-costs", "priced-resources"),
}
CENT = Decimal("0.01")

#: each copy of the lines as its service counts it: rows of the newest version of their billing
#: scope (or without one); (rows, distinct resources, total) of the bench's rows
LIVE_LINES = {
    "pricing": (
        "SELECT count(*), count(DISTINCT resource_id), coalesce(sum(billed_cost), 0) "
        "FROM pricing.v_cost_lines WHERE resource_id LIKE $1"
    ),
    "anomaly": (
        "SELECT count(*), count(DISTINCT resource_id), coalesce(sum(cost), 0) "
        "FROM anomaly.live_lines WHERE resource_id LIKE $1"
    ),
    "forecast": (
        "SELECT count(*), count(DISTINCT l.resource), coalesce(sum(l.cost), 0) "
        "FROM forecast.cost_lines l "
        "LEFT JOIN forecast.scope_versions s ON s.billing_scope = l.billing_scope "
        "WHERE l.resource LIKE $1 AND (l.billing_scope IS NULL OR s.version IS NULL "
        "OR l.scope_version >= s.version)"
    ),
    "remediation": (
        "SELECT count(*), count(DISTINCT l.resource_id), coalesce(sum(l.billed_cost), 0) "
        "FROM remediation.cost_lines l "
        "LEFT JOIN remediation.billing_scopes s ON s.billing_scope = l.billing_scope "
        "WHERE l.resource_id LIKE $1 AND (l.billing_scope IS NULL OR s.version IS NULL "
        "OR l.billing_scope_version >= s.version)"
    ),
}
#: cheap progress probes (every row of the run's in each table, superseded versions included)
RAW_COUNTS = {
    name: f"SELECT count(*) FROM {name}.cost_lines WHERE {column} LIKE $1"
    for name, column in (
        ("pricing", "resource_id"),
        ("anomaly", "resource_id"),
        ("forecast", "resource"),
        ("remediation", "resource_id"),
    )
}


# -- input ----------------------------------------------------------------------------------
@dataclass
class Batch:
    """Rows the bench publishes, and what they must add up to."""

    rows: list[dict[str, str]]
    total: Decimal

    @property
    def count(self) -> int:
        return len(self.rows)


def billed_rows(
    n: int,
    *,
    seed: int = 12,
    month: str = "2020-02",
    first: int = 0,
    prefix: str = PREFIX,
    account: str = "acct-chaos",
) -> Batch:
    """N billed rows, credits among them, one `ResourceId` each (how copies are matched):
    `prefix` then a number; `account` their billing account (a run of its own on a shared
    stack takes its own, so that no import of it supersedes another run's billing scope)."""
    rng = random.Random(seed)
    rows, total = [], Decimal(0)
    for i in range(first, first + n):
        cost = Decimal(rng.randint(-500, 250_000)) / 100
        total += cost
        day = 1 + i % 28
        rows.append(
            {
                "ProviderName": rng.choice(["AWS", "Microsoft", "Google Cloud"]),
                "BillingAccountId": account,
                "SubAccountId": f"sub-{i % 7}",
                "ChargePeriodStart": f"{month}-{day:02d}T00:00:00Z",
                "ChargePeriodEnd": f"{month}-{day:02d}T01:00:00Z",
                "BillingCurrency": "USD",
                "ServiceName": rng.choice(["Compute", "Storage", "Database"]),
                "ChargeCategory": "Usage" if cost >= 0 else "Credit",
                "BilledCost": format(cost, "f"),
                "ResourceId": f"{prefix}{i:07d}",
            }
        )
    return Batch(rows, total)


def write_csv(batch: Batch, path: Path) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(batch.rows[0]))
        writer.writeheader()
        writer.writerows(batch.rows)
    return path


async def publish_direct(bootstrap: str, batch: Batch) -> None:
    """As an upstream producer: straight on raw-billing, with our own x_RecordId."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=5)
    await producer.start()
    try:
        futures = []
        for row in batch.rows:
            value = json.dumps({**row, "x_RecordId": row["ResourceId"]}).encode()
            key = f"{row['ProviderName']}:{row['SubAccountId']}".encode()
            futures.append(await producer.send("raw-billing", value, key=key))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


# -- the stack ------------------------------------------------------------------------------
class Stack:
    """`finfocus up --detach` in a private FINFOCUS_HOME, driven through the command line."""

    def __init__(self, base: Path, extra_env: dict[str, str] | None = None) -> None:
        self.base = base
        self.home = base / "home"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FINFOCUS_")}
        self.env["FINFOCUS_HOME"] = str(self.home)
        self.env.update(extra_env or {})
        #: runs made on this stack so far (each takes its own resource ids and account)
        self.runs = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: Any = None

    @classmethod
    def fresh(
        cls,
        extra_env: dict[str, str] | None = None,
        *,
        hooked: bool = False,
        autocommit_ms: int | None = None,
        groups: tuple[str, ...] = (),
    ) -> Stack:
        """A stack in a new temporary directory; `hooked`: its processes load the commit hook
        (bench/chaoshook), with the auto-commit interval of `groups` shortened to
        `autocommit_ms` where given."""
        base = Path(tempfile.mkdtemp(prefix="finfocus-chaos-"))
        # the embedded PostgreSQL runs as an unprivileged user when the bench runs as root
        base.chmod(0o755)
        env: dict[str, str] = {}
        if hooked:
            env = {
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(HOOK_DIR), os.environ.get("PYTHONPATH", "")) if p
                ),
                "FINFOCUS_CHAOS_ARM_FILE": str(base / "chaos-arm.json"),
            }
            if autocommit_ms and groups:
                env["FINFOCUS_CHAOS_AUTOCOMMIT_MS"] = str(autocommit_ms)
                env["FINFOCUS_CHAOS_AUTOCOMMIT_GROUPS"] = ",".join(groups)
        env.update(extra_env or {})
        return cls(base, env)

    @property
    def arm_file(self) -> Path | None:
        """Where the commit hook reads what to do (None: the stack is not hooked)."""
        path = self.env.get("FINFOCUS_CHAOS_ARM_FILE")
        return Path(path) if path else None

    def discard(self) -> None:
        """Forget the stack's directory (after `down`)."""
        self.close()
        shutil.rmtree(self.base, ignore_errors=True)

    def cli(
        self, *args: str, timeout: float = 300, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        """A `finfocus` command on the stack (`env`: more variables for that command only)."""
        return subprocess.run(
            [sys.executable, "-m", "finfocus.cli", *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "finfocus.cli", *args],
            env={**self.env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
        )

    def up(self) -> None:
        started = self.cli("up", "--detach", "--timeout", "180", timeout=240)
        if started.returncode != 0:
            raise RuntimeError(f"finfocus up failed: {started.stdout}\n{started.stderr}")

    def down(self) -> None:
        self.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.cli("down", timeout=120)

    def wait_running(self, timeout: float = 120) -> bool:
        """True once every service the stack supervises is `running` (after an earlier fault
        on a shared stack, the restarted ones too)."""

        def running() -> bool:
            services = self.state().get("services") or {}
            return bool(services) and all(
                (entry or {}).get("state") == "running" for entry in services.values()
            )

        return wait_for(running, timeout, poll=0.5)

    # reading the database ---------------------------------------------------------------
    def query(self, queries: dict[str, str], *args: Any) -> dict[str, Any]:
        """Each query's first row (None where its table is not there), on one connection kept
        open between calls: the bench polls progress several times a second, and a new
        connection each time costs the stack under test CPU. Raises while the database does
        not answer; the next call connects again."""
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            try:
                return self._loop.run_until_complete(self._query(queries, args))
            except BaseException:
                self._loop.run_until_complete(self._drop())
                raise

    async def _query(self, queries: dict[str, str], args: tuple[Any, ...]) -> dict[str, Any]:
        import asyncpg

        if self._conn is None or self._conn.is_closed():
            url, password = self.connect_args()
            self._conn = await asyncpg.connect(url, password=password, timeout=5)
        found: dict[str, Any] = {}
        for name, query in queries.items():
            try:
                found[name] = await self._conn.fetchrow(query, *args, timeout=30)
            except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
                found[name] = None
        return found

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    def close(self) -> None:
        """Close the bench's connection (before `down`, and when done with the stack)."""
        with self._lock:
            if self._loop is not None:
                self._loop.run_until_complete(self._drop())
                self._loop.close()
                self._loop = None

    def state(self) -> dict[str, Any]:
        try:
            return json.loads((self.home / "run" / "stack.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    @property
    def bootstrap(self) -> str:
        return self.state()["kafka_bootstrap"]

    @property
    def database_url(self) -> str:
        return self.state()["database_url"]

    @property
    def database_password(self) -> str | None:
        """The owner's password, where the stack keeps it in a 0600 file (not in the state)."""
        path = self.state().get("database_password_file")
        return Path(path).read_text().strip() if path else None

    def connect_args(self) -> tuple[str, str | None]:
        return self.database_url, self.database_password

    def pid(self, what: str) -> int | None:
        """Pid of a service, or of `kafka` / `postgres`, as the supervisor recorded it."""
        state = self.state()
        entry = state.get(what) if what in ("kafka", "postgres") else state["services"].get(what)
        return (entry or {}).get("pid")

    def kill(self, what: str) -> int:
        pid = self.pid(what)
        if not pid:
            raise RuntimeError(f"no pid recorded for {what}")
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_restarted(self, what: str, old_pid: int, timeout: float = 60) -> bool:
        """True once a new process of `what` is recorded (and, for a service, running)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            if what in ("kafka", "postgres"):
                entry = state.get(what) or {}
                ready = True
            else:
                entry = state.get("services", {}).get(what) or {}
                ready = entry.get("state") == "running"
            if entry.get("pid") and entry["pid"] != old_pid and ready:
                return True
            time.sleep(0.2)
        return False


def run_async(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


def raw_counts(stack: Stack, prefix: str = PREFIX) -> dict[str, int] | None:
    """The run's rows in each service's table, or None while the database does not answer."""
    try:
        rows = stack.query(RAW_COUNTS, f"{prefix}%")
    except Exception:  # noqa: BLE001 - PostgreSQL restarting: no reading this time
        return None
    return {name: (row[0] if row else 0) for name, row in rows.items()}


@dataclass
class Copy:
    """One service's copy of the bench's lines, against the input."""

    service: str
    stored: int
    distinct: int
    total: Decimal
    expected_rows: int
    expected_total: Decimal

    @property
    def duplicates(self) -> int:
        return self.stored - self.distinct

    @property
    def missing(self) -> int:
        return self.expected_rows - self.distinct

    @property
    def reconciles(self) -> bool:
        return self.total.quantize(CENT) == self.expected_total.quantize(CENT)

    @property
    def exact(self) -> bool:
        return self.stored == self.expected_rows == self.distinct and self.reconciles


def copies(stack: Stack, expected: Batch, prefix: str = PREFIX) -> dict[str, Copy]:
    rows = stack.query(LIVE_LINES, f"{prefix}%")
    result = {}
    for name in COPIES:
        row = rows.get(name)
        stored, distinct, total = (row[0], row[1], Decimal(row[2])) if row else (0, 0, Decimal(0))
        result[name] = Copy(name, stored, distinct, total, expected.count, expected.total)
    return result


async def _read_dead_letters(bootstrap: str) -> list[dict[str, Any]]:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.endswith(".dlq")]
    finally:
        await admin.close()
    if not topics:
        return []
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    letters: list[dict[str, Any]] = []
    try:
        idle = 0
        while idle < 3:
            batch = await consumer.getmany(timeout_ms=500)
            got = [r for records in batch.values() for r in records]
            idle = 0 if got else idle + 1
            for record in got:
                try:
                    letter = json.loads(record.value)
                except ValueError:
                    letter = {"original": record.value.decode(errors="replace")}
                letter["_topic"] = record.topic
                letters.append(letter)
    finally:
        await consumer.stop()
    return letters


def dead_letters(stack: Stack, prefix: str = PREFIX) -> dict[str, Any]:
    """Dead letters on every `*.dlq` topic; `valid` counts those carrying one of the run's rows
    (every row the bench publishes is valid). A broker restart empties them."""
    try:
        letters = run_async(_read_dead_letters(stack.bootstrap))
    except Exception as exc:  # noqa: BLE001 - reported, not fatal
        return {"error": str(exc), "total": None, "valid": None, "by_service": {}}
    by_service: dict[str, int] = {}
    valid = 0
    reasons: dict[str, int] = {}
    for letter in letters:
        original = str(letter.get("original") or "")
        mine = prefix in original
        valid += mine
        service = str(letter.get("service") or letter["_topic"])
        by_service[service] = by_service.get(service, 0) + 1
        if mine:
            reason = str(letter.get("error") or "")[:80]
            reasons[reason] = reasons.get(reason, 0) + 1
    return {"total": len(letters), "valid": valid, "by_service": by_service, "reasons": reasons}


# -- watching `finfocus status` -------------------------------------------------------------
class StatusWatch:
    """`finfocus status --output json` every few seconds while a fault lasts."""

    def __init__(self, stack: Stack, every: float = 3.0) -> None:
        self.stack = stack
        self.every = every
        self.seen: list[tuple[float, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.started = time.monotonic()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                result = self.stack.cli("status", "--output", "json", timeout=30)
                body = json.loads(result.stdout) if result.stdout.strip() else {}
            except (subprocess.TimeoutExpired, ValueError) as exc:
                body = {"error": str(exc)[:120]}
            self.seen.append((time.monotonic() - self.started, body))
            self._stop.wait(self.every)

    def __enter__(self) -> StatusWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=40)

    def summary(self) -> dict[str, Any]:
        """Per service the states seen, in order; the reasons given for `degraded`; the
        consumers seen stalled or retrying and the largest lag per service; any other field
        (broker restarts, recoveries) as it changed."""
        states: dict[str, list[str]] = {}
        reasons: dict[str, list[str]] = {}
        troubled: set[str] = set()
        lag: dict[str, int] = {}
        extras: list[dict[str, Any]] = []
        base = {
            "kafka_bootstrap", "database_url", "services", "api_url", "metrics",
            "degraded_reasons", "consumers", "broker", "recovery",
        }  # fmt: skip
        restarts, recovered, lost = 0, [], None
        for _, body in self.seen:
            for name, value in (body.get("services") or {}).items():
                shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
                trail = states.setdefault(name, [])
                if not trail or trail[-1] != shown:
                    trail.append(shown)
            for name, reason in (body.get("degraded_reasons") or {}).items():
                short = str(reason).split(";")[0].splitlines()[0][:120]
                if short not in reasons.setdefault(name, []):
                    reasons[name].append(short)
            for consumer in body.get("consumers") or []:
                if not isinstance(consumer, dict):
                    continue
                where = f"{consumer.get('service')} {consumer.get('topic')}[{consumer.get('partition')}]"
                if consumer.get("stalled"):
                    troubled.add(f"{where} stalled")
                if consumer.get("retrying"):
                    troubled.add(f"{where} retrying")
                service = str(consumer.get("service"))
                lag[service] = max(lag.get(service, 0), int(consumer.get("lag") or 0))
            broker = body.get("broker") or {}
            if isinstance(broker, dict) and broker.get("restarts"):
                restarts = max(restarts, len(broker["restarts"]))
                lost = broker["restarts"][-1].get("lost") or lost
            for row in body.get("recovery") or []:
                jobs = f"{row.get('jobs')} jobs, " if row.get("jobs") is not None else ""
                shown = f"{row.get('service', 'ingest')} epoch {row.get('epoch')}: {jobs}{row.get('rows')} rows, {row.get('state')}"
                if shown not in recovered:
                    recovered.append(shown)
            extra = {k: v for k, v in body.items() if k not in base}
            if extra and (not extras or extras[-1] != extra):
                extras.append(extra)
        return {
            "polls": len(self.seen),
            "services": states,
            "degraded_reasons": {k: v[:3] for k, v in reasons.items()},
            "consumers_in_trouble": sorted(troubled)[:12],
            "max_lag": lag,
            "broker_restarts": restarts,
            "broker_lost": lost,
            "recovery": recovered[-4:],
            "other": extras[:4],
        }


# -- settling -------------------------------------------------------------------------------
def settle(
    stack: Stack,
    expected: Batch,
    *,
    quiet: float,
    timeout: float,
    poll: float = 2.0,
    prefix: str = PREFIX,
) -> dict[str, Any]:
    """Wait until every copy holds all rows, or nothing moved for `quiet` s, or `timeout`."""
    started = time.monotonic()
    last, last_change = None, started
    while True:
        now = time.monotonic()
        counts = raw_counts(stack, prefix)
        if counts is not None:
            if counts != last:
                last, last_change = counts, now
            if all(counts[name] >= expected.count for name in COPIES):
                found = copies(stack, expected, prefix)
                if all(c.exact for c in found.values()):
                    return {"how": "complete", "seconds": round(now - started, 1)}
        if now - last_change > quiet:
            return {"how": f"no progress for {quiet:.0f}s", "seconds": round(now - started, 1)}
        if now - started > timeout:
            return {"how": f"timeout {timeout:.0f}s", "seconds": round(now - started, 1)}
        time.sleep(poll)


def wait_for(predicate: Callable[[], bool], timeout: float, poll: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return False


def chunks_published(stack: Stack) -> int:
    """Chunks an import has published so far (ingest keeps them for replays)."""
    try:
        rows = stack.query({"c": "SELECT count(*) FROM ingest.published_chunks"})
    except Exception:  # noqa: BLE001 - not there (yet, or any more): no chunk seen
        return 0
    return rows["c"][0] if rows.get("c") else 0


def progress_of(stack: Stack, service: str, prefix: str = PREFIX) -> int:
    counts = raw_counts(stack, prefix)
    return (counts or {}).get(service, 0)


# -- scenarios ------------------------------------------------------------------------------
@dataclass
class Outcome:
    scenario: str
    rows: int
    expected: Batch
    source: str
    fault: list[str] = field(default_factory=list)
    settled: dict[str, Any] = field(default_factory=dict)
    copies: dict[str, Copy] = field(default_factory=dict)
    dead: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    #: seconds spent starting the stack, injecting, settling, counting, stopping
    phases: dict[str, float] = field(default_factory=dict)
    #: the fault really happened (a hook that never fired, an import that ended first: False)
    injected: bool = False
    #: ingest-kill: the killed job once settled, and the rows each copy counted then
    after_kill: dict[str, Any] = field(default_factory=dict)

    @property
    def every_row_once(self) -> bool:
        return bool(self.copies) and all(c.exact for c in self.copies.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "rows": self.rows,
            "source": self.source,
            "expected_total": str(self.expected.total),
            "fault": self.fault,
            "settled": self.settled,
            "copies": {
                name: {
                    "stored": c.stored,
                    "duplicates": c.duplicates,
                    "missing": c.missing,
                    "total": str(c.total),
                    "reconciles": c.reconciles,
                }
                for name, c in self.copies.items()
            },
            "dead_letters": self.dead,
            "status": self.status,
            "jobs": self.jobs,
            "seconds": self.seconds,
            "injected": self.injected,
            "phases": self.phases,
            "after_kill": self.after_kill,
        }


class Run:
    """One scenario, on its own stack or on a shared one."""

    def __init__(self, args: argparse.Namespace, scenario: str, stack: Stack | None = None) -> None:
        self.args = args
        self.scenario = scenario
        #: on a stack of its own (started and stopped by the run), or on one shared by runs
        self.shared = stack is not None
        if stack is None:
            hook = COMMIT_HOOKS.get(scenario)
            stack = Stack.fresh(
                args.env,
                hooked=hook is not None,
                autocommit_ms=args.autocommit_ms,
                groups=(hook[0],) if hook else (),
            )
            self.base = stack.base
        else:
            self.base = Path(tempfile.mkdtemp(prefix=f"{scenario}-", dir=stack.base))
        self.stack = stack
        #: `--env`/`env`: on a shared stack, for the run's own commands (`finfocus ingest`)
        self.cli_env = dict(args.env or {}) if self.shared else {}
        stack.runs += 1
        # a run on a shared stack counts only its own rows, in a billing account of its own
        self.prefix = f"{PREFIX}{stack.runs}-" if self.shared else PREFIX
        self.account = f"acct-chaos-{stack.runs}" if self.shared else "acct-chaos"
        self.marker = self.base / "chaos-fired.json"
        self.commit_threshold = max(int(args.rows * args.commit_at), 1)
        self.batch = billed_rows(
            args.rows, seed=args.seed, prefix=self.prefix, account=self.account
        )
        self.outcome = Outcome(scenario, args.rows, self.batch, args.source)
        self.rng = random.Random(args.seed)
        #: import jobs there before the run (a shared stack's earlier runs)
        self.earlier_jobs: set[str] = set()

    def progress(self, service: str) -> int:
        """The run's rows `service` stored so far (superseded versions included)."""
        return progress_of(self.stack, service, self.prefix)

    def note(self, text: str) -> None:
        self.outcome.fault.append(text)
        if self.args.verbose:
            print(f"  [{self.scenario}] {text}", file=sys.stderr)

    # publishing -----------------------------------------------------------------------
    def publish(self, batch: Batch, name: str = "rows") -> subprocess.CompletedProcess | None:
        if self.args.source == "direct":
            run_async(publish_direct(self.stack.bootstrap, batch))
            return None
        result = self.stack.cli(
            "ingest",
            *self.files(batch, name),
            "--format",
            "focus",
            "--output",
            "json",
            env=self.cli_env,
        )
        if result.returncode != 0:
            self.note(f"ingest {name} exit {result.returncode}: {_last_line(result)}")
        return result

    def files(self, batch: Batch, name: str) -> list[str]:
        """The batch as `--files` CSV files (one import job), written once."""
        parts = max(self.args.files, 1)
        size = -(-batch.count // parts)
        paths = []
        for i in range(parts):
            path = self.base / (f"{name}.csv" if parts == 1 else f"{name}-{i + 1}.csv")
            if not path.exists():
                part = batch.rows[i * size : (i + 1) * size]
                write_csv(Batch(part, Decimal(0)), path)
            paths.append(str(path))
        return paths

    def start_import(self, batch: Batch, name: str = "rows") -> subprocess.Popen:
        return self.stack.spawn(
            "ingest",
            *self.files(batch, name),
            "--format",
            "focus",
            "--output",
            "json",
            env=self.cli_env,
        )

    def import_in_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.publish, args=(self.batch,), daemon=True)
        thread.start()
        return thread

    def when(self, service: str, fraction: float, timeout: float) -> bool:
        """Wait until `service` stored `fraction` of the rows (False: it stalled first)."""
        target = max(int(self.batch.count * fraction), 1)
        return wait_for(lambda: self.progress(service) >= target, timeout, poll=0.1)

    # scenarios ------------------------------------------------------------------------
    def arm(self) -> None:
        """Arm the commit hook of the stack's processes for this run: the group kills itself
        after the commit that covers `commit_threshold` of the run's rows on the topic."""
        group, topic = COMMIT_HOOKS[self.scenario]
        arm_file = self.stack.arm_file
        if arm_file is None:
            raise RuntimeError(f"{self.scenario} needs a stack started with the commit hook")
        spec = {
            "group": group,
            "topic": topic,
            "offsets": self.commit_threshold,
            "marker": str(self.marker),
        }
        staged = arm_file.with_suffix(".tmp")
        staged.write_text(json.dumps(spec))
        os.replace(staged, arm_file)

    def disarm(self) -> None:
        if self.stack.arm_file is not None:
            self.stack.arm_file.unlink(missing_ok=True)

    def kill_after_commit(self, service: str) -> None:
        """The service kills itself right after an offset commit (the hook in bench/chaoshook)."""
        self.arm()
        publisher = self.import_in_background()
        target = self.batch.count

        def fired_or_done() -> bool:
            return self.marker.exists() or self.progress(service) >= target

        wait_for(fired_or_done, self.args.timeout, poll=0.2)
        # every row stored in one batch: the commit that fires the hook comes just after
        wait_for(self.marker.exists, 5, poll=0.1)
        if self.marker.exists():
            fired = json.loads(self.marker.read_text())
            topic = COMMIT_HOOKS[self.scenario][1]
            self.note(
                f"{service} (pid {fired['pid']}) killed itself right after committing offsets "
                f"{sum(fired['committed'].values())} on {topic}; it had "
                f"{self.progress(service)} rows stored just after"
            )
            self.outcome.injected = True
            if not self.stack.wait_restarted(service, fired["pid"]):
                self.note(f"{service} was not restarted within 60s")
        else:
            self.note(
                f"no kill: {service} stored every row before committing {self.commit_threshold}"
            )
        publisher.join()

    def pricing_kill_3(self) -> None:
        publisher = self.import_in_background()
        points = sorted(self.rng.uniform(0.05, 0.8) for _ in range(3))
        for point in points:
            reached = self.when("pricing", point, timeout=60)
            old = self.stack.kill("pricing")
            self.outcome.injected = True
            self.note(
                f"pricing pid {old} killed at {self.progress('pricing')} rows stored"
                + ("" if reached else f" (stalled before {point:.0%})")
            )
            if not self.stack.wait_restarted("pricing", old):
                self.note("pricing was not restarted within 60s")
        publisher.join()

    def postgres_kill(self) -> None:
        publisher = self.import_in_background()
        self.when("pricing", self.args.at, timeout=120)
        stored = self.progress("pricing")
        old = self.stack.kill("postgres")
        self.outcome.injected = True
        self.note(f"PostgreSQL postmaster pid {old} killed at {stored} rows stored by pricing")
        if self.stack.wait_restarted("postgres", old):
            self.note("PostgreSQL restarted by the stack")
        else:
            self.note("PostgreSQL was not restarted within 60s")
        publisher.join()

    def broker_kill(self) -> None:
        self.publish(self.batch)
        if getattr(self.args, "kill_when_priced", False):
            # the worst moment for downstream: pricing stored (and published) every row,
            # the services after it have not consumed them all yet
            wait_for(
                lambda: self.progress("pricing") >= self.batch.count, self.args.timeout, poll=0.05
            )
            behind = {s: self.progress(s) for s in ("anomaly", "forecast", "remediation")}
            self.note(f"downstream copies when pricing had stored every row: {behind}")
        stored = self.progress("pricing")
        old = self.stack.kill("kafka")
        self.outcome.injected = True
        self.note(
            f"broker pid {old} killed right after the import published ({stored} rows stored)"
        )
        if not self.stack.wait_restarted("kafka", old):
            self.note("the broker was not restarted within 60s")
        first = settle(
            self.stack,
            self.batch,
            quiet=self.args.quiet,
            timeout=self.args.timeout,
            poll=self.args.poll,
            prefix=self.prefix,
        )
        after = copies(self.stack, self.batch, self.prefix)
        self.note(
            "after the restart ("
            + first["how"]
            + "): "
            + ", ".join(f"{n} {c.distinct}" for n, c in after.items())
        )
        second = billed_rows(
            max(self.batch.count // 10, 1),
            seed=self.args.seed + 1,
            month="2020-03",
            first=self.batch.count,
            prefix=self.prefix,
            account=self.account,
        )
        self.publish(second, name="after-restart")
        self.note(f"then a new import of {second.count} rows")
        self.batch = Batch(self.batch.rows + second.rows, self.batch.total + second.total)
        self.outcome.expected = self.batch

    def ingest_kill(self) -> None:
        chunks_before = chunks_published(self.stack)
        process = self.start_import(self.batch)

        def published_something() -> bool:
            return (
                process.poll() is not None
                or chunks_published(self.stack) > chunks_before
                or self.progress("pricing") > 0
            )

        wait_for(published_something, 120, poll=0.02)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            self.outcome.injected = True
            self.note(
                f"finfocus ingest pid {process.pid} killed mid-import ({chunks_published(self.stack)}"
                f" chunks kept, {self.progress('pricing')} rows stored by pricing)"
            )
        else:
            self.note("the import finished before it could be killed")
        # the killed job, once the stack settled it (lease expired, then finished or failed)
        unsettled = ("running", "abandoned")
        wait_for(
            lambda: all(j["status"] not in unsettled for j in self.jobs()),
            self.args.lease_wait,
            poll=2,
        )
        killed = self.jobs()
        settle(
            self.stack,
            self.batch,
            quiet=min(self.args.quiet, 5),
            timeout=self.args.timeout,
            poll=self.args.poll,
            prefix=self.prefix,
        )
        counted = copies(self.stack, self.batch, self.prefix)
        self.outcome.after_kill = {
            "jobs": killed,
            "counted": {name: c.distinct for name, c in counted.items()},
        }
        self.note(
            "the killed job after waiting up to "
            f"{self.args.lease_wait:.0f}s: "
            + ", ".join(f"{j['status']} ({j['rows_published']} published)" for j in killed)
            + "; rows counted then: "
            + ", ".join(f"{n} {c.distinct}" for n, c in counted.items())
        )
        again = self.publish(self.batch, name="rows")
        if again is not None:
            try:
                summary = json.loads(again.stdout)
                self.note(
                    f"import again: status {summary.get('status')}, "
                    f"{summary.get('rows_published')} rows published"
                    + (
                        f", duplicate of {summary['duplicate_of']}"
                        if summary.get("duplicate_of")
                        else ""
                    )
                )
            except ValueError:
                self.note(f"import again: exit {again.returncode}: {_last_line(again)}")

    def jobs(self) -> list[dict[str, Any]]:
        """The import jobs of this run (not a shared stack's earlier ones)."""
        return [j for j in self.all_jobs() if j["job_id"] not in self.earlier_jobs]

    def all_jobs(self) -> list[dict[str, Any]]:
        result = self.stack.cli("ingest", "jobs", "--output", "json", timeout=60, env=self.cli_env)
        try:
            return [
                {k: j.get(k) for k in ("job_id", "status", "rows_published", "error")}
                for j in json.loads(result.stdout)["jobs"]
            ]
        except (ValueError, KeyError):
            return []

    # running --------------------------------------------------------------------------
    def inject(self) -> None:
        actions = {
            "pricing-after-commit": lambda: self.kill_after_commit("pricing"),
            "pricing-kill-3": self.pricing_kill_3,
            "kill-anomaly": lambda: self.kill_after_commit("anomaly"),
            "kill-remediation": lambda: self.kill_after_commit("remediation"),
            "postgres-kill": self.postgres_kill,
            "broker-kill": self.broker_kill,
            "ingest-kill": self.ingest_kill,
        }
        actions[self.scenario]()

    def phase(self, name: str, since: float) -> float:
        now = time.monotonic()
        self.outcome.phases[name] = round(now - since, 1)
        return now

    def run(self) -> Outcome:
        started = mark = time.monotonic()
        try:
            if self.shared:
                # an earlier run's fault: its restarted processes are up again first
                if not self.stack.wait_running():
                    raise RuntimeError(f"the shared stack is not running: {self.stack.state()}")
                if self.args.source == "ingest":
                    self.earlier_jobs = {j["job_id"] for j in self.all_jobs()}
            else:
                self.stack.up()
            mark = self.phase("up", mark)
            with StatusWatch(self.stack, self.args.status_every) as watch:
                self.inject()
                mark = self.phase("fault", mark)
                self.outcome.settled = settle(
                    self.stack,
                    self.batch,
                    quiet=self.args.quiet,
                    timeout=self.args.timeout,
                    poll=self.args.poll,
                    prefix=self.prefix,
                )
            mark = self.phase("settle", mark)
            self.outcome.status = watch.summary()
            self.outcome.copies = copies(self.stack, self.batch, self.prefix)
            self.outcome.dead = dead_letters(self.stack, self.prefix)
            if self.args.source == "ingest":
                self.outcome.jobs = self.jobs()
            mark = self.phase("count", mark)
        finally:
            if self.shared:
                self.disarm()
            else:
                self.stack.down()
            self.phase("down", mark)
            if self.args.keep:
                print(f"  kept {self.base}", file=sys.stderr)
            elif self.shared:
                shutil.rmtree(self.base, ignore_errors=True)
            else:
                self.stack.discard()
            self.outcome.seconds = round(time.monotonic() - started, 1)
        return self.outcome


def _last_line(result: subprocess.CompletedProcess) -> str:
    text = (result.stderr or result.stdout or "").strip().splitlines()
    return text[-1][:200] if text else ""


def run_scenario(scenario: str, stack: Stack | None = None, **options: Any) -> Outcome:
    """One scenario with the bench's defaults, for tests: `run_scenario("postgres-kill",
    rows=3000, quiet=15)`. On a stack of its own, or on `stack`, already up and shared with
    other runs (see `shared_stack`): the run then counts only its own rows."""
    args = parser().parse_args([])
    for key, value in options.items():
        setattr(args, key, value)
    return Run(args, scenario, stack).run()


def shared_stack(env: dict[str, str] | None = None, autocommit_ms: int | None = None) -> Stack:
    """A stack (not started yet) for several runs one after the other, each with rows and a
    billing account of its own: the commit hook loaded, armed by each hooked run in turn.
    Not for broker-kill, whose restart empties the broker under every run's feet."""
    groups = tuple(group for group, _ in COMMIT_HOOKS.values())
    return Stack.fresh(env, hooked=True, autocommit_ms=autocommit_ms, groups=groups)


# -- report ---------------------------------------------------------------------------------
def report(outcome: Outcome) -> str:
    exp = outcome.expected
    lines = [
        f"## {outcome.scenario}: {exp.count:,} rows published ({outcome.source}), "
        f"total {exp.total} USD; settled: {outcome.settled.get('how')} after "
        f"{outcome.settled.get('seconds')}s; {outcome.seconds}s in all {outcome.phases}",
    ]
    lines += [f"- fault: {text}" for text in outcome.fault]
    lines.append("| service | stored / published | duplicates | missing | total | to the cent |")
    lines.append("|---|---|---|---|---|---|")
    for c in outcome.copies.values():
        lines.append(
            f"| {c.service} | {c.stored:,} / {exp.count:,} | {c.duplicates:,} | {c.missing:,} "
            f"| {c.total} | {'yes' if c.reconciles else 'NO'} |"
        )
    dead = outcome.dead
    lines.append(
        f"- dead letters: {dead.get('total')} in all, {dead.get('valid')} of them valid rows"
        + (f" {dead.get('by_service')}" if dead.get("total") else "")
        + (f" reasons {dead.get('reasons')}" if dead.get("valid") else "")
    )
    status = outcome.status
    trails = "; ".join(
        f"{name} {' -> '.join(states)}" for name, states in (status.get("services") or {}).items()
    )
    lines.append(f"- `status` during the fault ({status.get('polls')} polls): {trails}")
    for name, seen in (status.get("degraded_reasons") or {}).items():
        lines.append(f"  - {name} degraded: " + " | ".join(seen))
    if status.get("consumers_in_trouble"):
        lines.append("  - consumers: " + ", ".join(status["consumers_in_trouble"]))
    if status.get("max_lag"):
        lines.append(f"  - largest lag seen: {status['max_lag']}")
    if status.get("broker_restarts"):
        lines.append(
            f"  - broker restarts: {status['broker_restarts']}; {status.get('broker_lost')}"
        )
    if status.get("recovery"):
        lines.append("  - recovery: " + "; ".join(status["recovery"]))
    for extra in status.get("other") or []:
        lines.append(f"  - also: {json.dumps(extra, default=str)[:300]}")
    if outcome.jobs:
        lines.append(
            "- import jobs: "
            + ", ".join(f"{j['status']} ({j['rows_published']} published)" for j in outcome.jobs)
        )
    lines.append(
        f"- every row stored exactly once everywhere: {'YES' if outcome.every_row_once else 'NO'}"
    )
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=150_000, help="billed rows to publish")
    p.add_argument("--scenario", action="append", choices=SCENARIOS, help="repeatable; default all")
    p.add_argument(
        "--source",
        choices=("ingest", "direct"),
        default="ingest",
        help="`finfocus ingest` of a CSV, or straight on raw-billing (an upstream producer)",
    )
    p.add_argument("--quiet", type=float, default=45.0, help="seconds without progress = settled")
    p.add_argument("--timeout", type=float, default=900.0, help="longest wait for settling")
    p.add_argument("--seed", type=int, default=12)
    p.add_argument(
        "--at",
        type=float,
        default=0.25,
        help="postgres-kill: the share of rows pricing has stored when the postmaster is killed",
    )
    p.add_argument(
        "--commit-at",
        type=float,
        default=1 / 3,
        help="hooked scenarios: kill after the commit that reaches this share of the rows",
    )
    p.add_argument(
        "--autocommit-ms",
        type=int,
        default=None,
        help="hooked scenarios: aiokafka's auto-commit interval in the hooked consumer "
        "(where auto-commit is on), to show a commit ahead of the store on few rows",
    )
    p.add_argument("--files", type=int, default=1, help="split each import into this many files")
    p.add_argument(
        "--kill-when-priced",
        action="store_true",
        help="broker-kill: kill the broker once pricing stored every row (not right after publishing)",
    )
    p.add_argument(
        "--lease-wait",
        type=float,
        default=150.0,
        help="ingest-kill: how long to wait for the killed job to be settled (lease + sweep)",
    )
    p.add_argument("--json", type=Path, help="also write the outcomes as JSON here")
    p.add_argument("--keep", action="store_true", help="keep the FINFOCUS_HOME for a post-mortem")
    p.add_argument("--poll", type=float, default=2.0, help="seconds between progress readings")
    p.add_argument("--status-every", type=float, default=3.0, help="seconds between `status` polls")
    p.add_argument("--verbose", "-v", action="store_true")
    p.set_defaults(env=None)
    return p


def main() -> None:
    args = parser().parse_args()
    outcomes = []
    for scenario in args.scenario or SCENARIOS:
        outcome = Run(args, scenario).run()
        outcomes.append(outcome)
        print(report(outcome), flush=True)
        print(flush=True)
        if args.json:
            args.json.write_text(json.dumps([o.to_dict() for o in outcomes], indent=2))


if __name__ == "__main__":
    main()
