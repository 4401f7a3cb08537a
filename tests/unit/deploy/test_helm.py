"""deploy/helm/finfocus: the committed rendered example is what the chart gives, it validates
against the Kubernetes JSON schemas (kubernetes-validate, offline), and it has what an operator
needs: probes, Services, config, identity, disruption budgets, autoscaling, monitoring."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from finfocus.settings import SERVICES

ROOT = Path(__file__).resolve().parents[3]
HELM = ROOT / "deploy" / "helm"
KUBERNETES = "1.30.0"
CRDS = ("ServiceMonitor", "PrometheusRule")


def renderer():
    spec = importlib.util.spec_from_file_location("finfocus_helm_render", HELM / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def example() -> list[dict]:
    return [d for d in yaml.safe_load_all((HELM / "rendered-example.yaml").read_text()) if d]


def by_key(docs: list[dict]) -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_the_committed_example_is_what_the_renderer_makes():
    assert (HELM / "rendered-example.yaml").read_text() == renderer().example_text(), \
        "run python deploy/helm/render.py"


@pytest.mark.skipif(shutil.which("helm") is None, reason="helm missing: the chart's templates are rendered by render.py only")
def test_helm_template_renders_the_same_objects():
    run = subprocess.run(
        ["helm", "template", "finfocus", str(HELM / "finfocus"), "--namespace", "finfocus",
         "--set", "metrics.serviceMonitor.enabled=true,metrics.prometheusRule.enabled=true"],
        capture_output=True, text=True, check=True,
    )
    assert by_key([d for d in yaml.safe_load_all(run.stdout) if d]) == by_key(example())


def test_every_object_validates_against_the_kubernetes_schemas():
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate missing (pip install '.[test]')")
    docs = example()
    for doc in docs:
        if doc["kind"] in CRDS:
            continue
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    # and with every option switched on
    full = renderer().render({
        "home.persistence.enabled": True, "kafka.caSecret": "kafka-ca", "kafka.credentialsSecret": "kafka-users",
        "kafka.securityProtocol": "SASL_SSL", "kafka.saslMechanism": "SCRAM-SHA-512",
        "config.playbooks": {"idle.yaml": "playbook: idle\n"}, "config.specs": {"aws.yaml": "prices: []\n"},
        "config.monitors": "monitors: []\n", "imagePullSecrets": [{"name": "registry"}],
        "serviceAccount.annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/finfocus"},
    })
    for doc in full:
        if doc["kind"] not in CRDS:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    kinds = {d["kind"] for d in full}
    assert {"PersistentVolumeClaim", "ConfigMap"} <= kinds
    mounts = {m["name"] for d in full if d["kind"] == "Deployment"
              for m in d["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert {"playbooks", "specs", "monitors", "kafka-ca", "vault-token"} <= mounts


def test_the_validator_refuses_a_broken_object():
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate missing")
    deployment = next(d for d in example() if d["kind"] == "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = {"no": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def test_one_deployment_per_service_probed_on_healthz_and_readyz():
    docs = by_key(example())
    for name in SERVICES:
        deployment = docs[("Deployment", f"finfocus-{name}")]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == ["serve", name]
        port = "http" if name == "api" else "metrics"
        assert port in {p["name"] for p in container["ports"]}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}
        assert container["resources"]["limits"]["memory"]
        assert ("PodDisruptionBudget", f"finfocus-{name}") in docs
    env = docs[("ConfigMap", "finfocus-env")]["data"]
    assert env["FINFOCUS_METRICS_HOST"] == "0.0.0.0" and env["VAULT_TOKEN_FILE"].startswith("/var/run/")
    assert "VAULT_TOKEN" not in env


def test_stateless_services_scale_and_the_singletons_do_not():
    docs = by_key(example())
    scaled = {name for (kind, name) in docs if kind == "HorizontalPodAutoscaler"}
    assert scaled == {"finfocus-ingest", "finfocus-pricing", "finfocus-anomaly", "finfocus-api"}
    for name in ("forecast", "remediation"):
        assert docs[("Deployment", f"finfocus-{name}")]["spec"]["replicas"] == 1
    values = yaml.safe_load((HELM / "finfocus" / "values.yaml").read_text())
    for name in ("ingest", "pricing", "anomaly"):  # a consumer beyond the partition count idles, not ready
        assert values["services"][name]["autoscaling"]["maxReplicas"] <= values["kafka"]["partitions"]


def test_the_api_and_the_intake_have_services_and_metrics_are_monitored():
    docs = by_key(example())
    assert docs[("Service", "finfocus-api")]["spec"]["ports"][0]["port"] == 8770
    assert docs[("Service", "finfocus-intake")]["spec"]["ports"][0]["targetPort"] == "intake"
    monitor = docs[("ServiceMonitor", "finfocus")]["spec"]
    assert all(e["honorLabels"] for e in monitor["endpoints"])
    rules = docs[("PrometheusRule", "finfocus")]["spec"]
    assert rules == yaml.safe_load((ROOT / "deploy" / "prometheus" / "rules.yml").read_text())


def test_the_charts_rules_file_is_the_repositorys():
    assert (HELM / "finfocus" / "files" / "rules.yml").read_text() == \
        (ROOT / "deploy" / "prometheus" / "rules.yml").read_text(), "copy deploy/prometheus/rules.yml into the chart"


def test_the_service_account_carries_workload_identity_annotations():
    docs = renderer().render({"serviceAccount.annotations": {"iam.gke.io/gcp-service-account": "ff@p.iam.gserviceaccount.com"}})
    account = next(d for d in docs if d["kind"] == "ServiceAccount")
    assert account["metadata"]["annotations"] == {"iam.gke.io/gcp-service-account": "ff@p.iam.gserviceaccount.com"}
    pods = [d["spec"]["template"]["spec"] for d in docs if d["kind"] == "Deployment"]
    assert all(p["serviceAccountName"] == account["metadata"]["name"] for p in pods)


def test_every_template_value_the_renderer_reads_exists_in_the_chart():
    """Without helm the templates are not executed here: at least every object the renderer
    makes is declared by a template, and the templates name no value missing from values.yaml."""
    import re

    templates = "\n".join(p.read_text() for p in (HELM / "finfocus" / "templates").glob("*"))
    for doc in renderer().render(renderer().EXAMPLE_OVERRIDES):
        assert f"kind: {doc['kind']}" in templates, doc["kind"]
    values = yaml.safe_load((HELM / "finfocus" / "values.yaml").read_text())
    for path in set(re.findall(r"\.Values\.([A-Za-z0-9_.]+)", templates)):
        node = values
        for key in path.split("."):
            assert isinstance(node, dict) and key in node, f".Values.{path} is not in values.yaml"
            node = node[key]
