"""Price snapshots: the list prices `cost projected` uses with no setup, one file per cloud.

The bundled snapshots (`services/pricing/prices/{aws,azure,gcp}.json`) are replaced, cloud by
cloud, by the files `finfocus prices refresh` writes under `FINFOCUS_HOME/prices`. A file::

    {"cloud": "aws", "provider": "AWS", "currency": "USD",
     "source": "AWS Price List bulk offer files ...", "sourceUrl": "https://...",
     "effectiveDate": "2024-09-01", "retrievedAt": "2024-09-01T00:00:00Z",
     "prices": [{"service": "AmazonEC2", "sku": "c5.large", "region": "us-east-1",
                 "unit": "Hrs", "price": "0.085", "description": "...",
                 "effectiveFrom": "2024-09-01"}],            # effectiveFrom: default effectiveDate
     "history": [{... same keys ..., "effectiveTo": "2024-10-01T00:00:00Z"}]}

`history` keeps every superseded price with the date it stopped applying (see `merge`).
GCP publishes per-vCPU, per-GiB and per-GPU hour prices; the hourly price of a machine type
(`e2-medium`, `a2-highgpu-1g`) is derived from them and the machine's shape (`GCP_SHAPES`).
All of this is pure: loading reads files, nothing here touches the network or a database.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from services.pricing.domain import Quote, UsageLine

BUNDLED_DIR = Path(__file__).parent / "prices"
CLOUDS = ("aws", "azure", "gcp")


@dataclass(frozen=True, slots=True)
class SnapshotPrice:
    provider: str
    service: str
    sku: str
    region: str
    unit: str
    price: Decimal
    currency: str
    source: str  # "snapshot:<cloud>"
    effective_from: str
    description: str = ""


@dataclass(frozen=True)
class SnapshotInfo:
    cloud: str
    provider: str
    source: str
    source_url: str
    effective_date: str
    retrieved_at: str
    prices: int
    history: int
    file: str
    bundled: bool

    def age_days(self, today: date | None = None) -> int | None:
        try:
            when = date.fromisoformat(self.effective_date[:10])
        except ValueError:
            return None
        return ((today or datetime.now(UTC).date()) - when).days

    def public(self, today: date | None = None) -> dict:
        return {
            "cloud": self.cloud,
            "provider": self.provider,
            "source": self.source,
            "sourceUrl": self.source_url,
            "effectiveDate": self.effective_date,
            "retrievedAt": self.retrieved_at,
            "ageDays": self.age_days(today),
            "prices": self.prices,
            "history": self.history,
            "file": self.file,
            "bundled": self.bundled,
        }


# ---------------------------------------------------------------- GCP machine shapes
#: family -> (vCPU, GiB) per "unit"; standard = 4 GiB per vCPU, highmem 8, highcpu 1 (n1: 3.75/6.5/0.9)
_GCP_RATIOS = {
    "standard": Decimal(4),
    "highmem": Decimal(8),
    "highcpu": Decimal(1),
}
_N1_RATIOS = {"standard": Decimal("3.75"), "highmem": Decimal("6.5"), "highcpu": Decimal("0.9")}
#: machine types that do not follow family-kind-N: (vCPU billed, GiB, GPUs, GPU model)
GCP_SHAPES: dict[str, tuple[Decimal, Decimal, int, str | None]] = {
    "e2-micro": (Decimal("0.25"), Decimal(1), 0, None),
    "e2-small": (Decimal("0.5"), Decimal(2), 0, None),
    "e2-medium": (Decimal(1), Decimal(4), 0, None),
    "a2-highgpu-1g": (Decimal(12), Decimal(85), 1, "nvidia-tesla-a100"),
    "a2-highgpu-2g": (Decimal(24), Decimal(170), 2, "nvidia-tesla-a100"),
    "a2-highgpu-4g": (Decimal(48), Decimal(340), 4, "nvidia-tesla-a100"),
    "a2-highgpu-8g": (Decimal(96), Decimal(680), 8, "nvidia-tesla-a100"),
}


def gcp_shape(machine_type: str) -> tuple[str, Decimal, Decimal, int, str | None] | None:
    """(family, vCPU, GiB, GPUs, GPU model) of a predefined or custom GCP machine type."""
    mt = machine_type.strip().lower().rsplit("/", 1)[-1]
    family = mt.split("-", 1)[0]
    if mt in GCP_SHAPES:
        return (family, *GCP_SHAPES[mt])
    m = re.fullmatch(r"([a-z0-9]+)-(standard|highmem|highcpu)-(\d+)", mt)
    if m:
        n = Decimal(m.group(3))
        ratio = (_N1_RATIOS if m.group(1) == "n1" else _GCP_RATIOS)[m.group(2)]
        return m.group(1), n, n * ratio, 0, None
    m = re.fullmatch(r"(?:([a-z0-9]+)-)?custom-(\d+)-(\d+)(?:-ext)?", mt)  # custom-CPUS-MEMORY_MB
    if m:
        return m.group(1) or "n1", Decimal(m.group(2)), Decimal(m.group(3)) / 1024, 0, None
    return None


# ---------------------------------------------------------------- the snapshot
def _read(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"price snapshot {path} cannot be read: {exc}") from None
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("prices"), list)
        or not doc.get("provider")
    ):
        raise ValueError(f"price snapshot {path} is not a snapshot file (no provider or prices[])")
    return doc


class PriceSnapshot:
    """Every price of the snapshot files, looked up by (provider, service, sku, region)."""

    def __init__(self, docs: Sequence[tuple[dict, str, bool]] = ()) -> None:
        self._index: dict[tuple[str, str, str, str], SnapshotPrice] = {}
        self._infos: list[SnapshotInfo] = []
        for doc, file, bundled in docs:
            self._add(doc, file, bundled)

    def _add(self, doc: dict, file: str, bundled: bool) -> None:
        cloud = doc.get("cloud") or doc["provider"].lower()
        provider = doc["provider"]
        currency = doc.get("currency") or "USD"
        default_from = doc.get("effectiveDate") or ""
        for row in doc["prices"]:
            try:
                price = Decimal(str(row["price"]))
            except (KeyError, InvalidOperation):
                raise ValueError(f"price snapshot {file}: bad price in {row!r}") from None
            p = SnapshotPrice(
                provider,
                row["service"],
                row["sku"],
                row.get("region") or "",
                row.get("unit") or "",
                price,
                row.get("currency") or currency,
                f"snapshot:{cloud}",
                row.get("effectiveFrom") or default_from,
                row.get("description") or "",
            )
            self._index.setdefault(_key(provider, p.service, p.sku, p.region), p)
        self._infos.append(
            SnapshotInfo(
                cloud,
                provider,
                doc.get("source") or "",
                doc.get("sourceUrl") or "",
                default_from,
                doc.get("retrievedAt") or "",
                len(doc["prices"]),
                len(doc.get("history") or []),
                file,
                bundled,
            )
        )

    @classmethod
    def load(cls, *directories: Path, clouds: Iterable[str] = CLOUDS) -> PriceSnapshot:
        """The snapshot of each cloud from the first directory that has it (a refreshed file
        under FINFOCUS_HOME/prices first, then the bundled one)."""
        docs = []
        for cloud in clouds:
            for directory in directories:
                path = Path(directory) / f"{cloud}.json"
                if path.is_file():
                    docs.append(
                        (_read(path), str(path), Path(directory).resolve() == BUNDLED_DIR.resolve())
                    )
                    break
        return cls(docs)

    @property
    def infos(self) -> list[SnapshotInfo]:
        return list(self._infos)

    def __len__(self) -> int:
        return len(self._index)

    def lookup(
        self, provider: str, service: str, sku: str | None, region: str | None
    ) -> SnapshotPrice | None:
        if not sku:
            return None
        found = self._index.get(_key(provider, service, sku, region or ""))
        if found is None and provider == "Google Cloud" and service == "Compute Engine":
            found = self._gcp_machine(sku, region or "")
        return found

    def _gcp_machine(self, machine_type: str, region: str) -> SnapshotPrice | None:
        shape = gcp_shape(machine_type)
        if shape is None:
            return None
        family, cpus, gib, gpus, gpu = shape
        core = self._index.get(_key("Google Cloud", "Compute Engine", f"{family}:core", region))
        ram = self._index.get(_key("Google Cloud", "Compute Engine", f"{family}:ram", region))
        acc = (
            self._index.get(_key("Google Cloud", "Compute Engine", f"gpu:{gpu}", region))
            if gpus
            else None
        )
        if core is None or ram is None or (gpus and acc is None):
            return None
        price = cpus * core.price + gib * ram.price + (gpus * acc.price if acc else Decimal(0))
        desc = f"{machine_type}: {cpus} vCPU x {core.price} + {gib} GiB x {ram.price}" + (
            f" + {gpus} {gpu} x {acc.price}" if acc else ""
        )
        derived = SnapshotPrice(
            "Google Cloud",
            "Compute Engine",
            machine_type,
            region,
            "Hrs",
            price,
            core.currency,
            core.source,
            max(core.effective_from, ram.effective_from),
            desc,
        )
        self._index[_key("Google Cloud", "Compute Engine", machine_type, region)] = derived
        return derived

    def quote(self, line: UsageLine) -> Quote | None:
        hit = self.lookup(line.provider, line.service, line.sku or line.resource_type, line.region)
        return Quote(hit.source, hit.price, hit.currency, hit.unit) if hit else None


def _key(provider: str, service: str, sku: str, region: str) -> tuple[str, str, str, str]:
    return provider.lower(), service.lower(), sku.lower(), region.lower()


# ---------------------------------------------------------------- refresh: history
def merge(old: dict | None, fresh: dict, now: datetime) -> tuple[dict, dict]:
    """The new snapshot document: `fresh`'s prices, each unchanged price keeping the date it
    took effect, each changed or withdrawn one moved to `history` with `effectiveTo` = now.
    Returns (document, {"new", "changed", "unchanged", "withdrawn"} counts)."""
    stamp = now.astimezone(UTC).isoformat().replace("+00:00", "Z")
    old_rows = {
        (r["service"], r["sku"], r.get("region") or ""): r for r in (old or {}).get("prices", [])
    }
    default_old = (old or {}).get("effectiveDate") or ""
    history = list((old or {}).get("history") or [])
    counts = {"new": 0, "changed": 0, "unchanged": 0, "withdrawn": 0}
    rows = []
    seen = set()
    for row in fresh["prices"]:
        key = (row["service"], row["sku"], row.get("region") or "")
        seen.add(key)
        before = old_rows.get(key)
        row = dict(row)
        if before is None:
            counts["new"] += 1
            row.setdefault("effectiveFrom", fresh.get("effectiveDate") or stamp)
        elif Decimal(str(before["price"])) == Decimal(str(row["price"])) and before.get(
            "unit"
        ) == row.get("unit"):
            counts["unchanged"] += 1
            row["effectiveFrom"] = before.get("effectiveFrom") or default_old
        else:
            counts["changed"] += 1
            history.append(
                {
                    **before,
                    "effectiveFrom": before.get("effectiveFrom") or default_old,
                    "effectiveTo": stamp,
                }
            )
            row["effectiveFrom"] = row.get("effectiveFrom") or stamp
        rows.append(row)
    for key, before in old_rows.items():
        if key not in seen:
            counts["withdrawn"] += 1
            history.append(
                {
                    **before,
                    "effectiveFrom": before.get("effectiveFrom") or default_old,
                    "effectiveTo": stamp,
                }
            )
    doc = {
        **{k: v for k, v in fresh.items() if k not in {"prices", "history"}},
        "retrievedAt": stamp,
        "prices": rows,
        "history": history,
    }
    return doc, counts


def catalog_rows(doc: dict) -> list:
    """The snapshot's current prices as instance-catalog rows (`catalog.CatalogPrice`, source
    `list:<cloud>`), each with the date it took effect, for `store.record_prices`."""
    from services.pricing.catalog import CatalogPrice, _when

    cloud = doc.get("cloud") or doc["provider"].lower()
    default = doc.get("effectiveDate") or ""
    return [
        CatalogPrice(
            f"list:{cloud}",
            doc["provider"],
            r["service"],
            r["sku"],
            r.get("region") or "",
            r.get("unit") or "",
            Decimal(str(r["price"])),
            r.get("currency") or doc.get("currency") or "USD",
            r.get("description") or None,
            _when(r.get("effectiveFrom") or default),
        )
        for r in doc["prices"]
    ]
