"""The house rules that keep the architecture honest, checked on every run.

- Domain modules are pure: importing one pulls in no faststream, asyncpg or opentelemetry.
- A service imports `schemas` and `finfocus` only, never another service.
- A service's SQL touches only its own schema.
- The runtime (`finfocus/`) and the contracts (`schemas/`) never import a service, anywhere in
  a file (a command group is loaded by name, `importlib.import_module(f"services.{name}.cli")`).
- No SQL outside `services/<name>/` writes schema `<name>` (INSERT, UPDATE, DELETE, COPY,
  TRUNCATE, ALTER, CREATE, DROP, REFRESH, or `SET ROLE finfocus_<name>` / `search_path` to
  it): a client changes a service's state by a command event or the api, never its tables.
  Scanned: every .py and .sql under finfocus/, schemas/ and services/. Not scanned: tests/
  and bench/, harnesses that seed a throwaway database directly (millions of cost lines
  through the bus would take hours) and are never run against a deployment.
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


def _service_imports(path: Path) -> list[str]:
    """Every import of a `services` module in a file, at any depth (functions, branches), and
    `import_module("services....")` / `__import__` with a literal name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "services"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "services":
                found.append(node.module)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            arg = node.args[0]
            if (
                name in ("import_module", "__import__")
                and isinstance(arg, ast.Constant)
                and isinstance(arg.value, str)
                and arg.value.split(".")[0] == "services"
            ):
                found.append(arg.value)
    return found


@pytest.mark.parametrize("package", ["finfocus", "schemas"])
def test_the_runtime_and_contracts_never_import_a_service(package):
    files = list((ROOT / package).rglob("*.py"))
    assert len(files) > 5, f"nothing to scan under {package}/"
    offenders = [
        f"{p.relative_to(ROOT)} imports {name}" for p in files for name in _service_imports(p)
    ]
    assert not offenders, "\n".join(offenders)


def test_the_import_scan_sees_imports_anywhere(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import importlib\n"
        "def later():\n"
        "    if True:\n"
        "        from services.pricing.cli import cost\n"
        "    import services.anomaly.cli as a\n"
        "    importlib.import_module('services.forecast.cli')\n"
        "    importlib.import_module(f'services.{later}.cli')  # by name: allowed\n"
    )
    assert sorted(_service_imports(probe)) == [
        "services.anomaly.cli",
        "services.forecast.cli",
        "services.pricing.cli",
    ]


_SCHEMA = r'"?(?P<schema>' + "|".join(SERVICES) + r')"?\s*\.'
_ROLE = r"(?P<schema>" + "|".join(SERVICES) + r")\b"
#: statements that change a schema's data or definition, each naming the schema written
WRITES = [
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        r"\bINSERT\s+INTO\s+" + _SCHEMA,
        r"\bUPDATE\s+(ONLY\s+)?" + _SCHEMA,
        r"\bDELETE\s+FROM\s+(ONLY\s+)?" + _SCHEMA,
        r"\bMERGE\s+INTO\s+" + _SCHEMA,
        r"\bCOPY\s+" + _SCHEMA,
        r'\bTRUNCATE\s+(TABLE\s+)?(ONLY\s+)?([\w."]+\s*,\s*)*' + _SCHEMA,
        r"\bALTER\s+(\w+\s+){1,3}(IF\s+EXISTS\s+)?(ONLY\s+)?" + _SCHEMA,
        r'\bDROP\s+(\w+\s+){1,2}(IF\s+EXISTS\s+)?([\w."]+\s*,\s*)*' + _SCHEMA,
        r"\bCREATE\b[^;]{0,200}?\b(ON|TABLE|VIEW|SCHEMA|FUNCTION|SEQUENCE|TYPE|PROCEDURE|INDEX|TRIGGER)\s+"
        r"(IF\s+NOT\s+EXISTS\s+)?" + _SCHEMA,
        r"\bREFRESH\s+MATERIALIZED\s+VIEW\s+(CONCURRENTLY\s+)?" + _SCHEMA,
        # acting as the service: its role, or its schema first on the search path
        r'\bSET\s+(LOCAL\s+|SESSION\s+)?ROLE\s+(TO\s+)?"?finfocus_' + _ROLE,
        r"\bsearch_path\s*(TO|=)\s*[^;\n]*?\b" + _ROLE,
        # asyncpg's COPY helpers name the schema as an argument
        r"""\bschema_name\s*=\s*["']""" + _ROLE,
    )
]


