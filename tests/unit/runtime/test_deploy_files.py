"""The compose deployment is valid and complete (the Helm chart: tests/unit/deploy/).

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
    assert {
        "kafka",
        "postgres",
        "otel-collector",
        "jaeger",
        "vault",
        "vault-init",
        "prometheus",
        "grafana",
        "loki",
        "alloy",
        "cli",
        *SERVICES,
    } <= names


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


def test_every_service_is_probed_on_readyz_limited_and_shares_finfocus_home():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in SERVICES:
        service = compose["services"][name]
        env = service["environment"]
        port = env["FINFOCUS_API_PORT"] if name == "api" else env["FINFOCUS_METRICS_PORT"]
        probe = " ".join(service["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/readyz" in probe, name
        assert env["FINFOCUS_METRICS_HOST"] == "0.0.0.0"
        limits = service["deploy"]["resources"]["limits"]
        assert limits["memory"] and limits["cpus"]
        assert f"finfocus-home:{env['FINFOCUS_HOME']}" in service["volumes"]
        assert service["depends_on"]["vault-init"]["condition"] == "service_completed_successfully"
    # every long-running container of the deployment has a memory limit
    for name, service in compose["services"].items():
        if name != "vault-init":
            assert service["deploy"]["resources"]["limits"]["memory"], name


def test_the_intake_and_the_api_listen_on_all_interfaces_and_are_published():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    ingest = compose["services"]["ingest"]
    assert ingest["environment"]["FINFOCUS_INGEST_HTTP_HOST"] == "0.0.0.0"
    port = ingest["environment"]["FINFOCUS_INGEST_HTTP_PORT"]
    assert int(port) > 0 and f"{port}:{port}" in ingest["ports"]
    api = compose["services"]["api"]
    assert api["environment"]["FINFOCUS_API_HOST"] == "0.0.0.0"
    assert f"{api['environment']['FINFOCUS_API_PORT']}:8770" in api["ports"]


def test_the_cli_service_runs_finfocus_on_the_shared_home_as_the_reader():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    cli = compose["services"]["cli"]
    assert cli["profiles"] == ["cli"]  # `docker compose run --rm cli ...`, not started by `up`
    assert "finfocus-home:/var/lib/finfocus" in cli["volumes"]
    assert cli["environment"]["FINFOCUS_READER_DATABASE_URL"].startswith(
        "postgresql://finfocus_reader:"
    )
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["finfocus-entrypoint"]' in dockerfile
    assert "exec finfocus" in (ROOT / "deploy/docker/entrypoint.sh").read_text()


def test_no_service_holds_a_vault_token_only_the_init_container_does():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        if name in ("vault", "vault-init"):
            continue
        assert "VAULT_TOKEN" not in env, name
        assert "VAULT_DEV_ROOT_TOKEN_ID" not in env, name
    for name in (*SERVICES, "cli"):
        service = compose["services"][name]
        assert service["environment"]["VAULT_TOKEN_FILE"] == "/run/finfocus/vault/token"
        assert "vault-token:/run/finfocus/vault:ro" in service["volumes"]
    init = compose["services"]["vault-init"]
    assert init["restart"] == "no" and "vault-token:/run/finfocus/vault" in init["volumes"]
    script = (ROOT / "deploy/vault/init.sh").read_text()
    assert "-policy=finfocus-read" in script and "-no-default-policy" in script
    # every secret path FinFocus reads is seeded
    for path in (
        "ingest-token",
        "bus-signing/$issuer",
        "aws/credentials",
        "remediation-webhook-url",
        "remediation-approval-webhook-url",
        "ops-slack-webhook",
        "db/$role",
        "kafka/$user",
    ):
        assert f"seed {path}" in script or f'seed "{path}"' in script, path
    policy = (ROOT / "deploy/vault/finfocus-policy.hcl").read_text()
    assert 'path "secret/data/finfocus/*"' in policy
    assert '"create"' not in policy and '"update"' not in policy.split("renew-self")[0]


def test_runtime_dependencies_leave_test_tools_out():
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"])
    assert "testcontainers" not in runtime and not re.search(r"\bdocker\b", runtime)
    assert any(d.startswith("testcontainers") for d in project["optional-dependencies"]["test"])
    for package in ("finfocus", "services", "schemas"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            assert not re.search(r"^\s*(import|from) (testcontainers|docker)\b", text, re.M), path
    assert "pip install --no-cache-dir --prefix=/install .\n" in (ROOT / "Dockerfile").read_text()


def test_the_compose_validator_refuses_a_broken_file():
    import json

    import pytest
    from compose_spec import PyCompose

    with pytest.raises(ValueError, match="restart|sometimes"):
        PyCompose.from_json(
            json.dumps({"services": {"a": {"image": "x", "restart": "sometimes"}}})
        ).validate()


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
    assert (
        merged["services"]["postgres"]["environment"]["POSTGRES_HOST_AUTH_METHOD"]
        == "scram-sha-256"
    )
    script = (ROOT / "deploy/kafka/setup-security.sh").read_text()
    assert all(f"\n{name} " in script for name in SERVICES)


def test_every_file_the_compose_file_mounts_is_in_the_repository():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounted = [
        volume.split(":")[0]
        for service in compose["services"].values()
        for volume in service.get("volumes", [])
        if volume.startswith("./")
    ]
    assert mounted
    for path in mounted:
        assert (ROOT / path).exists(), path
    prometheus = compose["services"]["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    grafana = compose["services"]["grafana"]["volumes"]
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards/finfocus:ro" in grafana
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/finfocus.yaml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/finfocus"


def test_logs_are_shipped_to_loki_labelled_by_service():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in SERVICES:
        assert compose["services"][name]["labels"]["io.finfocus.logs"] == "json"
    alloy = (ROOT / "deploy/alloy/config.alloy").read_text()
    assert '"io.finfocus.logs=json"' in alloy
    assert 'target_label  = "service"' in alloy and "http://loki:3100/loki/api/v1/push" in alloy
    assert "/var/run/docker.sock:/var/run/docker.sock:ro" in compose["services"]["alloy"]["volumes"]
