"""Reading OpenCost's allocation API (`GET /allocation/compute`) without floats."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal

#: cost columns of an allocation, summed into totalCost by OpenCost itself
COST_FIELDS = (
    "cpuCost",
    "gpuCost",
    "ramCost",
    "pvCost",
    "networkCost",
    "loadBalancerCost",
    "sharedCost",
    "externalCost",
)


@dataclass(frozen=True)
class Allocation:
    name: str
    start: str
    end: str
    total: Decimal
    parts: dict[str, Decimal]
    properties: dict


def parse_allocations(body: bytes | str) -> list[Allocation]:
    """Allocations of an API answer (numbers parsed as Decimal); raises ValueError when the
    answer is not a successful allocation response."""
    doc = json.loads(body, parse_float=Decimal, parse_int=Decimal)
    if (
        not isinstance(doc, dict)
        or int(doc.get("code", 0)) != 200
        or not isinstance(doc.get("data"), list)
    ):
        raise ValueError(f"not an OpenCost allocation response: {str(doc)[:200]}")
    out: list[Allocation] = []
    for window in doc["data"]:
        for name, a in (window or {}).items():
            if name == "__idle__" or not isinstance(a, dict):
                continue
            parts = {k: Decimal(a.get(k) or 0) for k in COST_FIELDS}
            total = (
                Decimal(a["totalCost"])
                if a.get("totalCost") is not None
                else sum(parts.values(), Decimal(0))
            )
            out.append(
                Allocation(
                    name,
                    str(a.get("start", "")),
                    str(a.get("end", "")),
                    total,
                    parts,
                    a.get("properties") or {},
                )
            )
    return out


def fetch(
    base_url: str, start: str, end: str, aggregate: str, timeout: float = 5.0
) -> list[Allocation]:
    import httpx

    response = httpx.get(
        f"{base_url.rstrip('/')}/allocation/compute",
        params={"window": f"{start},{end}", "aggregate": aggregate, "accumulate": "true"},
        timeout=timeout,
    )
    response.raise_for_status()
    return parse_allocations(response.content)