def sql_writes(text: str) -> list[tuple[str, int, str]]:
    """(schema written, line, statement start) for every write the patterns recognise."""
    found = []
    for pattern in WRITES:
        for m in pattern.finditer(text):
            found.append(
                (m.group("schema").lower(), text.count("\n", 0, m.start()) + 1, m.group(0)[:60])
            )
    return found


def _owner(path: Path) -> str | None:
    rel = path.relative_to(ROOT).parts
    return rel[1] if rel[0] == "services" and len(rel) > 2 else None


def test_no_sql_outside_a_service_writes_its_schema():
    files = [
        p
        for package in ("finfocus", "schemas", "services")
        for p in (ROOT / package).rglob("*")
        if p.suffix in (".py", ".sql") and p.is_file()
    ]
    offenders, own = [], 0
    for path in files:
        for schema, line, text in sql_writes(path.read_text(errors="replace")):
            if _owner(path) == schema:
                own += 1
            else:
                offenders.append(
                    f"{path.relative_to(ROOT)}:{line} writes schema {schema}: {text!r}"
                )
    assert not offenders, "\n".join(offenders)
    assert own > 50, (
        f"the scan recognised only {own} writes in the services' own code: patterns broken?"
    )


@pytest.mark.parametrize("service", [s for s in SERVICES if s != "api"])
def test_the_write_scan_recognises_each_service_writing_its_own_tables(service):
    texts = [
        p.read_text()
        for p in (ROOT / "services" / service).rglob("*")
        if p.suffix in (".py", ".sql")
    ]
    assert any(schema == service for t in texts for schema, _, _ in sql_writes(t)), service


@pytest.mark.parametrize(
    ("sql", "schema"),
    [
        ("INSERT INTO pricing.cost_lines (a) VALUES ($1)", "pricing"),
        ('update "remediation".actions set status = $1', "remediation"),
        ("DELETE FROM ONLY ingest.jobs WHERE true", "ingest"),
        ("COPY forecast.points FROM STDIN", "forecast"),
        ("TRUNCATE TABLE api.sessions, anomaly.anomalies", "anomaly"),
        ("ALTER TABLE IF EXISTS pricing.cost_lines DISABLE TRIGGER USER", "pricing"),
        ("CREATE UNIQUE INDEX IF NOT EXISTS x ON anomaly.anomalies (id)", "anomaly"),
        ("CREATE OR REPLACE VIEW forecast.v_x AS SELECT 1", "forecast"),
        ("DROP TABLE IF EXISTS remediation.audit", "remediation"),
        ("REFRESH MATERIALIZED VIEW CONCURRENTLY pricing.daily", "pricing"),
        ("SET LOCAL ROLE finfocus_remediation", "remediation"),
        ("SET search_path TO ingest, public", "ingest"),
        ("await conn.copy_records_to_table('t', records=r, schema_name='pricing')", "pricing"),
    ],
)
def test_the_write_scan_recognises_writes(sql, schema):
    assert schema in [s for s, _, _ in sql_writes(sql)]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM pricing.v_cost_lines WHERE provider = $1",
        "SELECT record FROM anomaly.v_anomalies ORDER BY window_start DESC",
        "CREATE VIEW v AS SELECT * FROM pricing.v_cost_lines",
        "SET ROLE finfocus_reader",
    ],
)
def test_the_write_scan_lets_reads_pass(sql):
    assert sql_writes(sql) == []
