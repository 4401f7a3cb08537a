"""The Helm chart rendered without helm: `python deploy/helm/render.py` writes
deploy/helm/rendered-example.yaml (release "finfocus" in namespace "finfocus", the chart's
values.yaml plus `--set` style overrides given as KEY=JSON), `--check` exits 1 on drift.

It mirrors deploy/helm/finfocus/templates/ for the subset the chart uses; where helm is
installed, tests/unit/deploy/test_helm.py renders the chart with `helm template` too and
requires the same objects. The rendered objects are validated against the Kubernetes JSON
schemas in the suite (kubernetes-validate).
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
CHART = HERE / "finfocus"
EXAMPLE = HERE / "rendered-example.yaml"
RELEASE, NAMESPACE = "finfocus", "finfocus"


def load_values(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for dotted, value in (overrides or {}).items():
        node = values
        *path, last = dotted.split(".")
        for key in path:
            node = node.setdefault(key, {})
        node[last] = value
    return values


def fullname(release: str) -> str:
    name = release if "finfocus" in release else f"{release}-finfocus"
    return name[:40].rstrip("-")


def render(overrides: dict[str, Any] | None = None, release: str = RELEASE,
           namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """The chart's objects for `overrides` (dotted keys), in the templates' order."""
    v = load_values(overrides)
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    full = fullname(release)
    labels = {
        "app.kubernetes.io/name": "finfocus",
        "app.kubernetes.io/instance": release,
        "app.kubernetes.io/version": str(chart["appVersion"]),
        "app.kubernetes.io/managed-by": "Helm",
        "helm.sh/chart": f"{chart['name']}-{chart['version']}",
    }

    def meta(name: str, component: str | None = None, extra: dict | None = None) -> dict[str, Any]:
        out = dict(labels)
        if component:
            out["app.kubernetes.io/component"] = component
        out.update(extra or {})
        return {"name": name, "namespace": namespace, "labels": out}

    def selector(component: str) -> dict[str, str]:
        return {"app.kubernetes.io/name": "finfocus", "app.kubernetes.io/instance": release,
                "app.kubernetes.io/component": component}

    sa = v["serviceAccount"]
    sa_name = (sa["name"] or full) if sa["create"] else (sa["name"] or "default")
    docs: list[dict[str, Any]] = []

    # configmap.yaml
    env = {
        "FINFOCUS_HOME": "/var/lib/finfocus",
        "FINFOCUS_KAFKA_BOOTSTRAP": str(v["kafka"]["bootstrap"]),
        "FINFOCUS_PARTITIONS": str(v["kafka"]["partitions"]),
        "FINFOCUS_METRICS_HOST": "0.0.0.0",
        "FINFOCUS_METRICS_PORT": str(v["metrics"]["port"]),
        "FINFOCUS_LOG_LEVEL": str(v["logLevel"]),
        "OTEL_EXPORTER_OTLP_ENDPOINT": str(v["otel"]["endpoint"]),
        "NUMBA_CACHE_DIR": "/tmp/numba",
    }
    if v["vault"]["enabled"]:
        env["VAULT_ADDR"] = str(v["vault"]["address"])
        env["VAULT_TOKEN_FILE"] = "/var/run/finfocus/vault/token"
    if v["kafka"]["securityProtocol"]:
        env["FINFOCUS_KAFKA_SECURITY_PROTOCOL"] = v["kafka"]["securityProtocol"]
    if v["kafka"]["saslMechanism"]:
        env["FINFOCUS_KAFKA_SASL_MECHANISM"] = v["kafka"]["saslMechanism"]
    if v["kafka"]["caSecret"]:
        env["FINFOCUS_KAFKA_SSL_CAFILE"] = "/etc/finfocus/kafka/ca.pem"
    cfg = v["config"]
    if cfg["playbooks"]:
        env["FINFOCUS_REMEDIATION_PLAYBOOKS_DIR"] = "/etc/finfocus/playbooks"
    if cfg["specs"]:
        env["FINFOCUS_PRICING_SPECS_DIR"] = "/etc/finfocus/specs"
    if cfg["monitors"]:
        env["FINFOCUS_ANOMALY_MONITORS_FILE"] = "/etc/finfocus/monitors/monitors.yaml"
    docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(f"{full}-env"), "data": env})
    for key in ("playbooks", "specs"):
        if cfg[key]:
            docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(f"{full}-{key}"),
                         "data": dict(cfg[key])})
    if cfg["monitors"]:
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(f"{full}-monitors"),
                     "data": {"monitors.yaml": cfg["monitors"]}})

    # serviceaccount.yaml
    if sa["create"]:
        account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(sa_name),
                   "automountServiceAccountToken": False}
        if sa["annotations"]:
            account["metadata"]["annotations"] = dict(sa["annotations"])
        docs.append(account)

    # pvc.yaml
    home = v["home"]["persistence"]
    if home["enabled"] and not home["existingClaim"]:
        claim: dict[str, Any] = {"accessModes": [home["accessMode"]],
                                 "resources": {"requests": {"storage": home["size"]}}}
        if home["storageClass"]:
            claim["storageClassName"] = home["storageClass"]
        docs.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta(f"{full}-home"),
                     "spec": claim})

    # deployments.yaml (helm ranges over a map in key order)
    for name in sorted(v["services"]):
        docs.extend(_service_objects(v, name, full, sa_name, meta, selector))

    # services.yaml
    api_port = v["services"]["api"]["port"]
    docs.append({"apiVersion": "v1", "kind": "Service", "metadata": meta(f"{full}-api", "api"),
                 "spec": {"type": "ClusterIP", "selector": selector("api"),
                          "ports": [{"name": "http", "port": api_port, "targetPort": "http"}]}})
    intake = v["services"]["ingest"]["intake"]
    if intake["enabled"]:
        docs.append({"apiVersion": "v1", "kind": "Service", "metadata": meta(f"{full}-intake", "ingest"),
                     "spec": {"type": "ClusterIP", "selector": selector("ingest"),
                              "ports": [{"name": "intake", "port": intake["port"], "targetPort": "intake"}]}})
    docs.append({"apiVersion": "v1", "kind": "Service", "metadata": meta(f"{full}-metrics", "metrics"),
                 "spec": {"clusterIP": "None",
                          "selector": {"app.kubernetes.io/name": "finfocus", "app.kubernetes.io/instance": release},
                          "ports": [{"name": "metrics", "port": v["metrics"]["port"], "targetPort": "metrics"},
                                    {"name": "api-metrics", "port": api_port, "targetPort": "http"}]}})

    # monitoring.yaml
    monitor = v["metrics"]["serviceMonitor"]
    if monitor["enabled"]:
        docs.append({
            "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
            "metadata": meta(full, extra=monitor["labels"]),
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/name": "finfocus", "app.kubernetes.io/instance": release,
                                             "app.kubernetes.io/component": "metrics"}},
                "endpoints": [
                    {"port": port, "path": "/metrics", "interval": monitor["interval"], "honorLabels": True,
                     "relabelings": [
                         {"sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"],
                          "targetLabel": "service"},
                         {"targetLabel": "job", "replacement": "finfocus"}]}
                    for port in ("metrics", "api-metrics")
                ],
            },
        })
    rule = v["metrics"]["prometheusRule"]
    if rule["enabled"]:
        docs.append({"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
                     "metadata": meta(full, extra=rule["labels"]),
                     "spec": yaml.safe_load((CHART / "files" / "rules.yml").read_text())})
    return docs


def _service_objects(v, name, full, sa_name, meta, selector) -> list[dict[str, Any]]:
    svc = v["services"][name]
    probe_port = "http" if name == "api" else "metrics"
    secret = svc.get("databaseSecret") or v["database"]["existingSecret"]
    env: list[dict[str, Any]] = [
        {"name": "OTEL_SERVICE_NAME", "value": f"finfocus-{name}"},
        {"name": "FINFOCUS_DATABASE_URL",
         "valueFrom": {"secretKeyRef": {"name": secret, "key": v["database"]["urlKey"]}}},
    ]
    intake = name == "ingest" and svc["intake"]["enabled"]
    if name == "api":
        env += [
            {"name": "FINFOCUS_READER_DATABASE_URL",
             "valueFrom": {"secretKeyRef": {"name": secret, "key": v["database"]["readerUrlKey"], "optional": True}}},
            {"name": "FINFOCUS_API_HOST", "value": "0.0.0.0"},
            {"name": "FINFOCUS_API_PORT", "value": str(svc["port"])},
        ]
    if intake:
        env += [{"name": "FINFOCUS_INGEST_HTTP_HOST", "value": "0.0.0.0"},
                {"name": "FINFOCUS_INGEST_HTTP_PORT", "value": str(svc["intake"]["port"])}]
    if v["kafka"]["credentialsSecret"]:
        env += [{"name": key, "valueFrom": {"secretKeyRef": {"name": v["kafka"]["credentialsSecret"], "key": key}}}
                for key in ("FINFOCUS_KAFKA_SASL_USERNAME", "FINFOCUS_KAFKA_SASL_PASSWORD")]
    ports = ([{"name": "http", "containerPort": svc["port"]}] if name == "api"
             else [{"name": "metrics", "containerPort": v["metrics"]["port"]}])
    if intake:
        ports.append({"name": "intake", "containerPort": svc["intake"]["port"]})
    mounts: list[dict[str, Any]] = [{"name": "home", "mountPath": "/var/lib/finfocus"},
                                    {"name": "tmp", "mountPath": "/tmp"}]
    home = v["home"]["persistence"]
    volumes: list[dict[str, Any]] = [
        {"name": "home", "persistentVolumeClaim": {"claimName": home["existingClaim"] or f"{full}-home"}}
        if home["enabled"] else {"name": "home", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
    ]
    if v["vault"]["enabled"]:
        mounts.append({"name": "vault-token", "mountPath": "/var/run/finfocus/vault", "readOnly": True})
        volumes.append({"name": "vault-token", "secret": {
            "secretName": v["vault"]["tokenSecret"], "items": [{"key": v["vault"]["tokenKey"], "path": "token"}],
            "defaultMode": 0o400}})
    if v["kafka"]["caSecret"]:
        mounts.append({"name": "kafka-ca", "mountPath": "/etc/finfocus/kafka", "readOnly": True})
        volumes.append({"name": "kafka-ca", "secret": {"secretName": v["kafka"]["caSecret"]}})
    for owner, key in (("remediation", "playbooks"), ("pricing", "specs"), ("anomaly", "monitors")):
        if name == owner and v["config"][key]:
            mounts.append({"name": key, "mountPath": f"/etc/finfocus/{key}", "readOnly": True})
            volumes.append({"name": key, "configMap": {"name": f"{full}-{key}"}})

    def probe(path: str, **timing: int) -> dict[str, Any]:
        return {"httpGet": {"path": path, "port": probe_port}, **timing}

    pod: dict[str, Any] = {
        "serviceAccountName": sa_name,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 60,
        "securityContext": copy.deepcopy(v["podSecurityContext"]),
    }
    if v["imagePullSecrets"]:
        pod["imagePullSecrets"] = v["imagePullSecrets"]
    pod["containers"] = [{
        "name": name,
        "image": f"{v['image']['repository']}:{v['image']['tag']}",
        "imagePullPolicy": v["image"]["pullPolicy"],
        "args": ["serve", name],
        "envFrom": [{"configMapRef": {"name": f"{full}-env"}}],
        "env": env,
        "ports": ports,
        "livenessProbe": probe("/healthz", initialDelaySeconds=10, periodSeconds=15, timeoutSeconds=3,
                               failureThreshold=4),
        "readinessProbe": probe("/readyz", periodSeconds=10, timeoutSeconds=3, failureThreshold=3),
        "startupProbe": probe("/healthz", periodSeconds=5, failureThreshold=36),
        "resources": copy.deepcopy(svc["resources"]),
        "securityContext": copy.deepcopy(v["securityContext"]),
        "volumeMounts": mounts,
    }]
    pod["volumes"] = volumes
    for key in ("nodeSelector", "tolerations", "affinity"):
        if v[key]:
            pod[key] = v[key]
    spec: dict[str, Any] = {}
    if not svc["autoscaling"]["enabled"]:
        spec["replicas"] = svc["replicas"]
    spec.update({
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": selector(name)},
        "template": {"metadata": {"labels": meta("", name)["labels"]}, "spec": pod},
    })
    out = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(f"{full}-{name}", name), "spec": spec},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta(f"{full}-{name}", name),
         "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(name)}}},
    ]
    scaling = svc["autoscaling"]
    if scaling["enabled"]:
        out.append({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": meta(f"{full}-{name}", name),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"{full}-{name}"},
                "minReplicas": scaling["minReplicas"], "maxReplicas": scaling["maxReplicas"],
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                    "type": "Utilization", "averageUtilization": scaling["targetCPUUtilizationPercentage"]}}}],
            },
        })
    return out


#: the committed example: the defaults, with the Prometheus Operator objects switched on
EXAMPLE_OVERRIDES = {"metrics.serviceMonitor.enabled": True, "metrics.prometheusRule.enabled": True}


def example_text() -> str:
    header = ("# deploy/helm/finfocus rendered for release \"finfocus\" in namespace \"finfocus\" with its\n"
              "# values.yaml and --set metrics.serviceMonitor.enabled=true,metrics.prometheusRule.enabled=true.\n"
              "# Generated by deploy/helm/render.py: do not edit. kubectl apply -f it after creating the\n"
              "# Secrets finfocus-database and finfocus-vault-token (docs/operations.md).\n")
    return header + yaml.safe_dump_all(render(EXAMPLE_OVERRIDES), sort_keys=False, width=120)


def main(argv: list[str]) -> int:
    text = example_text()
    if "--check" in argv:
        if not EXAMPLE.is_file() or EXAMPLE.read_text() != text:
            print("deploy/helm/rendered-example.yaml differs from render.py: run it", file=sys.stderr)
            return 1
        return 0
    if "--json" in argv:
        print(json.dumps(render(EXAMPLE_OVERRIDES), indent=2))
        return 0
    EXAMPLE.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
