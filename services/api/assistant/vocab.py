"""The names a question may use, learnt from the data, and the matching of words to them.

Service names, providers, accounts (ids and names), regions and tag keys and values are read
from the views once and cached for a few minutes (on a million lines that read takes longer
than a question). Names are data: they are only ever compared with the question's words and
bound into SQL as quoted literals, never read as instructions.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass, field

#: abbreviations people use -> compact forms of the service names providers bill under
SERVICE_ALIASES: dict[str, tuple[str, ...]] = {
    "ec2": ("amazonec2", "amazonelasticcomputecloud", "elasticcomputecloud"),
    "s3": ("amazons3", "amazonsimplestorageservice", "simplestorageservice"),
    "rds": ("amazonrds", "amazonrelationaldatabaseservice", "relationaldatabaseservice"),
    "lambda": ("awslambda", "lambda"),
    "cloudfront": ("amazoncloudfront",),
    "dynamodb": ("amazondynamodb",),
    "dynamo": ("amazondynamodb",),
    "eks": ("amazonekscluster", "amazoneks", "amazonelastickubernetesservice"),
    "ebs": ("amazonebs", "amazonelasticblockstore"),
    "vms": ("virtualmachines",),
    "vm": ("virtualmachines",),
    "gce": ("computeengine",),
    "gcs": ("cloudstorage",),
    "bq": ("bigquery",),
    "azuresql": ("azuresqldatabase", "sqldatabase"),
    "support": ("awssupportbusiness", "awssupportenterprise", "awssupport"),
}
PROVIDER_ALIASES: dict[str, tuple[str, ...]] = {
    "aws": ("aws", "amazon"), "amazon": ("aws", "amazon"), "amazonwebservices": ("aws", "amazon"),
    "azure": ("microsoft", "azure"), "microsoft": ("microsoft", "azure"),
    "gcp": ("google", "gcp"), "google": ("google", "gcp"), "googlecloud": ("google", "gcp"),
}  # fmt: skip
_VENDOR_PREFIXES = ("amazon", "aws", "azure", "microsoft", "google", "cloud")
CACHE_SECONDS = 300.0


def compact(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9][a-z0-9_.:/@-]*[a-z0-9]|[a-z0-9]", text.lower())


@dataclass
class Vocabulary:
    providers: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    accounts: dict[str, str | None] = field(default_factory=dict)  # id -> name
    regions: list[str] = field(default_factory=list)
    tags: dict[str, set[str]] = field(default_factory=dict)
    forecast_dims: list[str] = field(default_factory=list)
    currencies: list[str] = field(default_factory=list)

    def index(self) -> dict[str, list[tuple[str, str]]]:  # noqa: C901 - every spelling of every name kind (nested add): a table, not logic
        """compact phrase -> [(kind, value)] for every way a name may be written."""
        out: dict[str, list[tuple[str, str]]] = defaultdict(list)

        def add(key: str, kind: str, value: str) -> None:
            if key and (kind, value) not in out[key]:
                out[key].append((kind, value))

        for s in self.services:
            add(compact(s), "service", s)
            stripped = s.lower()
            for prefix in _VENDOR_PREFIXES:
                if stripped.startswith(prefix + " "):
                    add(compact(stripped[len(prefix) :]), "service", s)
            for alias, targets in SERVICE_ALIASES.items():
                if compact(s) in targets:
                    for key in (alias, *targets):
                        add(key, "service", s)
        for p in self.providers:
            add(compact(p), "provider", p)
            for alias, needles in PROVIDER_ALIASES.items():
                if any(n in compact(p) for n in needles):
                    add(alias, "provider", p)
        for acct, name in self.accounts.items():
            add(compact(acct), "account", acct)
            if name:
                add(compact(name), "account", acct)
        for r in self.regions:
            add(compact(r), "region", r)
        for key, values in self.tags.items():
            add(compact(key), "tagkey", key)
            for v in values:
                add(compact(v), "tag", f"{key}={v}")
        return out


_cache: dict[str, tuple[float, Vocabulary]] = {}

VOCABULARY_SQL = """
SELECT provider, service_name, coalesce(sub_account_id, billing_account_id) AS account,
       max(record ->> 'SubAccountName') AS account_name, region_id, billing_currency
FROM pricing.v_cost_lines GROUP BY 1, 2, 3, 5, 6
"""
TAGS_SQL = "SELECT DISTINCT tags FROM pricing.v_cost_lines WHERE tags <> '{}'::jsonb"


async def load(conn, *, key: str | None = None, max_age: float = CACHE_SECONDS) -> Vocabulary:
    """The vocabulary of the database behind `conn`, cached per `key` for `max_age` seconds."""
    if key is not None and key in _cache and time.monotonic() - _cache[key][0] < max_age:
        return _cache[key][1]
    vocab = Vocabulary()
    providers, services, regions, currencies = set(), set(), set(), set()
    async with conn.transaction(readonly=True):
        for r in await conn.fetch(VOCABULARY_SQL):
            providers.add(r["provider"])
            services.add(r["service_name"])
            if r["region_id"]:
                regions.add(r["region_id"])
            currencies.add(r["billing_currency"])
            if r["account"] and (vocab.accounts.get(r["account"]) is None):
                vocab.accounts[r["account"]] = r["account_name"]
        tags: dict[str, set[str]] = defaultdict(set)
        for r in await conn.fetch(TAGS_SQL):
            value = r["tags"]
            if isinstance(value, str):
                import json

                value = json.loads(value)
            for k, v in (value or {}).items():
                if isinstance(v, str):
                    tags[k].add(v)
        try:
            async with conn.transaction():  # a savepoint: a missing view must not end the rest
                vocab.forecast_dims = [
                    r["dims"]
                    for r in await conn.fetch("SELECT DISTINCT dims FROM forecast.v_month_end")
                ]
        except Exception:  # noqa: BLE001 - no forecast service in this database: no forecasts
            vocab.forecast_dims = []
    vocab.providers, vocab.services = sorted(providers), sorted(services)
    vocab.regions, vocab.currencies = sorted(regions), sorted(currencies)
    vocab.tags = dict(tags)
    if key is not None:
        _cache[key] = (time.monotonic(), vocab)
    return vocab


def forget(key: str | None = None) -> None:
    """Drop cached vocabularies (after an import, in tests)."""
    if key is None:
        _cache.clear()
    else:
        _cache.pop(key, None)
