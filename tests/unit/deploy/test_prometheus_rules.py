"""deploy/prometheus: the alert rules pass their promtool unit tests, the scrape configuration
is valid, and every alert explains itself and links to its runbook section."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
PROM = ROOT / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing (apt-get install prometheus)"
)

REQUIRED = {
    "FinFocusServiceDown",
    "FinFocusConsumerLagGrowing",
    "FinFocusDeadLetters",
    "FinFocusConsumerStalled",
    "FinFocusPluginCircuitOpen",
    "FinFocusIngestJobFailed",
    "FinFocusBudgetBurnFast",
    "FinFocusBudgetBurnSlow",
    "FinFocusOutboxBacklog",
}


def rules() -> list[dict]:
    groups = yaml.safe_load((PROM / "rules.yml").read_text())["groups"]
    return [r for g in groups for r in g["rules"]]


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            text = line.lstrip("#").strip().lower()
            out.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text)))
    return out


@needs_promtool
def test_every_alert_rule_passes_its_promtool_unit_tests():
    tests = sorted(str(p.relative_to(PROM)) for p in (PROM / "tests").glob("*.yml"))
    assert tests
    run = subprocess.run(
        [PROMTOOL, "test", "rules", *tests], cwd=PROM, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr


@needs_promtool
def test_the_scrape_configuration_and_its_rules_are_valid():
    run = subprocess.run(
        [PROMTOOL, "check", "config", "prometheus.yml"], cwd=PROM, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "10 rules found" in run.stdout or "rules found" in run.stdout


def test_every_required_alert_is_unit_tested():
    names = {r["alert"] for r in rules()}
    assert names >= REQUIRED
    tested = set()
    for path in (PROM / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    tested.add(check["alertname"])
    assert names <= tested, names - tested


def test_every_alert_has_a_summary_description_and_a_runbook_section():
    sections = anchors((ROOT / "docs" / "operations.md").read_text())
    for rule in rules():
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        url = notes["runbook_url"]
        assert url.split("#")[0].endswith("/docs/operations.md"), url
        assert url.split("#")[1] == rule["alert"].lower()
        assert url.split("#")[1] in sections, f"docs/operations.md has no section {rule['alert']}"


def test_the_scrape_configuration_labels_every_service():
    from finfocus.settings import SERVICES

    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "finfocus")
    assert job["honor_labels"] is True
    labelled = {c["labels"]["service"] for c in job["static_configs"]}
    assert labelled == set(SERVICES)


def test_rules_read_only_documented_series():
    documented = set(
        re.findall(r"`(finfocus_[a-z_]+)`", (ROOT / "docs" / "metrics.md").read_text())
    )
    for rule in rules():
        for metric in re.findall(r"\b(finfocus_[a-z_]+)", rule["expr"]):
            assert metric in documented, f"{rule['alert']}: {metric} is not in docs/metrics.md"
