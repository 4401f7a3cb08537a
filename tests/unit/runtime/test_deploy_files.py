"""The production descriptions (compose file, Kubernetes manifests) are valid and complete.

No Docker engine runs here, so the compose file is validated against the Compose
specification with the `compose-spec` package instead of `docker compose config`.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from finfocus.settings import SERVICES

ROOT = Path(__file__).resolve().parents[3]


def test_compose_file_follows_the_compose_specification():
    import json

    from compose_spec import PyCompose

    # YAML anchors and merge keys are resolved first, as `docker compose config` does.
    resolved = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    compose = PyCompose.from_json(json.dumps(resolved))
    compose.validate()
    names = set(compose.service_names())
    assert {"kafka", "postgres", "otel-collector", "jaeger", "vault", *SERVICES} <= names


def test_every_service_runs_finfocus_serve_with_the_contract_environment():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in SERVICES:
        service = compose["services"][name]
        assert service["command"] == ["serve", name]
        env = service["environment"]
        assert env["FINFOCUS_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert env["FINFOCUS_DATABASE_URL"].startswith("postgresql://")
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://otel-collector")
        assert env["VAULT_ADDR"].startswith("http://vault")
    kafka_env = compose["services"]["kafka"]["environment"]
    assert "controller" in kafka_env["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    assert compose["services"]["vault"]["environment"]["VAULT_DEV_ROOT_TOKEN_ID"]


def test_kubernetes_manifests_deploy_each_service_once():
    documents = list(yaml.safe_load_all((ROOT / "deploy/kubernetes/finfocus.yaml").read_text()))
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}
    assert set(deployments) == {f"finfocus-{s}" for s in SERVICES}
    for name in SERVICES:
        container = deployments[f"finfocus-{name}"]["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == ["serve", name]
    config = next(d for d in documents if d["kind"] == "ConfigMap")["data"]
    assert "FINFOCUS_KAFKA_BOOTSTRAP" in config and "OTEL_EXPORTER_OTLP_ENDPOINT" in config


def test_the_compose_validator_refuses_a_broken_file():
    import json

    import pytest
    from compose_spec import PyCompose

    with pytest.raises(ValueError, match="restart|sometimes"):
        PyCompose.from_json(json.dumps({"services": {"a": {"image": "x", "restart": "sometimes"}}})).validate()


def _merge(base, override, key=None):
    """Compose's merge of `-f a -f b`: mappings merged key by key, volumes and ports
    appended, other values (commands, healthcheck tests) replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for name, value in override.items():
            merged[name] = _merge(base[name], value, name) if name in base else value
        return merged
    if isinstance(base, list) and isinstance(override, list) and key in ("volumes", "ports"):
        return base + override
    return override


def test_secure_overlay_gives_each_service_its_own_roles_over_tls():
    import json

    from compose_spec import PyCompose

    base = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    secure = yaml.safe_load((ROOT / "deploy/compose.secure.yml").read_text())
    merged = _merge(base, secure)
    PyCompose.from_json(json.dumps(merged)).validate()
    for name in SERVICES:
        env = merged["services"][name]["environment"]
        assert env["FINFOCUS_DATABASE_URL"].startswith(f"postgresql://finfocus_{name}:${{")
        assert env["FINFOCUS_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["FINFOCUS_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert env["FINFOCUS_KAFKA_SASL_USERNAME"] == f"finfocus-{name}"
        assert env["FINFOCUS_KAFKA_SASL_PASSWORD"].startswith("${")  # from Vault, never a literal
    kafka = merged["services"]["kafka"]["environment"]
    assert kafka["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert "127.0.0.1" in kafka["KAFKA_LISTENERS"].split("INTERNAL://")[1]
    assert merged["services"]["postgres"]["environment"]["POSTGRES_HOST_AUTH_METHOD"] == "scram-sha-256"
    script = (ROOT / "deploy/kafka/setup-security.sh").read_text()
    assert all(f"\n{name} " in script for name in SERVICES)
