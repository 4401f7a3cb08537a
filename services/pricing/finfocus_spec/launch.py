"""The plugin host's side of finfocus.v1 plugins: start one as finfocus-spec's core does, and
ask it for prices, projected and actual costs (the host's deadlines, retries, cache and
circuit breaker apply unchanged: everything goes through `PluginHost._call`).

Start-up (finfocus-spec `docs/PLUGIN_STARTUP_PROTOCOL.md`): the host picks a free port and
runs `<command> --port=<port>` with `FINFOCUS_PLUGIN_PORT=<port>`; the plugin announces
`PORT=<port>` on stdout (the port announced wins; a plugin that binds without announcing is
found on the assigned port), then `Name` is called to check it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from schemas.currencies import is_iso_4217
from services.pricing.domain import Quote, UsageLine
from services.pricing.finfocus_spec import adapter

if TYPE_CHECKING:
    from services.pricing.host import PluginHost, PluginRef, ProjectedAnswer

logger = logging.getLogger(__name__)

#: statuses that mean "nothing for this resource" (not a plugin failure)
QUIET = frozenset({"NOT_FOUND", "UNIMPLEMENTED", "INVALID_ARGUMENT"})
_ANNOUNCE = re.compile(r"^(?:FINFOCUS_PLUGIN_)?PORT=(\d{1,5})$|^(\d{1,5})$", re.IGNORECASE)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def parse_announcement(line: str) -> int | None:
    """The port in a `PORT=<port>` line (case-insensitive; a bare number too), else None."""
    m = _ANNOUNCE.match(line.strip())
    if not m:
        return None
    port = int(m.group(1) or m.group(2))
    return port if 0 < port < 65536 else None


async def _announced(stdout: asyncio.StreamReader, deadline: float) -> int | None:
    """Read stdout lines until one announces the port; None at EOF or when time is up."""
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = await asyncio.wait_for(stdout.readline(), left)
        except TimeoutError:
            return None
        if not line:
            return None
        port = parse_announcement(line.decode("utf-8", "replace"))
        if port is not None:
            return port
    return None


async def _drain(stdout: asyncio.StreamReader) -> None:
    """Keep reading what the plugin writes on stdout, so that a chatty plugin never blocks."""
    while await stdout.read(65536):
        pass


async def launch(host: PluginHost, ref: PluginRef):
    import grpc

    from services.pricing.finfocus_spec import costsource_pb2 as v1
    from services.pricing.finfocus_spec import costsource_pb2_grpc as v1rpc
    from services.pricing.host import PluginError, _Running

    stderr: int | IO[bytes] = asyncio.subprocess.DEVNULL
    if host.log_dir is not None:
        host.log_dir.mkdir(parents=True, exist_ok=True)
        # the plugin's stderr for its life; opened once per start, not worth a thread
        stderr = open(host.log_dir / f"plugin-{ref.name}.log", "ab")  # noqa: SIM115, ASYNC230
    assigned = _free_port()
    env = {**os.environ, **ref.manifest.env, "FINFOCUS_PLUGIN_PORT": str(assigned)}
    env.pop("PORT", None)  # finfocus-spec plugins must not pick a generic PORT up
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parents[3]), env.get("PYTHONPATH")])  # noqa: ASYNC240 - once per start
    )
    process = await asyncio.create_subprocess_exec(
        *ref.argv(),
        f"--port={assigned}",
        cwd=ref.directory,
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
        stdin=asyncio.subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    wait = max(host.start_timeout, host.timeout)
    try:
        assert process.stdout is not None  # stdout=PIPE
        port = await _announced(process.stdout, time.monotonic() + wait)
        if port is None and process.stdout.at_eof():
            # stdout closed without an announcement: the plugin is most likely exiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 2)
        if port is None and process.returncode is not None:
            raise PluginError(f"exited with code {process.returncode} before announcing PORT=")
        port = port or assigned
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        stub = v1rpc.CostSourceServiceStub(channel)
        try:
            answer = await stub.Name(v1.NameRequest(), timeout=wait, wait_for_ready=True)
        except BaseException:
            await channel.close()
            raise
        if answer.name != ref.name:
            logger.info(
                "finfocus.v1 plugin names itself differently",
                extra={"fields": {"plugin": ref.name, "name": answer.name}},
            )
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    drain = asyncio.create_task(_drain(process.stdout))
    return _Running(process, channel, stub, adapter.PROTOCOL, drain)


def _descriptor(**fields: Any):
    from services.pricing.finfocus_spec import costsource_pb2 as v1

    return v1.ResourceDescriptor(**adapter.descriptor_fields(**fields))


def _checked(ref: PluginRef, currency: str) -> str:
    from services.pricing.host import BadAnswer

    currency = currency or "USD"
    if not is_iso_4217(currency):
        raise BadAnswer(f"{ref.name} answered currency {currency!r}")
    return currency


async def quote(host: PluginHost, ref: PluginRef, line: UsageLine) -> Quote | None:
    """A unit price for one usage line: `GetPricingSpec` (rate in its unit), else
    `GetProjectedCost` (unit price of the resource); None when the plugin has none."""
    from services.pricing.finfocus_spec import costsource_pb2 as v1
    from services.pricing.host import BadAnswer, NoAnswer

    resource = _descriptor(
        provider=line.provider,
        service=line.service,
        sku=line.sku,
        resource_type_=line.resource_type,
        region=line.region,
        unit=line.unit,
    )
    try:
        got = None
        try:
            answer = await host._call(
                ref, "GetPricingSpec", v1.GetPricingSpecRequest(resource=resource), QUIET
            )
            if answer.HasField("spec"):
                got = adapter.price_from_spec(answer.spec, line.unit)
        except NoAnswer:
            pass
        if got is None:
            try:
                answer = await host._call(
                    ref, "GetProjectedCost", v1.GetProjectedCostRequest(resource=resource), QUIET
                )
            except NoAnswer:
                return None
            got = adapter.price_from_projected(answer, line.unit)
        if got is None:
            return None
    except adapter.SpecAnswerError as exc:
        raise BadAnswer(f"{ref.name}: {exc}") from None
    return Quote(f"plugin:{ref.name}", got.price, _checked(ref, got.currency), got.unit)


async def projected(
    host: PluginHost,
    ref: PluginRef,
    *,
    provider,
    service,
    sku,
    resource_type,
    region,
    unit,
    attributes,
) -> ProjectedAnswer | None:
    """`GetProjectedCost` for one planned resource."""
    from services.pricing.finfocus_spec import costsource_pb2 as v1
    from services.pricing.host import BadAnswer, NoAnswer, ProjectedAnswer

    resource = _descriptor(
        provider=provider,
        service=service,
        sku=sku,
        resource_type_=resource_type,
        region=region,
        unit=unit,
        attributes=attributes,
    )
    try:
        answer = await host._call(
            ref, "GetProjectedCost", v1.GetProjectedCostRequest(resource=resource), QUIET
        )
    except NoAnswer:
        return None
    try:
        unit_price = adapter.money(answer.unit_price, "unit_price")
        monthly = adapter.money(answer.cost_per_month, "cost_per_month")
    except adapter.SpecAnswerError as exc:
        raise BadAnswer(f"{ref.name}: {exc}") from None
    if not unit_price and not monthly and not answer.currency:
        return None  # an empty answer: nothing known
    return ProjectedAnswer(
        f"plugin:{ref.name}",
        unit_price,
        monthly,
        _checked(ref, answer.currency),
        unit or "",
        answer.billing_detail,
    )


async def actual(
    host: PluginHost, ref: PluginRef, resource_id: str, start: str, end: str, attributes: dict
) -> list:
    """`GetActualCost` as this project's `ActualCostResult` messages (decimal strings)."""
    from finfocus.plugin_sdk import finfocus_plugin_pb2 as pb
    from services.pricing.finfocus_spec import costsource_pb2 as v1
    from services.pricing.host import PluginError

    try:
        request = v1.GetActualCostRequest(
            resource_id=resource_id,
            start=adapter.timestamp_of(start),
            end=adapter.timestamp_of(end),
            tags=attributes,
        )
        answer = await host._call(ref, "GetActualCost", request, QUIET)
        points = adapter.actual_points(answer.results, end)
    except (PluginError, ValueError) as exc:
        if isinstance(exc, adapter.SpecAnswerError):
            host._failed(ref.name, f"{ref.name}: {exc}")
        return []
    rows = []
    for p in points:
        if not is_iso_4217(p.currency):
            host._failed(ref.name, f"{ref.name} answered currency {p.currency!r}")
            return []
        rows.append(
            pb.ActualCostResult(
                start=p.start,
                end=p.end,
                cost=format(p.cost, "f"),
                currency=p.currency,
                usage_amount="" if p.usage_amount is None else format(p.usage_amount, "f"),
                usage_unit=p.usage_unit,
                source=p.source or f"plugin:{ref.name}",
                labels=p.labels,
            )
        )
    return rows
