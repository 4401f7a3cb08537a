"""The api reads the other services only through their published `v_*` views, and never
names another service's schema in a write."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
OTHERS = ("ingest", "pricing", "anomaly", "forecast", "remediation")
NAMED = re.compile(r"\b(" + "|".join(OTHERS) + r")\.([a-z_]+)\b")
WRITE = re.compile(
    r"\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM|TRUNCATE|ALTER\s+TABLE|COPY)\s+("
    + "|".join(OTHERS)
    + r")\.",
    re.IGNORECASE,
)


def _sources() -> list[Path]:
    return sorted((ROOT / "services" / "api").rglob("*.py")) + sorted(
        (ROOT / "services" / "api").rglob("*.sql")
    )


def test_the_api_names_only_the_views_of_other_services():
    for path in _sources():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.lstrip().startswith(("#", "--", "from ", "import ")):
                continue
            for schema, name in NAMED.findall(line):
                if (
                    name
                    in (
                        "py",
                        "store",
                        "app",
                        "cli",
                        "config",
                        "html",
                        "js",
                        "css",
                        "json",
                        "svg",
                        "png",
                    )
                    or schema == name
                ):
                    continue
                assert name.startswith("v_"), (
                    f"{path.relative_to(ROOT)}:{number} reads {schema}.{name}"
                )


def test_the_api_writes_no_other_schema():
    for path in _sources():
        text = path.read_text()
        assert not WRITE.search(text), f"{path.relative_to(ROOT)} writes another service's schema"
