"""The embedded stack: broker, PostgreSQL and the five services as supervised processes.

One supervisor process (`finfocus up`, in the foreground or detached) owns everything it
starts and records it in `FINFOCUS_HOME/run/stack.json`:

```
{"supervisor": {"pid", "create_time"}, "phase": "starting|running|stopping",
 "kafka_bootstrap": "...", "kafka_owned": true, "kafka": {"pid", "create_time"},
 "database_url": "...", "postgres_owned": true, "postgres": {"pid", "create_time", "data_dir"},
 "services": {"ingest": {"state", "pid", "create_time", "restarts", "last_exit", "reason", "log"}}}
```

A service is `running` once its `finfocus serve` process wrote its ready marker
(`run/<name>.ready`, containing its pid) after the broker connected, the topics and its
migrations were in place: start-up really finished, not just "the process is alive".

A consumer service may run as several instances (`finfocus up --replicas pricing=2`, and
`finfocus scale` on a running stack): each instance is a supervised process of its own, named
`pricing`, `pricing-2`, ... in `services` (each entry with its `"service"`), all in the
service's consumer groups, which share each topic's partitions among them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finfocus.embedded.cluster import (
    _is_our_postmaster,
    _postmaster_ref,
    admin_password_file,
    clear_stale_postmaster,
    postgres_dir,
    postgres_log,
    prune_root_clusters,
    root_cluster_parent,
    stop_postgres,
)
from finfocus.embedded.confine import SIGNING_ISSUERS, make_private_home, service_environment
from finfocus.embedded.health import instance_name, quiescent_moment, read_health, service_of
from finfocus.embedded.state import (
    FAILED,
    RUNNING,
    ProcessRef,
    StateFile,
    mask_url,
    supervisor_alive,
    terminate,
    wait_gone,
)
from finfocus.embedded.supervisor import RestartPolicy, Supervisor
from finfocus.settings import SERVICES, FinFocusSettings

if TYPE_CHECKING:
    from finfocus.embedded.kafka import EmbeddedKafka
    from finfocus.embedded.postgres import EmbeddedPostgres

logger = logging.getLogger(__name__)

#: consumer-group timeouts of the embedded profile, passed to children with the bootstrap
EMBEDDED_CONSUMER_ENV = {
    "FINFOCUS_KAFKA_SESSION_TIMEOUT_MS": "1500",
    "FINFOCUS_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
}
#: seconds a service gets to exit on SIGTERM when the broker died, before SIGKILL
BROKER_LOSS_GRACE = 3.0
#: a planned rotation lets the services finish and commit their batch before it stops them
ROTATION_GRACE = 20.0
#: the services that may run as several instances: consumers of the bus, whose consumer groups
#: share each topic's partitions among the instances. Ingest (import jobs, the HTTP intake's
#: port) and the api (its port) run once.
SCALABLE = ("pricing", "anomaly", "forecast", "remediation")


def parse_replicas(text: str | None, partitions: int) -> dict[str, int]:
    """`pricing=2,anomaly=2` -> {"pricing": 2, "anomaly": 2}; ValueError saying what is wrong.

    More instances than a topic has partitions would leave the extra ones idle (a partition
    is consumed by one member of a group at a time), so that is refused too."""
    replicas: dict[str, int] = {}
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, count = part.partition("=")
        name = name.strip()
        if not sep or not count.strip().isdigit():
            raise ValueError(f"{part!r}: expected SERVICE=COUNT, e.g. pricing=2")
        if name not in SCALABLE:
            raise ValueError(
                f"{name!r} cannot run as several instances; choose among {', '.join(SCALABLE)}"
            )
        n = int(count)
        if not 1 <= n <= partitions:
            raise ValueError(
                f"{name}={n}: between 1 and {partitions} (the partitions of each topic, "
                "FINFOCUS_PARTITIONS); an instance beyond that would get no partition"
            )
        replicas[name] = n
    return replicas


def instance_names(services: tuple[str, ...], replicas: dict[str, int]) -> tuple[str, ...]:
    """Every supervised process: each service once, then its further instances."""
    names: list[str] = []
    for service in services:
        names += [instance_name(service, i) for i in range(1, replicas.get(service, 1) + 1)]
    return tuple(names)


def scale_request(home: Path) -> Path:
    """Where `finfocus scale` asks a running supervisor for another number of instances."""
    return home / "run" / "scale.json"


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class StackError(RuntimeError):
    """The stack cannot be started or stopped; the message says why and what to do."""


def rotation_copy(home: Path) -> Path:
    """Where a rotation keeps the unconsumed part of the log between the two brokers."""
    return home / "run" / "broker-rotation.bin"


#: a rotation waits until it would drop at least this share of the log (what all consumed)
ROTATE_MIN_CONSUMED = 0.5
#: how often a waiting rotation looks at the consumers' progress again
ROTATE_WAIT_S = 30.0


def rotation_request(home: Path) -> Path:
    """A file whose presence asks the stack to rotate the broker's log now (an operator's
    `touch`, or a test), whatever its RSS."""
    return home / "run" / "broker-rotate"


def ready_marker(home: Path, service: str) -> Path:
    """File a `finfocus serve` process writes (its pid) once its start-up finished."""
    return home / "run" / f"{service}.ready"


def serve_command(service: str) -> list[str]:
    return [sys.executable, "-m", "finfocus.cli", "serve", service]


class EmbeddedStack:
    """Runs the stack in this process until `stop()` or SIGTERM/SIGINT."""

    def __init__(
        self,
        settings: FinFocusSettings,
        *,
        services: tuple[str, ...] = SERVICES,
        policy: RestartPolicy | None = None,
        poll_interval: float = 0.2,
        replicas: dict[str, int] | None = None,
    ) -> None:
        self.settings = settings
        self.home = settings.home.expanduser().resolve()
        self.services = services
        #: instances per service (1 where not given): `finfocus up --replicas`, `finfocus scale`
        self.replicas = {k: v for k, v in (replicas or {}).items() if k in services}
        self._scale_seen: float | None = None
        self.policy = policy or RestartPolicy()
        self.poll_interval = poll_interval
        self.state_file = StateFile(self.home / "run" / "stack.json")
        self.logs = self.home / "logs"
        self.kafka: EmbeddedKafka | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.supervisor: Supervisor | None = None
        self.state: dict[str, Any] = {}
        self._stopping = False
        self._child_env: dict[str, str] = {}
        self._service_urls: dict[str, str] = {}
        self._reader_url: str | None = None
        #: last time pricing reported raw-billing fully consumed (lag 0 everywhere), and
        #: when its health file was last looked at (every 2 s, by `tick`)
        self._raw_billing_caught_up_at: str | None = None
        self._raw_billing_checked = 0.0
        #: when the health files were last read for the quiescent point, and when pricing's
        #: recovery of a pending epoch was last looked up
        self._quiescent_checked = 0.0
        self._logs_open: dict[str, Any] = {}
        #: when the broker's RSS was last looked at, and the RSS the next rotation waits for
        self._broker_memory_checked = 0.0
        self._rotate_above = 0
        self.prometheus: Any = None  # EmbeddedPrometheus when a `prometheus` binary is on PATH
        self._prometheus_checked = 0.0

    # -- start-up -----------------------------------------------------------------------
    def _prepare(self) -> None:
        previous = self.state_file.read()
        if previous and supervisor_alive(previous):
            raise StackError(
                f"the stack is already running (supervisor pid {previous['supervisor']['pid']}); "
                "see `finfocus status`, stop it with `finfocus down`"
            )
        if previous:
            logger.warning("cleaning up after a previous stack that did not stop cleanly")
            cleanup(previous, self.home)
        make_private_home(self.home)
        from finfocus.signing import ensure_key_files

        ensure_key_files(self.home, SIGNING_ISSUERS)
        me = ProcessRef.of(os.getpid())
        self.state = {
            "supervisor": me.to_dict() if me else {"pid": os.getpid()},
            "phase": "starting",
            "home": str(self.home),
            "started_at": time.time(),
            "kafka_bootstrap": None,
            "database_url": None,
            "kafka_owned": False,
            "postgres_owned": False,
            "replicas": dict(self.replicas),
            "services": {
                name: {"state": "starting", "service": service_of(name)}
                for name in instance_names(self.services, self.replicas)
            },
        }
        self._save()

    def _start_kafka(self) -> None:
        if self.settings.kafka_bootstrap:
            self.state["kafka_bootstrap"] = self.settings.kafka_bootstrap
            return
        from finfocus.embedded.kafka import start_kafka

        stale = rotation_copy(self.home)
        if stale.exists():
            # a stack stopped mid-rotation (its supervisor killed): this broker starts a new
            # epoch whatever, and the recovery re-publishes what that log held, so the copy of
            # it (gigabytes, possibly) is of no use any more
            logger.warning(
                "removing %s (%d MB) left by a broker rotation that did not finish",
                stale,
                stale.stat().st_size // 2**20,
            )
            stale.unlink(missing_ok=True)
        self.kafka = start_kafka(self.logs / "kafka.log")
        ref = ProcessRef.of(self.kafka.process.pid)
        self.state.update(
            kafka_bootstrap=self.kafka.bootstrap,
            kafka_owned=True,
            kafka=ref.to_dict() if ref else None,
        )
        self._bump_epoch()
        self._save()
        logger.info("embedded broker on %s", self.kafka.bootstrap)

    def _bump_epoch(self) -> int:
        """A new broker log: the next epoch, counted across stack runs (run/broker_epoch)."""
        path = self.home / "run" / "broker_epoch"
        try:
            epoch = int(path.read_text().strip()) + 1
        except (FileNotFoundError, ValueError):
            epoch = 1
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(str(epoch))
        self.state["broker_epoch"] = epoch
        self.state["broker_started_at"] = _now_iso()
        return epoch

    def _raw_billing_report(self) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """Pricing's raw-billing consumers as its health files say (every instance's: they
        share the partitions), and the oldest of those reports (it dates them all)."""
        reports = []
        for name, slot in (self.supervisor.slots if self.supervisor else {}).items():
            if service_of(name) == "pricing" and slot.process is not None:
                found = read_health(self.home, "pricing", slot.process.pid)
                if found is not None:
                    reports.append(found)
        report = min(reports, key=lambda r: str(r.get("updated_at"))) if reports else None
        consumers = [
            c
            for r in reports
            for c in r.get("consumers") or []
            if isinstance(c, dict) and c.get("topic") == "raw-billing"
        ]
        return report, consumers

    def _watch_raw_billing(self) -> None:
        """Remember when pricing last had consumed all of raw-billing: after a broker crash,
        rows published straight onto it since then may be lost, and status says so."""
        if self.kafka is None or time.monotonic() - self._raw_billing_checked < 2.0:
            return
        self._raw_billing_checked = time.monotonic()
        report, consumers = self._raw_billing_report()
        if consumers and all(c.get("lag") == 0 for c in consumers):
            self._raw_billing_caught_up_at = (report or {}).get("updated_at")

    def _raw_billing_position(self) -> dict[str, Any]:
        """What pricing last reported of raw-billing before the broker died: when it had
        consumed everything last, the committed offsets and the rows still waiting then."""
        report, consumers = self._raw_billing_report()
        self._watch_raw_billing()
        return {
            "raw_billing_caught_up_at": self._raw_billing_caught_up_at,
            "raw_billing_reported_at": (report or {}).get("updated_at") if consumers else None,
            "raw_billing_committed": {
                str(c.get("partition")): c.get("committed") for c in consumers
            },
            "raw_billing_unconsumed": sum(int(c.get("lag") or 0) for c in consumers)
            if consumers
            else None,
        }

    def _restart_kafka(self) -> None:
        """The broker died and took every topic and committed offset with it (memory only).

        Every service is stopped first (SIGTERM, SIGKILL after a short grace), so none can
        commit its old offsets onto the new, empty log and skip what is published there
        next; then a new broker on the same port, the topics, a new epoch
        (FINFOCUS_BROKER_EPOCH, from which ingest knows to re-publish unconfirmed jobs), and
        the services start again, their groups reading the new log from offset 0.
        """
        assert self.kafka is not None
        port, code = self.kafka.port, self.kafka.process.poll()
        loss = self._loss_record()
        logger.error(
            "embedded broker exited with %s; stopping the services, restarting it on port %d",
            code,
            port,
        )

        def replace_broker() -> None:
            self._replace_lost_broker(port, loss)

        if self.supervisor is not None:
            self.supervisor.restart_all_around(replace_broker, grace=BROKER_LOSS_GRACE)
        else:
            replace_broker()
        self._save()

    def _loss_record(self) -> dict[str, Any]:
        """What a lost log costs, taken while the services still report: the recovery window
        and pricing's position on raw-billing."""
        # what the services publish again: what was stored since every consumer had consumed
        # everything. A pending recovery (an earlier broker died during it) keeps its older
        # window: the quiescent point has not advanced since, and what that recovery had not
        # re-published yet is still missing downstream.
        crashed_at = _now_iso()
        previous_start = self.state.get("broker_started_at")
        pending = self.state.get("recovery_pending")
        since = (
            (pending or {}).get("since")
            or self.state.get("quiescent_at")
            or previous_start
            or crashed_at
        )
        return {
            "at": crashed_at,
            "previous_start": previous_start,
            "recover_since": since,
            "quiescent_at": self.state.get("quiescent_at"),
            **self._raw_billing_position(),
        }

    def _replace_lost_broker(self, port: int, loss: dict[str, Any]) -> None:
        """A new, empty broker on `port` after the old log was lost: topics, a new epoch, and
        the recovery window the services re-publish from."""
        from finfocus.embedded.kafka import start_kafka

        self.kafka = start_kafka(self.logs / "kafka.log", port=port)
        ref = ProcessRef.of(self.kafka.process.pid)
        self.state["kafka"] = ref.to_dict() if ref else None
        self._ensure_topics()
        epoch = self._bump_epoch()
        self._raw_billing_caught_up_at = None
        self.state["broker_recover_since"] = loss["recover_since"]
        self.state["recovery_pending"] = {"epoch": epoch, "since": loss["recover_since"]}
        self.state.setdefault("broker_restarts", []).append({**loss, "epoch": epoch})
        self._save()
        logger.warning("broker epoch %d: the services start again on an empty log", epoch)

    # -- bounded broker memory ------------------------------------------------------------
    def _watch_broker_memory(self) -> None:
        """Rotate the embedded broker's log (finfocus/embedded/rotation.py) once its RSS
        passes FINFOCUS_BROKER_ROTATE_MB, or twice what the last rotation left (a log whose
        unconsumed part alone is that large is not rotated again and again for nothing)."""
        limit = self.settings.broker_rotate_mb * 1024 * 1024
        if self.kafka is None or self.supervisor is None or self._stopping:
            return
        if limit <= 0 and not rotation_request(self.home).exists():
            return
        if time.monotonic() - self._broker_memory_checked < 5.0:
            return
        self._broker_memory_checked = time.monotonic()
        if self.state.get("recovery_pending") or self.kafka.process.poll() is not None:
            return
        import psutil

        try:
            rss = psutil.Process(self.kafka.process.pid).memory_info().rss
        except psutil.Error:
            return
        asked = rotation_request(self.home)
        if asked.exists():
            asked.unlink(missing_ok=True)
            self._rotate_kafka(rss)
        elif limit > 0 and rss > max(limit, self._rotate_above) and self._worth_rotating(rss):
            self._rotate_kafka(rss)

    def _worth_rotating(self, rss: int) -> bool:
        """A rotation stops every service and copies back what is unconsumed: worth it when at
        least ROTATE_MIN_CONSUMED of the log would go. During a burst the consumers are still
        working through (an import publishes faster than they store) it waits, looking again
        every ROTATE_WAIT_S, and `status` shows why (broker.rotation_waiting)."""
        from finfocus.embedded import rotation

        assert self.kafka is not None
        error: str | None = None
        try:
            share = asyncio.run(rotation.survey(self.kafka.bootstrap)).consumed_share()
        except Exception as exc:  # noqa: BLE001 - the broker is busy: look again later
            share, error = 0.0, str(exc)
        if share >= ROTATE_MIN_CONSUMED:
            self.state.pop("broker_rotation_waiting", None)
            return True
        waiting = self.state.get("broker_rotation_waiting") or {"since": _now_iso()}
        waiting.update(rss_mb=round(rss / 2**20), consumed_share=round(share, 3))
        if error:
            waiting["error"] = error
        if "rss_mb" not in (self.state.get("broker_rotation_waiting") or {}):
            logger.warning(
                "embedded broker at %d MB but only %.0f%% of its log is consumed: the rotation "
                "waits for the consumers",
                waiting["rss_mb"],
                100 * share,
            )
        self.state["broker_rotation_waiting"] = waiting
        self._save()
        self._broker_memory_checked = time.monotonic() + ROTATE_WAIT_S - 5.0
        return False

    def _rotate_kafka(self, rss: int) -> None:
        from finfocus.embedded import rotation
        from finfocus.embedded.kafka import start_kafka

        assert self.kafka is not None and self.supervisor is not None
        port, started = self.kafka.port, time.monotonic()
        copy = rotation_copy(self.home)
        entry: dict[str, Any] = {"at": _now_iso(), "rss_mb_before": round(rss / 2**20)}
        self.state.pop("broker_rotation_waiting", None)
        logger.warning(
            "embedded broker at %d MB (FINFOCUS_BROKER_ROTATE_MB=%d): rotating its log",
            entry["rss_mb_before"],
            self.settings.broker_rotate_mb,
        )

        def rotate() -> None:
            assert self.kafka is not None
            bootstrap = self.kafka.bootstrap
            drained = asyncio.run(rotation.drain(bootstrap, copy))
            loss = self._loss_record()  # if the copy does not go back, it is a lost log
            self.kafka.stop(timeout=10)
            try:
                self.kafka = start_kafka(self.logs / "kafka.log", port=port)
                ref = ProcessRef.of(self.kafka.process.pid)
                self.state["kafka"] = ref.to_dict() if ref else None
                self._ensure_topics()
                asyncio.run(rotation.refill(bootstrap, drained))
            except Exception:
                logger.exception("broker rotation failed after the old log was stopped")
                if self.kafka is not None:
                    self.kafka.stop()
                self._replace_lost_broker(port, loss)
                entry["failed"] = True
                return
            copy.unlink(missing_ok=True)
            entry.update(kept=drained.kept_records, dropped=drained.dropped)

        try:
            self.supervisor.restart_all_around(rotate, grace=ROTATION_GRACE)
        except Exception as exc:  # noqa: BLE001 - the drain failed: the old log is untouched
            logger.warning("broker rotation not done, the old log stays: %s", exc)
            entry["deferred"] = str(exc)
            self._rotate_above = rss + 256 * 2**20  # not again at once
        import psutil

        try:
            after = psutil.Process(self.kafka.process.pid).memory_info().rss
        except psutil.Error:
            after = 0
        entry.update(
            rss_mb_after=round(after / 2**20), seconds=round(time.monotonic() - started, 1)
        )
        if "deferred" not in entry:
            self._rotate_above = 2 * after
        rotations = self.state.setdefault("broker_rotations", [])
        rotations.append(entry)
        del rotations[:-20]
        self._save()
        logger.warning("broker rotation: %s", entry)

    def _start_postgres(self) -> None:
        if self.settings.database_url:
            self.state["database_url"] = self.settings.database_url
            return
        from finfocus.db import READER_ROLE
        from finfocus.embedded.postgres import SUPERUSER, start_postgres
        from finfocus.embedded.roles import password_file, provision, service_role

        data_dir = postgres_dir(self.home)
        if os.geteuid() == 0:
            root_cluster_parent()
            for gone in prune_root_clusters():
                logger.info("removed %s: its FINFOCUS_HOME no longer exists", gone)
        clear_stale_postmaster(data_dir)
        try:
            self.postgres = start_postgres(
                data_dir, postgres_log(self.home), password_file=admin_password_file(self.home)
            )
        except RuntimeError as exc:  # PostgresSetupError: says what to do
            raise StackError(str(exc)) from exc
        if os.geteuid() == 0:  # whose cluster this is, for `prune_root_clusters`
            (data_dir.parent / "home").write_text(str(self.home))
        passwords = provision(self.postgres.url, self.home, self.services)
        self._service_urls = {
            name: self.postgres.url_for(service_role(name), passwords[service_role(name)])
            for name in self.services
        }
        # the api reads the other services' views as the reader's own LOGIN role
        self._reader_url = self.postgres.url_for(READER_ROLE, passwords[READER_ROLE])
        ref = _postmaster_ref(data_dir)
        base = f"127.0.0.1:{self.postgres.port}/finfocus"
        self.state.update(
            # no password in the state file: the CLI reads it from the 0600 file
            database_url=f"postgresql://{SUPERUSER}@{base}",
            database_password_file=str(admin_password_file(self.home)),
            reader_url=f"postgresql://{READER_ROLE}@{base}",
            reader_password_file=str(password_file(self.home, READER_ROLE)),
            postgres_owned=True,
            postgres={
                **(ref.to_dict() if ref else {}),
                "data_dir": str(data_dir),
                "port": self.postgres.port,
            },
        )
        self._save()
        logger.info("embedded PostgreSQL on port %d (data in %s)", self.postgres.port, data_dir)

    def _ensure_topics(self) -> None:
        from finfocus.broker import ensure_topics

        deadline = time.monotonic() + 30
        while True:
            try:
                asyncio.run(
                    ensure_topics(
                        self.state["kafka_bootstrap"],
                        self.settings.partitions,
                        configs=self.settings.topic_configs(),
                    )
                )
                return
            except Exception as exc:  # noqa: BLE001 - broker still starting: retry, then report
                if time.monotonic() > deadline:
                    raise StackError(
                        f"cannot create topics on {self.state['kafka_bootstrap']}: {exc}"
                    ) from exc
                time.sleep(0.5)

    def _spawn(self, name: str) -> subprocess.Popen:
        """Start instance `name` (`pricing`, `pricing-2`, ...) of its service."""
        service = service_of(name)
        ready_marker(self.home, name).unlink(missing_ok=True)
        log = self._logs_open.get(name)
        if log is None:
            path = self.logs / f"{name}.log"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            log = self._logs_open[name] = os.fdopen(fd, "ab")
        env = self._children_environment(service)
        env["FINFOCUS_SERVICE_INSTANCE"] = name  # its ready marker: run/<name>.ready
        return subprocess.Popen(
            serve_command(service),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            # own session: a Ctrl-C on the terminal reaches the supervisor only, which then
            # stops the services in order instead of watching them all die at once
            start_new_session=True,
        )

    def _is_ready(self, name: str, process) -> bool:
        try:
            return ready_marker(self.home, name).read_text().strip() == str(process.pid)
        except FileNotFoundError:
            return False

    def _children_environment(self, service: str | None = None) -> dict[str, str]:
        """A service's environment: the filtered supervisor environment, the addresses, its
        own database URL (its LOGIN role) and the broker epoch."""
        env = service_environment(service, os.environ)
        env["FINFOCUS_HOME"] = str(self.home)
        env["FINFOCUS_KAFKA_BOOTSTRAP"] = self.state["kafka_bootstrap"]
        env["FINFOCUS_DATABASE_URL"] = self._service_urls.get(
            service or "", self.state["database_url"]
        )
        if self.state.get("broker_epoch") is not None:
            env["FINFOCUS_BROKER_EPOCH"] = str(self.state["broker_epoch"])
        if self.state.get("broker_recover_since"):
            env["FINFOCUS_BROKER_RECOVER_SINCE"] = str(self.state["broker_recover_since"])
        if service == "api":
            env.update(self._api_environment(env))
        env.setdefault("PYTHONUNBUFFERED", "1")
        env["FINFOCUS_METRICS_PORT"] = "0"  # each its own free port (in its health file)
        if self.state["kafka_owned"]:
            for key, value in EMBEDDED_CONSUMER_ENV.items():
                env.setdefault(key, value)
        return env

    def _api_environment(self, env: dict[str, str]) -> dict[str, str]:
        """The api's address (FINFOCUS_API_PORT as given, else 8770 if free, else a free
        port, kept across its restarts; recorded as `api_url`) and the reader's URL."""
        from finfocus.embedded.ports import free_port

        host = env.get("FINFOCUS_API_HOST") or "127.0.0.1"
        port = self.state.get("api_port")
        if port is None:
            wanted = int(env.get("FINFOCUS_API_PORT") or 8770)
            port = wanted if wanted and _port_free(host, wanted) else free_port(host)
            self.state["api_port"] = port
            self.state["api_url"] = (
                f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
            )
        extra = {"FINFOCUS_API_HOST": host, "FINFOCUS_API_PORT": str(port)}
        if self._reader_url:
            extra["FINFOCUS_READER_DATABASE_URL"] = self._reader_url
        return extra

    def start(self) -> None:
        """Start broker, PostgreSQL, topics and services; raises StackError on failure."""
        self._prepare()
        try:
            self._start_kafka()
            self._start_postgres()
            self._ensure_topics()
            self.supervisor = Supervisor(
                instance_names(self.services, self.replicas),
                self._spawn,
                self._is_ready,
                self.policy,
                on_spawned=lambda _name, _proc: None,
            )
            self.supervisor.start_all()
            self._start_prometheus()
            self._save()
        except BaseException:
            self.shutdown()
            raise

    def _start_prometheus(self) -> None:
        """Prometheus beside the stack when installed (docs/metrics.md); optional: a failure
        to start it is logged, never fatal."""
        from finfocus.embedded.prometheus import EmbeddedPrometheus, binary

        executable = binary()
        if executable is None:
            return
        prometheus = EmbeddedPrometheus(self.home, executable, self.logs / "prometheus.log")
        try:
            prometheus.start()
        except Exception as exc:  # noqa: BLE001
            logger.error("embedded Prometheus did not start: %s (see %s)", exc, prometheus.log)
            return
        self.prometheus = prometheus
        ref = ProcessRef.of(prometheus.pid) if prometheus.pid else None
        self.state.update(prometheus=ref.to_dict() if ref else None, prometheus_url=prometheus.url)

    def _watch_prometheus(self) -> None:
        if self.prometheus is None or time.monotonic() - self._prometheus_checked < 2.0:
            return
        self._prometheus_checked = time.monotonic()
        from finfocus.embedded.prometheus import metrics_urls

        pid = self.prometheus.pid
        slots = self.supervisor.slots if self.supervisor else {}
        pids = {n: s.process.pid if s.process else None for n, s in slots.items()}
        self.prometheus.watch(metrics_urls(self.home, pids))
        if self.prometheus.pid != pid:  # restarted: `down` must find the new one
            ref = ProcessRef.of(self.prometheus.pid) if self.prometheus.pid else None
            self.state["prometheus"] = ref.to_dict() if ref else None
            self._save()

    # -- running ------------------------------------------------------------------------
    def _save(self) -> None:
        if self.supervisor is not None:
            services = {}
            for name, slot in self.supervisor.slots.items():
                entry = slot.snapshot()
                ref = ProcessRef.of(entry["pid"]) if entry["pid"] else None
                entry["create_time"] = ref.create_time if ref else None
                entry["log"] = str(self.logs / f"{name}.log")
                entry["service"] = service_of(name)
                services[name] = entry
            self.state["services"] = services
            if self.state["phase"] == "starting" and self.supervisor.settled():
                self.state["phase"] = "running"
        self.state_file.write(self.state)

    def _postgres_gone(self) -> bool:
        ref = ProcessRef.from_dict(self.state.get("postgres"))
        return self.postgres is not None and ref is not None and not ref.alive()

    def _restart_postgres(self) -> None:
        """Start the cluster again on the same port (services reconnect; data is on disk)."""
        from finfocus.embedded.postgres import start_postgres

        assert self.postgres is not None
        data_dir, port = self.postgres.data_dir, self.postgres.port
        logger.error("embedded PostgreSQL exited; restarting it on port %d", port)
        for attempt in range(5):
            # the killed server's backends linger for a moment and hold its lock files
            time.sleep(0.5 * (attempt + 1))
            try:
                clear_stale_postmaster(data_dir)
                self.postgres = start_postgres(
                    data_dir,
                    postgres_log(self.home),
                    port=port,
                    password_file=admin_password_file(self.home),
                )
                break
            except Exception as exc:  # noqa: BLE001 - retried; the services will report it
                logger.warning("restarting PostgreSQL failed (attempt %d): %s", attempt + 1, exc)
        else:
            logger.error("cannot restart PostgreSQL; see %s", self.logs / "postgres.log")
            self.postgres = None
            return
        ref = _postmaster_ref(data_dir)
        self.state["postgres"] = {
            **(ref.to_dict() if ref else {}),
            "data_dir": str(data_dir),
            "port": port,
        }
        self._save()

    def tick(self) -> None:
        if self.kafka is not None and self.kafka.process.poll() is not None and not self._stopping:
            self._restart_kafka()
        if not self._stopping and self._postgres_gone():
            self._restart_postgres()
        if not self._stopping:
            self._watch_scale()
        if self.supervisor is not None and self.supervisor.tick():
            self._save()
        self._watch_raw_billing()
        self._watch_quiescent()
        self._watch_broker_memory()
        self._watch_prometheus()

    def _watch_quiescent(self, force: bool = False) -> None:
        """Advance the quiescent point (`quiescent_at` in the state): the last time every
        consumer group of every service had lag 0 on every partition. Not while the recovery
        after a broker loss is pending: a fresh broker has lag 0 at once, long before pricing
        published again what downstream missed, so a second loss then keeps the older window."""
        if self.kafka is None or self.supervisor is None:
            return
        if not force and time.monotonic() - self._quiescent_checked < 2.0:
            return
        self._quiescent_checked = time.monotonic()
        pending = self.state.get("recovery_pending")
        if pending and not self._recovery_finished(pending["epoch"]):
            return
        if pending:
            self.state.pop("recovery_pending", None)
        reports = {
            name: read_health(self.home, service_of(name), slot.process.pid)
            if slot.state == RUNNING and slot.process is not None
            else None
            for name, slot in self.supervisor.slots.items()
        }
        moment = quiescent_moment(reports)
        if moment is not None and moment != self.state.get("quiescent_at"):
            self.state["quiescent_at"] = moment
            self._save()
        elif pending:
            self._save()

    def _recovery_finished(self, epoch: int) -> bool:
        """Pricing published again what the broker of `epoch`'s predecessor took (its
        `pricing.v_recoveries` row completed), read as the reader role."""
        if not self._reader_url or "pricing" not in self.services:
            return True

        async def look() -> bool:
            import asyncpg

            conn = await asyncpg.connect(self._reader_url, timeout=2)
            try:
                if not await conn.fetchval(
                    "SELECT to_regclass('pricing.v_recoveries') IS NOT NULL"
                ):
                    return False
                return bool(
                    await conn.fetchval(
                        "SELECT true FROM pricing.v_recoveries WHERE epoch = $1 AND state = 'completed'",
                        str(epoch),
                    )
                )
            finally:
                await conn.close()

        try:
            return asyncio.run(asyncio.wait_for(look(), 3))
        except Exception:  # noqa: BLE001 - the database is away: still pending
            return False

    def _watch_scale(self) -> None:
        """Apply a `finfocus scale` request (run/scale.json: {"pricing": 3, ...}) once."""
        path = scale_request(self.home)
        try:
            seen = path.stat().st_mtime
        except FileNotFoundError:
            return
        if seen == self._scale_seen:
            return
        self._scale_seen = seen
        import json

        try:
            wanted = json.loads(path.read_text())
            request = parse_replicas(
                ",".join(f"{k}={v}" for k, v in dict(wanted).items()), self.settings.partitions
            )
        except (OSError, ValueError, TypeError) as exc:
            self.state["scale_error"] = f"{path}: {exc}"
            self._save()
            return
        path.unlink(missing_ok=True)
        self.state.pop("scale_error", None)
        self.scale(request)

    def scale(self, request: dict[str, int]) -> None:
        """Run as many instances of each service in `request` as it says: new ones start
        and join the service's consumer groups; the last ones stop (SIGTERM: they leave their
        groups, their partitions go to the others after a rebalance)."""
        if self.supervisor is None:
            return
        for service, count in request.items():
            if service not in self.services:
                continue
            have = self.replicas.get(service, 1)
            for index in range(have + 1, count + 1):
                logger.info("starting instance %s", instance_name(service, index))
                self.supervisor.add(instance_name(service, index))
            for index in range(have, count, -1):
                logger.info("stopping instance %s", instance_name(service, index))
                self.supervisor.remove(instance_name(service, index))
                ready_marker(self.home, instance_name(service, index)).unlink(missing_ok=True)
            self.replicas[service] = count
        self.state["replicas"] = dict(self.replicas)
        self._save()

    def stop(self, *_: Any) -> None:
        """Ask the run loop to shut down (signal handler)."""
        self._stopping = True

    def run_forever(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        try:
            while not self._stopping:
                self.tick()
                time.sleep(self.poll_interval)
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Stop the services, then the broker and PostgreSQL this stack started; forget the state."""
        self._stopping = True
        if self.state:
            self.state["phase"] = "stopping"
            self.state_file.write(self.state)
        if self.supervisor is not None:
            self.supervisor.stop_all()
        if self.prometheus is not None:
            self.prometheus.stop()
        if self.kafka is not None:
            self.kafka.stop()
        if self.postgres is not None:
            stop_postgres(
                self.postgres.data_dir,
                self.postgres.port,
                ProcessRef.from_dict(self.state.get("postgres")),
            )
        for name in {*self.services, *instance_names(self.services, self.replicas)}:
            ready_marker(self.home, name).unlink(missing_ok=True)
        for log in self._logs_open.values():
            log.close()
        self.state_file.remove()
        logger.info("stack stopped")


def cleanup(state: dict[str, Any], home: Path) -> list[str]:
    """Stop what a dead (or unresponsive) supervisor left behind; returns what was stopped.

    Every pid is checked against its recorded creation time first, so a pid reused by an
    unrelated process is never signalled; a broker or database the stack did not start
    (`FINFOCUS_KAFKA_BOOTSTRAP`, `FINFOCUS_DATABASE_URL`) is never touched.
    """
    stopped = []
    for name, entry in (state.get("services") or {}).items():
        if terminate(ProcessRef.from_dict(entry) if entry.get("pid") else None):
            stopped.append(f"service {name}")
        ready_marker(home, name).unlink(missing_ok=True)
    if terminate(ProcessRef.from_dict(state.get("prometheus"))):
        stopped.append("prometheus")
    if state.get("kafka_owned") and terminate(ProcessRef.from_dict(state.get("kafka"))):
        stopped.append("broker")
    if state.get("postgres_owned") and state.get("postgres"):
        data_dir = Path(state["postgres"]["data_dir"])
        ref = ProcessRef.from_dict(state["postgres"])
        if ref and _is_our_postmaster(ref, data_dir):
            stop_postgres(data_dir, int(state["postgres"].get("port") or 0), ref)
            stopped.append("postgres")
        else:
            clear_stale_postmaster(data_dir)
    StateFile(home / "run" / "stack.json").remove()
    return stopped


def stop_stack(settings: FinFocusSettings, timeout: float = 60.0) -> list[str]:
    """`finfocus down`: stop the supervisor (which stops everything), then any leftovers."""
    home = settings.home.expanduser().resolve()
    state_file = StateFile(home / "run" / "stack.json")
    state = state_file.read()
    if not state:
        return []
    stopped = []
    ref = ProcessRef.from_dict(state.get("supervisor"))
    if ref and ref.alive():
        os.kill(ref.pid, signal.SIGTERM)
        if not wait_gone(ref, timeout):
            logger.warning("supervisor did not stop within %.0fs; killing it", timeout)
            terminate(ref, timeout=1)
        stopped.append("supervisor")
        stopped += [f"service {name}" for name in (state.get("services") or {})]
        stopped += ["broker"] if state.get("kafka_owned") else []
        stopped += ["postgres"] if state.get("postgres_owned") else []
    stopped += [item for item in cleanup(state, home) if item not in stopped]
    return stopped


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def public_status(state: dict[str, Any]) -> dict[str, Any]:
    """What `finfocus status --output json` prints: addresses (secrets masked) and states."""
    return {
        "kafka_bootstrap": state.get("kafka_bootstrap"),
        "database_url": mask_url(state.get("database_url")),
        "api_url": state.get("api_url"),
        "services": {
            name: (entry or {}).get("state", "stopped")
            for name, entry in (state.get("services") or {}).items()
        },
    }


def broker_status(state: dict[str, Any]) -> dict[str, Any]:
    """The broker's epoch and restarts for `status`, each restart with what it cost: rows
    published straight onto raw-billing that pricing had not consumed are gone for good."""
    restarts = []
    for entry in state.get("broker_restarts") or []:
        # from the last moment pricing had consumed all of raw-billing (else the broker's
        # start) to the crash: rows published straight onto the topic then may be gone
        since = entry.get("raw_billing_caught_up_at") or entry.get("previous_start") or "its start"
        waiting = entry.get("raw_billing_unconsumed")
        reported = entry.get("raw_billing_reported_at")
        lost = (
            f"rows published directly on raw-billing (not through ingest) between {since} and "
            f"{entry['at']} that pricing had not consumed cannot be recovered: the embedded "
            "broker keeps nothing across a restart"
            + (f" ({waiting} were waiting at {reported})" if waiting else "")
            + "; imports and the HTTP intake are re-published by ingest"
            + (
                f"; lines pricing stored since {entry['recover_since']} are re-published by "
                "pricing to every downstream service"
                if entry.get("recover_since")
                else ""
            )
        )
        restarts.append(
            {**entry, "unrecoverable_from": since, "unrecoverable_to": entry["at"], "lost": lost}
        )
    return {
        "owned": bool(state.get("kafka_owned")),
        "epoch": state.get("broker_epoch"),
        "started_at": state.get("broker_started_at"),
        "restarts": restarts,
        # every consumer had consumed everything then; a recovery still pending keeps it still
        "quiescent_at": state.get("quiescent_at"),
        "recover_since": state.get("broker_recover_since"),
        "recovery_pending": state.get("recovery_pending"),
        # planned rotations of the log (bounded memory): what each kept and dropped
        "rotations": state.get("broker_rotations") or [],
        # a rotation due by size that waits for the consumers (too little of the log consumed)
        "rotation_waiting": state.get("broker_rotation_waiting"),
    }


def start_detached(
    settings: FinFocusSettings,
    timeout: float = 180.0,
    replicas: dict[str, int] | None = None,
    services: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Start a supervisor in the background; return its state once every service is running
    or failed. Raises StackError when it dies or does not settle within `timeout`."""
    home = settings.home.expanduser().resolve()
    state_file = StateFile(home / "run" / "stack.json")
    existing = state_file.read()
    if existing and supervisor_alive(existing):
        raise StackError("the stack is already running; see `finfocus status`")
    make_private_home(home)
    log_path = home / "logs" / "supervisor.log"
    env = dict(os.environ, FINFOCUS_HOME=str(home), PYTHONUNBUFFERED="1")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "finfocus.cli", "up"]
            + (
                ["--replicas", ",".join(f"{k}={v}" for k, v in replicas.items())]
                if replicas
                else []
            )
            + (["--only", ",".join(services)] if services else []),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            raise StackError(
                f"the stack failed to start (exit {code}); see {log_path}:\n{_tail(log_path)}"
            )
        state = state_file.read()
        if (state.get("supervisor") or {}).get("pid") == proc.pid and state.get(
            "phase"
        ) == "running":
            return state
        time.sleep(0.2)
    raise StackError(
        f"the stack did not become ready within {timeout:.0f}s (it is still starting; "
        f"see `finfocus status`, logs in {home / 'logs'})"
    )


def failed_services(state: dict[str, Any]) -> list[str]:
    return [n for n, e in (state.get("services") or {}).items() if (e or {}).get("state") == FAILED]


def all_running(state: dict[str, Any]) -> bool:
    services = state.get("services") or {}
    return bool(services) and all((e or {}).get("state") == RUNNING for e in services.values())


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""
