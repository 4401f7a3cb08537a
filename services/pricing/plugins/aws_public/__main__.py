"""Run the `aws-public` plugin: `python -m services.pricing.plugins.aws_public [--offers DIR]`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from finfocus.plugin_sdk import Plugin, Resource, Spec, serve
from services.pricing.plugins.aws_public.offers import DEFAULT_DIR, OfferIndex


class AwsPublicPlugin(Plugin):
    name = "aws-public"
    version = "0.1.0"

    def __init__(self, index: OfferIndex) -> None:
        self.index = index

    def pricing_spec(self, resource: Resource) -> list[Spec]:
        if resource.provider and resource.provider.lower() not in {"aws", "amazon web services"}:
            return []
        if resource.currency and resource.currency != "USD":
            return []
        kind = resource.sku or resource.resource_type
        engine = resource.attributes.get("engine")
        if kind and engine and not kind.startswith("storage:"):
            kind = f"{kind}:{engine.lower()}"
        if not kind:
            found = self.index.all(resource.service, resource.region)
        else:
            hit = self.index.lookup(resource.service, kind, resource.region)
            found = [hit] if hit else []
        return [
            Spec(
                "AWS",
                p.service,
                p.kind,
                p.region,
                p.unit,
                p.price,
                "USD",
                "OnDemand",
                p.effective_date,
                p.description,
            )
            for p in found
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description="FinFocus aws-public pricing plugin")
    parser.add_argument(
        "--offers",
        type=Path,
        default=Path(os.environ.get("FINFOCUS_PRICING_AWS_OFFERS_DIR") or DEFAULT_DIR),
    )
    args = parser.parse_args()
    serve(AwsPublicPlugin(OfferIndex.load(args.offers)))


if __name__ == "__main__":
    main()
