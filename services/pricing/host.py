"""The plugin host: starts pricing plugins as separate processes and queries them over gRPC.

Every call has a deadline (10 s by default) and is retried with exponential backoff; queries
run in parallel; answers (found or not) are cached for a TTL. A plugin that crashes, hangs or
answers garbage only loses its own answers: after repeated failures its circuit opens for a
cool-down, and it is restarted when it has died. Nothing here ever raises into the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

from finfocus import metrics
from schemas.currencies import is_iso_4217
from services.pricing.domain import Quote, UsageLine
from services.pricing.manifest import PluginManifest, PluginRef, discover, load_manifest

__all__ = ["PluginHost", "PluginManifest", "PluginRef", "discover", "load_manifest"]

logger = logging.getLogger(__name__)

HANDSHAKE = "FINFOCUS_PLUGIN_PORT="


class PluginError(Exception):
    """A plugin call failed (timeout, crash, bad answer)."""


class BadAnswer(PluginError):
    """The plugin answered, but with something that is not a price (garbage)."""


class NoAnswer(PluginError):
    """A finfocus.v1 plugin said it has nothing for this question (NOT_FOUND, UNIMPLEMENTED,
    INVALID_ARGUMENT): no price, and not a failure of the plugin."""


#: protocol of finfocus-spec plugins (`finfocus.v1.CostSourceService`); 1 = finfocus.plugin.v1
SPEC_PROTOCOL = "finfocus.v1"


@dataclass
class PluginStats:
    state: str = "stopped"  # running, failed, open (circuit open), stopped
    calls: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    cache_hits: int = 0
    last_error: str | None = None
    restarts: int = 0


@dataclass
class _Running:
    process: asyncio.subprocess.Process
    channel: Any  # grpc.aio.Channel; grpc ships no type information
    stub: Any  # generated PricingPluginStub, or CostSourceServiceStub for finfocus.v1 plugins
    protocol: int | str = 1
    drain: Any = None  # the task reading a finfocus.v1 plugin's stdout after its announcement


def _decimal(text: str, what: str) -> Decimal:
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError):
        raise BadAnswer(f"{what} {text!r} is not a decimal") from None
    if not value.is_finite() or value < 0:
        raise BadAnswer(f"{what} {text!r} is not a finite non-negative decimal")
    return value


@dataclass(frozen=True)
class ProjectedAnswer:
    source: str
    unit_price: Decimal
    monthly: Decimal
    currency: str
    unit: str
    detail: str = ""


@dataclass
class PluginHost:
    """Runs plugins and answers pricing questions from them, never failing the caller."""

    plugins: list[PluginRef]
    timeout: float = 10.0
    start_timeout: float = 30.0  # process start + handshake (imports can be slow on a busy box)
    retries: int = 2
    backoff: float = 0.2
    ttl: float = 3600.0
    failure_threshold: int = 3
    cooldown: float = 30.0
    concurrency: int = 16
    log_dir: Path | None = None
    #: where usage-price answers persist between runs (the CLI's warm cache); None = memory only
    cache_file: Path | None = None
    stats: dict[str, PluginStats] = field(default_factory=dict)
    _running: dict[str, _Running] = field(default_factory=dict)
    _cache: dict[tuple, tuple[float, object]] = field(default_factory=dict)
    _open_until: dict[str, float] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _sem: asyncio.Semaphore | None = None

    def __post_init__(self) -> None:
        for ref in self.plugins:
            self.stats.setdefault(ref.name, PluginStats())
            metrics.PLUGIN_CIRCUIT_OPEN.labels(ref.name).set(0)
        if self.cache_file is not None:
            self._load_cache(self.cache_file)

    def _load_cache(self, path: Path) -> None:
        """Unexpired price answers of earlier runs: a warm run starts no plugin at all."""
        import json

        try:
            entries = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        now_wall, now = time.time(), time.monotonic()
        names = set(self.names)
        for entry in entries if isinstance(entries, list) else []:
            try:
                key, expires, value = tuple(entry["key"]), float(entry["expires"]), entry["quote"]
                if expires <= now_wall or key[0] not in names or key[1] != "spec":
                    continue
                quote = (
                    None
                    if value is None
                    else Quote(
                        value["source"],
                        Decimal(value["unit_price"]),
                        value["currency"],
                        value.get("unit"),
                    )
                )
            except (KeyError, TypeError, ValueError, InvalidOperation):
                continue
            self._cache[key] = (now + (expires - now_wall), quote)

    def _save_cache(self, path: Path) -> None:
        import json

        now_wall, now = time.time(), time.monotonic()
        entries = [
            {
                "key": list(key),
                "expires": now_wall + (expiry - now),
                "quote": None
                if value is None
                else {
                    "source": value.source,
                    "unit_price": str(value.unit_price),
                    "currency": value.currency,
                    "unit": value.unit,
                },
            }
            for key, (expiry, value) in self._cache.items()
            if key[1] == "spec" and expiry > now and (value is None or isinstance(value, Quote))
        ]
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(entries))
            tmp.replace(path)
        except OSError as exc:
            logger.warning("plugin cache not saved", extra={"fields": {"error": str(exc)}})

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.plugins]

    async def start(self) -> None:
        """Start every plugin in parallel; one that does not come up is reported, not fatal."""
        self._sem = asyncio.Semaphore(self.concurrency)
        for ref in self.plugins:
            self.stats.setdefault(ref.name, PluginStats())
            self._locks.setdefault(ref.name, asyncio.Lock())
        await asyncio.gather(*(self._ensure(ref) for ref in self.plugins), return_exceptions=True)

    async def stop(self) -> None:
        if self.cache_file is not None and self._cache:
            self._save_cache(self.cache_file)
        for name in list(self._running):
            await self._kill(name)
        for stats in self.stats.values():
            stats.state = "stopped"

    async def _kill(self, name: str) -> None:
        running = self._running.pop(name, None)
        if running is None:
            return
        if running.drain is not None:
            running.drain.cancel()
        with contextlib.suppress(Exception):  # stopping: a channel already broken is fine
            await running.channel.close()
        if running.process.returncode is None:
            running.process.terminate()
            try:
                await asyncio.wait_for(running.process.wait(), 5)
            except TimeoutError:
                running.process.kill()
                await running.process.wait()

    def _semaphore(self) -> asyncio.Semaphore:
        """The call limiter, made on first use when `start` was skipped."""
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.concurrency)
        return self._sem

    async def _ensure(self, ref: PluginRef) -> _Running:
        """The plugin's process and channel, (re)starting it when it is not running."""
        self.stats.setdefault(ref.name, PluginStats())
        self._semaphore()
        async with self._locks.setdefault(ref.name, asyncio.Lock()):
            running = self._running.get(ref.name)
            if running is not None and running.process.returncode is None:
                return running
            if running is not None:
                self.stats[ref.name].restarts += 1
                await self._kill(ref.name)
            try:
                running = await self._launch(ref)
            except Exception as exc:  # noqa: BLE001
                self._failed(ref.name, f"start: {exc}")
                raise PluginError(f"{ref.name} did not start: {exc}") from None
            self._running[ref.name] = running
            self.stats[ref.name].state = "running"
            return running

    @staticmethod
    def is_spec(ref: PluginRef) -> bool:
        """Whether `ref` speaks finfocus-spec's `finfocus.v1` CostSourceService."""
        return ref.manifest.protocol == SPEC_PROTOCOL

    async def _launch(self, ref: PluginRef) -> _Running:
        if self.is_spec(ref):
            from services.pricing.finfocus_spec.launch import launch

            return await launch(self, ref)
        import grpc

        from finfocus.plugin_sdk import finfocus_plugin_pb2 as pb
        from finfocus.plugin_sdk import finfocus_plugin_pb2_grpc as rpc

        stderr: int | IO[bytes] = asyncio.subprocess.DEVNULL
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            # the plugin's stderr for its life; opened once per start, not worth a thread
            stderr = open(self.log_dir / f"plugin-{ref.name}.log", "ab")  # noqa: SIM115, ASYNC230
        env = {**os.environ, **ref.manifest.env}
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH")])  # noqa: ASYNC240 - once per start
        )
        process = await asyncio.create_subprocess_exec(
            *ref.argv(),
            cwd=ref.directory,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            stdin=asyncio.subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        try:
            assert process.stdout is not None  # stdout=PIPE
            line = await asyncio.wait_for(
                process.stdout.readline(), max(self.start_timeout, self.timeout)
            )
            text = line.decode("utf-8", "replace").strip()
            if not text.startswith(HANDSHAKE):
                raise PluginError(f"bad handshake {text[:80]!r}")
            port = int(text[len(HANDSHAKE) :])
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
            stub = rpc.PricingPluginStub(channel)
            answer = await stub.Name(
                pb.NameRequest(), timeout=max(self.start_timeout, self.timeout)
            )
            if answer.name != ref.name:
                await channel.close()
                raise PluginError(
                    f"plugin calls itself {answer.name!r}, manifest says {ref.name!r}"
                )
        except BaseException:
            if process.returncode is None:
                process.kill()
                await process.wait()
            raise
        return _Running(process, channel, stub)

    async def _reap(self, name: str, wait: float = 1.0) -> None:
        """Give a process that dropped its connection a moment to exit, so `_ensure` sees it."""
        running = self._running.get(name)
        if running is not None and running.process.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(running.process.wait(), wait)

    def _failed(self, name: str, error: str) -> None:
        stats = self.stats.setdefault(name, PluginStats())
        stats.failures += 1
        stats.consecutive_failures += 1
        stats.last_error = error[:500]
        metrics.PLUGIN_FAILURES.labels(name).inc()
        if stats.consecutive_failures >= self.failure_threshold:
            self._open_until[name] = time.monotonic() + self.cooldown
            stats.state = "open"
            metrics.PLUGIN_CIRCUIT_OPEN.labels(name).set(1)
        else:
            stats.state = "failed" if name not in self._running else stats.state
        logger.warning(
            "pricing plugin failed", extra={"fields": {"plugin": name, "error": stats.last_error}}
        )

    def _available(self, name: str) -> bool:
        until = self._open_until.get(name)
        if until is None:
            return True
        if time.monotonic() >= until:
            del self._open_until[name]
            self.stats[name].consecutive_failures = self.failure_threshold - 1  # half-open: one try
            return True
        return False

    async def _call(
        self, ref: PluginRef, method: str, request: Any, quiet: frozenset = frozenset()
    ) -> Any:
        """One RPC with deadline, retries and backoff; raises PluginError after the last try,
        NoAnswer (not a failure) when the plugin answers a status named in `quiet`."""
        import grpc

        stats = self.stats.setdefault(ref.name, PluginStats())
        delay = self.backoff
        last = "unknown error"
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(delay)
                delay *= 2
            try:
                running = await self._ensure(ref)
                stats.calls += 1
                async with self._semaphore():
                    began = time.perf_counter()
                    try:
                        answer = await getattr(running.stub, method)(request, timeout=self.timeout)
                    finally:
                        metrics.PLUGIN_SECONDS.labels(ref.name, method).observe(
                            time.perf_counter() - began
                        )
                stats.consecutive_failures = 0
                if stats.state != "running":
                    stats.state = "running"
                    metrics.PLUGIN_CIRCUIT_OPEN.labels(ref.name).set(0)
                return answer
            except grpc.aio.AioRpcError as exc:
                last = f"{method}: {exc.code().name} {exc.details() or ''}".strip()
                if exc.code().name in quiet:
                    stats.consecutive_failures = 0
                    raise NoAnswer(last) from None
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    break
                if exc.code() == grpc.StatusCode.UNAVAILABLE:
                    await self._reap(ref.name)  # a crashed process is restarted by the next try
            except PluginError as exc:
                last = str(exc)
            except Exception as exc:  # noqa: BLE001
                last = f"{method}: {type(exc).__name__}: {exc}"
        self._failed(ref.name, last)
        raise PluginError(last)

    async def _cached(self, key: tuple, compute):
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            self.stats.setdefault(key[0], PluginStats()).cache_hits += 1
            return hit[1]
        value = await compute()
        self._cache[key] = (now + self.ttl, value)
        return value

    @staticmethod
    def _descriptor(provider, service, sku, resource_type, region, unit, currency, attributes=None):
        from finfocus.plugin_sdk import finfocus_plugin_pb2 as pb

        return pb.ResourceDescriptor(
            provider=provider or "",
            service=service or "",
            sku=sku or "",
            resource_type=resource_type or "",
            region=region or "",
            unit=unit or "",
            currency=currency or "",
            attributes=attributes or {},
        )

    async def _spec_quote(self, ref: PluginRef, line: UsageLine) -> Quote | None:
        """GetPricingSpec for one usage line from one plugin, validated; None when it has no
        price or fails (the failure is recorded)."""
        if not self._available(ref.name):
            return None
        key = (
            ref.name,
            "spec",
            line.provider,
            line.service,
            line.sku,
            line.resource_type,
            line.region,
            line.unit,
            line.currency,
        )

        async def compute() -> Quote | None:
            if self.is_spec(ref):
                from services.pricing.finfocus_spec.launch import quote

                return await quote(self, ref, line)
            request = self._descriptor(
                line.provider,
                line.service,
                line.sku,
                line.resource_type,
                line.region,
                line.unit,
                line.currency,
            )
            answer = await self._call(ref, "GetPricingSpec", request)
            for spec in answer.specs:
                price = _decimal(spec.unit_price, f"{ref.name} unit_price")
                currency = spec.currency or "USD"
                if not is_iso_4217(currency):
                    raise BadAnswer(f"{ref.name} answered currency {currency!r}")
                return Quote(f"plugin:{ref.name}", price, currency, spec.unit or None)
            return None

        try:
            return await self._cached(key, compute)
        except BadAnswer as exc:
            self._failed(ref.name, str(exc))
            return None
        except PluginError:
            return None

    async def quotes(self, lines: Sequence[UsageLine]) -> list[list[Quote | None]]:
        """For each line, every plugin's quote in plugin order (None where it has none)."""
        if not self.plugins:
            return [[] for _ in lines]
        unique: dict[UsageLine, int] = {}
        for line in lines:
            unique.setdefault(line, len(unique))
        keys = list(unique)
        answers = await asyncio.gather(
            *(self._spec_quote(ref, line) for line in keys for ref in self.plugins)
        )
        n = len(self.plugins)
        per_key = [list(answers[i * n : (i + 1) * n]) for i in range(len(keys))]
        return [per_key[unique[line]] for line in lines]

    async def projected(
        self,
        *,
        provider,
        service,
        sku,
        resource_type,
        region,
        unit="",
        currency="USD",
        attributes: dict[str, str] | None = None,
    ) -> ProjectedAnswer | None:
        """The first plugin's projected monthly cost for a planned resource (None: no plugin prices it)."""
        attrs = dict(sorted((attributes or {}).items()))
        for ref in self.plugins:
            if not self._available(ref.name):
                continue
            key = (
                ref.name,
                "projected",
                provider,
                service,
                sku,
                resource_type,
                region,
                unit,
                currency,
                tuple(attrs.items()),
            )

            async def compute(ref=ref) -> ProjectedAnswer | None:
                if self.is_spec(ref):
                    from services.pricing.finfocus_spec.launch import projected

                    return await projected(
                        self,
                        ref,
                        provider=provider,
                        service=service,
                        sku=sku,
                        resource_type=resource_type,
                        region=region,
                        unit=unit,
                        attributes=attrs,
                    )
                request = self._descriptor(
                    provider, service, sku, resource_type, region, unit, currency, attrs
                )
                answer = await self._call(ref, "GetProjectedCost", request)
                if not answer.found:
                    return None
                cur = answer.currency or "USD"
                if not is_iso_4217(cur):
                    raise BadAnswer(f"{ref.name} answered currency {cur!r}")
                return ProjectedAnswer(
                    f"plugin:{ref.name}",
                    _decimal(answer.unit_price, "unit_price"),
                    _decimal(answer.cost_per_month, "cost_per_month"),
                    cur,
                    answer.unit,
                    answer.detail,
                )

            try:
                got = await self._cached(key, compute)
            except BadAnswer as exc:
                self._failed(ref.name, str(exc))
                continue
            except PluginError:
                continue
            if got is not None:
                return got
        return None

    async def pricing_specs(
        self, ref: PluginRef, *, provider="", service="", sku="", region=""
    ) -> list:
        """Every spec a plugin lists for a filter (catalog refresh); [] when it fails, and for
        finfocus.v1 plugins, whose protocol prices one resource at a time and lists nothing."""
        if self.is_spec(ref):
            return []
        try:
            answer = await self._call(
                ref, "GetPricingSpec", self._descriptor(provider, service, sku, "", region, "", "")
            )
        except PluginError:
            return []
        return list(answer.specs)

    async def actual(
        self, ref: PluginRef, resource_id: str, start: str, end: str, attributes=None
    ) -> list:
        from finfocus.plugin_sdk import finfocus_plugin_pb2 as pb

        if self.is_spec(ref):
            from services.pricing.finfocus_spec.launch import actual

            return await actual(self, ref, resource_id, start, end, attributes or {})
        try:
            answer = await self._call(
                ref,
                "GetActualCost",
                pb.ActualCostRequest(
                    resource_id=resource_id, start=start, end=end, attributes=attributes or {}
                ),
            )
        except PluginError:
            return []
        return list(answer.results)

    def report(self) -> dict[str, dict]:
        """Per plugin: state, calls, failures, cache hits and the last error."""
        return {name: vars(stats).copy() for name, stats in self.stats.items()}
