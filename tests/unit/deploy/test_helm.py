"""deploy/helm/finfocus rendered by Helm's own template engine (the Helm SDK as a library,
helm-python-sdk): it lints, every object validates against the Kubernetes JSON schemas
(kubernetes-validate, offline, strict) with the defaults and with every option on, the committed
example is what Helm renders now, and the objects have what an operator needs: probes,
Services, config, identity, disruption budgets, autoscaling, monitoring."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from finfocus.settings import SERVICES

ROOT = Path(__file__).resolve().parents[3]
HELM = ROOT / "deploy" / "helm"
CHART = HELM / "finfocus"
ALL_OPTIONS = CHART / "ci" / "all-options-values.yaml"
KUBERNETES = "1.30.0"
CRDS = ("ServiceMonitor", "PrometheusRule")


@pytest.fixture(scope="module")
def renderer():
    try:  # a missing package, or its shared library not loading on this platform
        import helm_python  # noqa: F401
    except (ImportError, OSError) as error:
        pytest.skip(f"helm_python cannot be imported ({error}): pip install '.[test]'")
    spec = importlib.util.spec_from_file_location("finfocus_helm_render", HELM / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def all_options() -> dict:
    return yaml.safe_load(ALL_OPTIONS.read_text())


def example() -> list[dict]:
    return [d for d in yaml.safe_load_all((HELM / "rendered-example.yaml").read_text()) if d]


def by_key(docs: list[dict]) -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_the_committed_example_is_what_helm_renders(renderer):
    assert (HELM / "rendered-example.yaml").read_text() == renderer.example_text(), (
        "run python deploy/helm/render.py"
    )


@pytest.mark.parametrize("values", [{}, "all-options"])
def test_helm_lint_finds_nothing_to_warn_about(renderer, values):
    import helm_python

    report = helm_python.lint(
        CHART,
        all_options() if values else None,
        strict=True,
        namespace="finfocus",
        kube_version=f"v{KUBERNETES}",
    )
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("values", [{}, "all-options"])
def test_every_object_validates_against_the_kubernetes_schemas(renderer, values):
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate missing (pip install '.[test]')"
    )
    docs = renderer.render(all_options() if values else {})
    for doc in docs:
        if doc["kind"] not in CRDS:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    if values:
        kinds = {d["kind"] for d in docs}
        assert {"PersistentVolumeClaim", "ConfigMap", *CRDS} <= kinds
        mounts = {
            m["name"]
            for d in docs
            if d["kind"] == "Deployment"
            for m in d["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        }
        assert {"playbooks", "specs", "monitors", "kafka-ca", "vault-token"} <= mounts
        forecast = by_key(docs)[("Deployment", "finfocus-forecast")]["spec"]["template"]["spec"]
        assert forecast["tolerations"] and forecast["affinity"] and forecast["nodeSelector"]
        database = next(
            e for e in forecast["containers"][0]["env"] if e["name"] == "FINFOCUS_DATABASE_URL"
        )
        assert database["valueFrom"]["secretKeyRef"]["name"] == "finfocus-forecast-database"


def test_the_validator_refuses_a_broken_object():
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate missing"
    )
    deployment = next(d for d in example() if d["kind"] == "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = {
        "no": 1
    }
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
    assert env["FINFOCUS_METRICS_HOST"] == "0.0.0.0" and env["VAULT_TOKEN_FILE"].startswith(
        "/var/run/"
    )
    assert "VAULT_TOKEN" not in env


def test_the_example_lists_what_a_deployment_references_before_it():
    kinds = [d["kind"] for d in example()]
    first = kinds.index("Deployment")
    assert {"ServiceAccount", "ConfigMap", "Service"} <= set(kinds[:first])


def test_stateless_services_scale_and_the_singletons_do_not():
    docs = by_key(example())
    scaled = {name for (kind, name) in docs if kind == "HorizontalPodAutoscaler"}
    assert scaled == {"finfocus-ingest", "finfocus-pricing", "finfocus-anomaly", "finfocus-api"}
    for name in ("forecast", "remediation"):
        assert docs[("Deployment", f"finfocus-{name}")]["spec"]["replicas"] == 1
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for name in (
        "ingest",
        "pricing",
        "anomaly",
    ):  # a consumer beyond the partition count idles, not ready
        assert (
            values["services"][name]["autoscaling"]["maxReplicas"] <= values["kafka"]["partitions"]
        )


def test_the_api_and_the_intake_have_services_and_metrics_are_monitored():
    docs = by_key(example())
    assert docs[("Service", "finfocus-api")]["spec"]["ports"][0]["port"] == 8770
    assert docs[("Service", "finfocus-intake")]["spec"]["ports"][0]["targetPort"] == "intake"
    monitor = docs[("ServiceMonitor", "finfocus")]["spec"]
    assert all(e["honorLabels"] for e in monitor["endpoints"])
    rules = docs[("PrometheusRule", "finfocus")]["spec"]
    assert rules == yaml.safe_load((ROOT / "deploy" / "prometheus" / "rules.yml").read_text())


def test_the_charts_rules_file_is_the_repositorys():
    assert (CHART / "files" / "rules.yml").read_text() == (
        ROOT / "deploy" / "prometheus" / "rules.yml"
    ).read_text(), "copy deploy/prometheus/rules.yml into the chart"


def test_the_service_account_carries_workload_identity_annotations(renderer):
    docs = renderer.render(
        {
            "serviceAccount": {
                "annotations": {"iam.gke.io/gcp-service-account": "ff@p.iam.gserviceaccount.com"}
            }
        }
    )
    account = next(d for d in docs if d["kind"] == "ServiceAccount")
    assert account["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": "ff@p.iam.gserviceaccount.com"
    }
    pods = [d["spec"]["template"]["spec"] for d in docs if d["kind"] == "Deployment"]
    assert all(p["serviceAccountName"] == account["metadata"]["name"] for p in pods)


def test_a_release_of_another_name_prefixes_every_object_and_reference(renderer):
    docs = by_key(renderer.render({"home": {"persistence": {"enabled": True}}}, release="prod"))
    assert all(name.startswith("prod-finfocus") for _, name in docs)
    pod = docs[("Deployment", "prod-finfocus-pricing")]["spec"]["template"]["spec"]
    assert pod["containers"][0]["envFrom"] == [{"configMapRef": {"name": "prod-finfocus-env"}}]
    assert {"name": "home", "persistentVolumeClaim": {"claimName": "prod-finfocus-home"}} in pod[
        "volumes"
    ]
    assert ("PersistentVolumeClaim", "prod-finfocus-home") in docs


def test_every_value_the_templates_and_the_docs_name_exists_in_values_yaml():
    """Helm renders a misspelt value as empty without a word: the templates and the install
    command in docs/operations.md name only values that values.yaml declares."""
    templates = "\n".join(p.read_text() for p in (CHART / "templates").glob("*"))
    docs = (ROOT / "docs" / "operations.md").read_text()
    paths = set(re.findall(r"\.Values\.([A-Za-z0-9_.]+)", templates)) | set(
        re.findall(r"--set ([A-Za-z0-9_.]+)=", docs)
    )
    assert paths
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for path in paths:
        node = values
        for key in path.split("."):
            assert isinstance(node, dict) and key in node, f"{path} is not in values.yaml"
            node = node[key]
