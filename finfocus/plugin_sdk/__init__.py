"""SDK for FinFocus pricing plugins: subclass `Plugin`, call `serve(MyPlugin())`.

A plugin is its own process speaking the gRPC protocol in `finfocus_plugin.proto`. `serve`
binds 127.0.0.1 on a free port and prints `FINFOCUS_PLUGIN_PORT=<port>` as its first stdout
line, which is how the FinFocus host finds it. Install a plugin under
`FINFOCUS_HOME/plugins/<name>/<version>/` with a `plugin.yaml` manifest::

    name: my-prices          # kebab-case
    version: 0.1.0
    protocol: 1
    command: ["{python}", "plugin.py"]   # {python} = the host's interpreter; cwd = this dir

Money and quantities are decimal strings on the wire, never floats.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from dataclasses import dataclass, field
from decimal import Decimal

PROTOCOL_VERSION = 1
HANDSHAKE = "FINFOCUS_PLUGIN_PORT="
HOURS_PER_MONTH = Decimal(730)


@dataclass(frozen=True)
class Resource:
    """What the host asks about: a resource or a usage line."""

    provider: str = ""
    service: str = ""
    resource_type: str = ""
    sku: str = ""
    region: str = ""
    unit: str = ""
    currency: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Spec:
    """A unit price."""

    provider: str
    service: str
    sku: str
    region: str
    unit: str
    unit_price: Decimal
    currency: str = "USD"
    billing_mode: str = "OnDemand"
    effective_date: str = ""
    description: str = ""


@dataclass(frozen=True)
class Projected:
    """The monthly cost of a planned resource."""

    unit_price: Decimal
    cost_per_month: Decimal
    unit: str
    currency: str = "USD"
    detail: str = ""


@dataclass(frozen=True)
class ActualCost:
    start: str
    end: str
    cost: Decimal
    currency: str = "USD"
    usage_amount: Decimal | None = None
    usage_unit: str = ""
    source: str = ""
    labels: dict[str, str] = field(default_factory=dict)


class Plugin:
    """Base class: override what your plugin can do. Defaults answer "not supported"."""

    name = "example"
    version = "0.0.0"

    def supports(self, resource: Resource) -> tuple[bool, str]:
        return bool(self.pricing_spec(resource)), ""

    def pricing_spec(self, resource: Resource) -> list[Spec]:
        return []

    def projected_cost(self, resource: Resource) -> Projected | None:
        """Default: the first spec, hourly prices times 730 hours, monthly prices as they are,
        times the `quantity` attribute (GB, count) when given."""
        specs = self.pricing_spec(resource)
        if not specs:
            return None
        spec = specs[0]
        quantity = Decimal(resource.attributes.get("quantity", "1"))
        hourly = spec.unit.lower() in {"hrs", "hours", "hour", "h"}
        monthly = spec.unit_price * quantity * (HOURS_PER_MONTH if hourly else 1)
        return Projected(spec.unit_price, monthly, spec.unit, spec.currency, spec.description)

    def actual_cost(
        self, resource_id: str, start: str, end: str, attributes: dict[str, str]
    ) -> list[ActualCost]:
        return []


def _text(value: object) -> str:
    """Decimal as plain digits (no exponent); anything else as given."""
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _servicer(plugin: Plugin):
    from finfocus.plugin_sdk import finfocus_plugin_pb2 as pb
    from finfocus.plugin_sdk import finfocus_plugin_pb2_grpc as rpc

    def resource(msg) -> Resource:
        return Resource(
            provider=msg.provider,
            service=msg.service,
            resource_type=msg.resource_type,
            sku=msg.sku,
            region=msg.region,
            unit=msg.unit,
            currency=msg.currency,
            attributes=dict(msg.attributes),
        )

    class Servicer(rpc.PricingPluginServicer):
        async def Name(self, request, context):
            return pb.NameResponse(
                name=plugin.name, version=plugin.version, protocol_version=PROTOCOL_VERSION
            )

        async def Supports(self, request, context):
            ok, reason = plugin.supports(resource(request))
            return pb.SupportsResponse(supported=ok, reason=reason)

        async def GetProjectedCost(self, request, context):
            got = plugin.projected_cost(resource(request))
            if got is None:
                return pb.ProjectedCostResponse(found=False)
            return pb.ProjectedCostResponse(
                found=True,
                unit_price=_text(got.unit_price),
                currency=got.currency,
                unit=got.unit,
                cost_per_month=_text(got.cost_per_month),
                detail=got.detail,
            )

        async def GetActualCost(self, request, context):
            rows = plugin.actual_cost(
                request.resource_id, request.start, request.end, dict(request.attributes)
            )
            return pb.ActualCostResponse(
                results=[
                    pb.ActualCostResult(
                        start=r.start,
                        end=r.end,
                        cost=_text(r.cost),
                        currency=r.currency,
                        usage_amount="" if r.usage_amount is None else _text(r.usage_amount),
                        usage_unit=r.usage_unit,
                        source=r.source,
                        labels=r.labels,
                    )
                    for r in rows
                ]
            )

        async def GetPricingSpec(self, request, context):
            return pb.PricingSpecResponse(
                specs=[
                    pb.PricingSpec(
                        provider=s.provider,
                        service=s.service,
                        sku=s.sku,
                        region=s.region,
                        unit=s.unit,
                        unit_price=_text(s.unit_price),
                        currency=s.currency,
                        billing_mode=s.billing_mode,
                        effective_date=s.effective_date,
                        description=s.description,
                    )
                    for s in plugin.pricing_spec(resource(request))
                ]
            )

    return Servicer()


async def serve_async(plugin: Plugin, host: str = "127.0.0.1", port: int = 0) -> None:
    """Serve `plugin` until the process is terminated."""
    import grpc

    from finfocus.plugin_sdk import finfocus_plugin_pb2_grpc as rpc

    server = grpc.aio.server()
    rpc.add_PricingPluginServicer_to_server(_servicer(plugin), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    sys.stdout.write(f"{HANDSHAKE}{bound}\n")
    sys.stdout.flush()
    watcher = asyncio.create_task(_exit_with_parent(server))
    try:
        await server.wait_for_termination()
    finally:
        watcher.cancel()


async def _exit_with_parent(server, interval: float = 1.0) -> None:
    """Stop when the host is gone (re-parented): a plugin never outlives the service that
    started it, even when that service was killed without a chance to stop it."""
    import os

    parent = os.getppid()
    while True:
        await asyncio.sleep(interval)
        if os.getppid() != parent:
            await server.stop(grace=None)
            return


def serve(plugin: Plugin, host: str = "127.0.0.1", port: int = 0) -> None:
    """Blocking entry point for a plugin's `__main__`."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_async(plugin, host, port))
