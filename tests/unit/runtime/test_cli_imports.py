"""Starting `finfocus` must stay cheap: `cost projected` in a CI job is one process start.

Building the whole command tree may not load the heavy libraries that only some commands use
(they are imported inside those commands), nor build every event contract.
"""

from __future__ import annotations

import subprocess
import sys

import schemas

HEAVY = (
    "sqlglot",
    "polars",
    "pyarrow",
    "statsforecast",
    "numpy",
    "asyncpg",
    "aiokafka",
    "faststream",
    "fastapi",
    "schemas.anomaly",
    "schemas.pricing",
)


def test_building_the_cli_loads_no_heavy_library():
    probe = (
        "import sys, finfocus.cli; app = finfocus.cli.app; "
        "assert 'services.pricing.cli.cost' in sys.modules and len(app.registered_groups) > 5; "
        f"print(','.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"loaded at start: {result.stdout.strip()}"


def test_the_contracts_package_exports_every_name_lazily():
    assert sorted(schemas.__all__) == sorted(schemas._HOMES)
    for name in schemas.__all__:
        assert getattr(schemas, name).__module__.startswith("schemas.")
