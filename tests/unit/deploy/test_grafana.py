"""deploy/grafana: the committed dashboards are what generate.py makes, every PromQL
expression parses, every panel names a provisioned data source, and a trace id in a log line
links to its trace."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
GRAFANA = ROOT / "deploy" / "grafana"


def generator():
    spec = importlib.util.spec_from_file_location(
        "finfocus_grafana_generate", GRAFANA / "generate.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def panels():
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            yield path.name, panel


def promql(expr: str) -> str:
    """The expression as Grafana sends it: its variables given values."""
    return expr.replace("$__rate_interval", "5m").replace("$service", ".*")


def test_committed_dashboards_are_what_the_generator_makes():
    rendered = generator().render()
    committed = {p.name: p.read_text() for p in (GRAFANA / "dashboards").glob("*.json")}
    assert set(committed) == set(rendered)
    for name, text in rendered.items():
        assert committed[name] == text, f"{name} drifted: run python deploy/grafana/generate.py"


def test_the_dashboards_cover_pipeline_costs_anomalies_budgets_remediation_plugins():
    titles = {json.loads(p.read_text())["title"] for p in (GRAFANA / "dashboards").glob("*.json")}
    for word in ("Pipeline", "Cost", "Anomalies", "budget", "Remediation", "plugins"):
        assert any(word in t for t in titles), word
    uids = [json.loads(p.read_text())["uid"] for p in (GRAFANA / "dashboards").glob("*.json")]
    assert len(uids) == len(set(uids))


def test_every_promql_expression_parses():
    promql_parser = pytest.importorskip(
        "promql_parser", reason="promql-parser missing (pip install '.[test]')"
    )
    count = 0
    for name, panel in panels():
        for target in panel["targets"]:
            if target["datasource"]["type"] == "prometheus":
                try:
                    promql_parser.parse(promql(target["expr"]))
                except ValueError as exc:
                    raise AssertionError(
                        f"{name} / {panel['title']}: {target['expr']}: {exc}"
                    ) from None
                count += 1
    assert count >= 25


def test_the_promql_check_refuses_a_broken_expression():
    promql_parser = pytest.importorskip(
        "promql_parser", reason="promql-parser missing (pip install '.[test]')"
    )
    with pytest.raises(ValueError):
        promql_parser.parse("sum by (service (rate(finfocus_records_total[5m]))")


def test_every_metric_a_panel_reads_is_a_documented_series():
    documented = set(
        re.findall(r"`(finfocus_[a-z_]+)`", (ROOT / "docs" / "metrics.md").read_text())
    )
    for name, panel in panels():
        for target in panel["targets"]:
            for metric in re.findall(r"\b(finfocus_[a-z_]+)", target.get("expr", "")):
                base = re.sub(r"_(bucket|count|sum)$", "", metric)
                assert metric in documented or base in documented, (
                    f"{name} / {panel['title']}: {metric}"
                )


def test_every_panel_uses_a_provisioned_data_source_and_sql_reads_only_views():
    sources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "finfocus.yaml").read_text()
    )
    uids = {s["uid"]: s for s in sources["datasources"]}
    for name, panel in panels():
        assert panel["datasource"]["uid"] in uids, (name, panel["title"])
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in uids
            if "rawSql" in target:
                tables = re.findall(r"\b(?:FROM|JOIN)\s+([a-z_.]+)", target["rawSql"])
                assert tables and all(re.fullmatch(r"[a-z]+\.v_[a-z_]+", t) for t in tables), (
                    target["rawSql"]
                )
    postgres = uids["finfocus-postgres"]
    assert postgres["user"] == "finfocus_reader"
    assert postgres["secureJsonData"]["password"].startswith(
        "$"
    )  # from the environment, never a literal


def test_a_trace_id_in_a_log_line_links_to_its_trace():
    from finfocus.telemetry import JsonLogFormatter

    sources = {
        s["uid"]: s
        for s in yaml.safe_load(
            (GRAFANA / "provisioning" / "datasources" / "finfocus.yaml").read_text()
        )["datasources"]
    }
    field = sources["finfocus-loki"]["jsonData"]["derivedFields"][0]
    assert sources[field["datasourceUid"]]["type"] in ("jaeger", "tempo")
    assert field["url"] == "$${__value.raw}"  # `$$`: provisioning would expand `$` as a variable

    import logging

    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "stored", None, None)
    with tracer.start_as_current_span("pricing.store") as span:
        line = JsonLogFormatter("pricing").format(record)
        trace_id = format(span.get_span_context().trace_id, "032x")
    match = re.search(field["matcherRegex"], line)
    assert match and match.group(1) == trace_id
