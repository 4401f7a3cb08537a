"""Settings: environment variables of the contract, and the embedded stack's addresses."""

from __future__ import annotations

import json

import pytest

from finfocus.db import migration_files
from finfocus.settings import EmbeddedStackNotRunning, FinFocusSettings


def test_environment_variables_configure_broker_and_database(monkeypatch, tmp_path):
    monkeypatch.setenv("FINFOCUS_HOME", str(tmp_path))
    monkeypatch.setenv("FINFOCUS_KAFKA_BOOTSTRAP", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("FINFOCUS_DATABASE_URL", "postgresql://finfocus@db/finfocus")
    settings = FinFocusSettings()
    assert settings.home == tmp_path
    assert settings.kafka == "kafka-1:9092,kafka-2:9092"
    assert settings.database == "postgresql://finfocus@db/finfocus"
    assert settings.consumer_timeouts() == {}  # a real cluster keeps Kafka's defaults


def test_unset_addresses_come_from_the_running_embedded_stack(monkeypatch, tmp_path):
    monkeypatch.delenv("FINFOCUS_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.delenv("FINFOCUS_DATABASE_URL", raising=False)
    settings = FinFocusSettings(home=tmp_path)
    with pytest.raises(EmbeddedStackNotRunning, match="finfocus up"):
        _ = settings.kafka
    settings.state_file.parent.mkdir(parents=True)
    settings.state_file.write_text(
        json.dumps(
            {
                "kafka_bootstrap": "127.0.0.1:4000",
                "database_url": "postgresql://postgres@127.0.0.1:5000/finfocus",
            }
        )
    )
    fresh = FinFocusSettings(home=tmp_path)
    assert fresh.kafka == "127.0.0.1:4000"
    assert fresh.database.endswith(":5000/finfocus")
    assert fresh.consumer_timeouts()["session_timeout_ms"] <= 2000  # embedded profile


def test_home_defaults_to_dot_finfocus(monkeypatch):
    monkeypatch.delenv("FINFOCUS_HOME", raising=False)
    assert FinFocusSettings().home.name == ".finfocus"


def test_migration_files_must_be_numbered_and_unique(tmp_path):
    (tmp_path / "0001_init.sql").write_text("")
    (tmp_path / "0002_more.sql").write_text("")
    assert [v for v, _, _ in migration_files(tmp_path)] == [1, 2]
    (tmp_path / "0002_again.sql").write_text("")
    with pytest.raises(ValueError, match="duplicate"):
        migration_files(tmp_path)
    (tmp_path / "0002_again.sql").unlink()
    (tmp_path / "init.sql").write_text("")
    with pytest.raises(ValueError, match="NNNN_name.sql"):
        migration_files(tmp_path)


def test_kafka_security_is_optional_and_maps_to_scram_over_tls(monkeypatch):
    from faststream.security import SASLScram512

    from finfocus.settings import FinFocusSettings, kafka_client_options

    for key in ("SECURITY_PROTOCOL", "SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD"):
        monkeypatch.delenv(f"FINFOCUS_KAFKA_{key}", raising=False)
    assert kafka_client_options() == {} and FinFocusSettings().faststream_security() is None
    monkeypatch.setenv("FINFOCUS_KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
    monkeypatch.setenv("FINFOCUS_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("FINFOCUS_KAFKA_SASL_USERNAME", "finfocus-pricing")
    monkeypatch.setenv("FINFOCUS_KAFKA_SASL_PASSWORD", "pw")
    options = kafka_client_options()
    assert (
        options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    )
    assert (
        options["sasl_plain_username"] == "finfocus-pricing" and options["ssl_context"] is not None
    )
    security = FinFocusSettings().faststream_security()
    assert isinstance(security, SASLScram512) and security.use_ssl
