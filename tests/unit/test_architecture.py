"""The house rules that keep the architecture honest, checked on every run.

- Domain modules are pure: importing one pulls in no faststream, asyncpg or opentelemetry.
- A service imports `schemas` and `finfocus` only, never another service.
- A service's SQL touches only its own schema.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["ingest", "pricing", "anomaly", "forecast", "remediation", "api"]
FORBIDDEN_IN_DOMAIN = ("faststream", "asyncpg", "opentelemetry", "aiokafka")


def domain_modules() -> list[str]:
    found = []
    for path in sorted((ROOT / "services").glob("*/domain*.py")) + sorted(
        (ROOT / "services").glob("*/domain/**/*.py")
    ):
        rel = path.relative_to(ROOT).with_suffix("")
        found.append(".".join(rel.parts).removesuffix(".__init__"))
    return found


@pytest.mark.parametrize("module", domain_modules() or ["<none yet>"])
def test_domain_modules_import_no_io_frameworks(module):
    if module == "<none yet>":
        pytest.skip("no domain modules yet")
    probe = (
        f"import sys, importlib; importlib.import_module({module!r}); "
        f"bad = sorted({{m.split('.')[0] for m in sys.modules}} & set({FORBIDDEN_IN_DOMAIN!r})); print(','.join(bad))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"{module} imports {result.stdout.strip()}"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_never_imports_another_service(service):
    others = [s for s in SERVICES if s != service]
    for path in (ROOT / "services" / service).rglob("*.py"):
        for name in _imports(path):
            for other in others:
                assert not name.startswith(f"services.{other}"), f"{path} imports {name}"


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_sql_names_only_its_own_schema(service):
    others = [s for s in SERVICES if s != service]
    pattern = re.compile(r"\b(" + "|".join(others) + r")\.[a-z_]+", re.IGNORECASE)
    sql_sources = list((ROOT / "services" / service).rglob("*.sql")) + [
        p for p in (ROOT / "services" / service).rglob("store*.py")
    ]
    for path in sql_sources:
        for line in path.read_text().splitlines():
            match = pattern.search(line)
            if match and not line.lstrip().startswith(("#", "--")):
                pytest.fail(f"{path.relative_to(ROOT)} touches {match.group(0)}: {line.strip()}")


def test_the_runtime_and_contracts_never_import_a_service_at_import_time():
    for package in ("schemas", "finfocus"):
        for path in (ROOT / package).rglob("*.py"):
            if "cli" in path.parts:
                continue  # commands may act as a service (e.g. an import job)
            tree = ast.parse(path.read_text())
            for node in tree.body:  # module level only: lazy imports inside functions are fine
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("services"):
                    pytest.fail(f"{path} imports {node.module} at import time")
