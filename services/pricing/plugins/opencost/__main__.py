"""Run the `opencost` plugin: `python -m services.pricing.plugins.opencost --url URL`."""

from __future__ import annotations

import argparse
import os

from finfocus.plugin_sdk import ActualCost, Plugin, Resource, serve
from services.pricing.plugins.opencost.client import fetch


class OpenCostPlugin(Plugin):
    name = "opencost"
    version = "0.1.0"

    def __init__(self, url: str, window: str = "7d") -> None:
        self.url = url
        self.window = window

    def supports(self, resource: Resource) -> tuple[bool, str]:
        ok = "kubernetes" in (resource.provider + resource.service).lower()
        return ok, "" if ok else "only Kubernetes workloads"

    def actual_cost(
        self, resource_id: str, start: str, end: str, attributes: dict[str, str]
    ) -> list[ActualCost]:
        aggregate = attributes.get("aggregate", "pod")
        rows = fetch(self.url, start, end, aggregate)
        return [
            ActualCost(
                a.start or start,
                a.end or end,
                a.total,
                "USD",
                source="opencost",
                labels={
                    "name": a.name,
                    **{k: str(v) for k, v in a.properties.items() if isinstance(v, str)},
                },
            )
            for a in rows
            if not resource_id or a.name == resource_id or a.name.startswith(resource_id + "/")
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description="FinFocus opencost pricing plugin")
    parser.add_argument(
        "--url",
        default=os.environ.get("FINFOCUS_PRICING_OPENCOST_URL"),
        required=not os.environ.get("FINFOCUS_PRICING_OPENCOST_URL"),
    )
    parser.add_argument("--window", default="7d")
    args = parser.parse_args()
    serve(OpenCostPlugin(args.url, args.window))


if __name__ == "__main__":
    main()
