"""Playbooks are validated against the action registry before anything runs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.remediation.actions import KEBAB, REGISTRY, Params, validate_params
from services.remediation.playbooks import (
    PACKAGED_DIR,
    PlaybookError,
    in_schedule,
    install_defaults,
    load_playbooks,
    parse_playbook,
)

BASE = """
name: {name}
trigger: {{anomaly: {{min_severity: high}}}}
actions: [{action}]
"""


def test_every_registered_action_is_kebab_case_with_a_strict_parameters_model():
    assert {
        "notify",
        "tag-resource",
        "stop-instance",
        "resize-instance",
        "delete-volume",
        "release-address",
        "scale-down",
    } <= set(REGISTRY)
    for name, spec in REGISTRY.items():
        assert KEBAB.match(name) and spec.name == name
        assert issubclass(spec.params, Params)
        assert spec.params.model_config.get("extra") == "forbid"


def test_unknown_action_in_a_playbook_is_an_error_naming_it():
    with pytest.raises(PlaybookError, match="unknown action 'terminate-everything'"):
        parse_playbook(BASE.format(name="bad", action="{action: terminate-everything}"))


def test_unknown_parameter_of_a_known_action_is_an_error():
    with pytest.raises(PlaybookError, match="instance_typo"):
        parse_playbook(
            BASE.format(
                name="bad", action="{action: resize-instance, params: {instance_typo: m5.large}}"
            )
        )


def test_missing_required_parameter_is_an_error():
    with pytest.raises(PlaybookError, match="instance_type"):
        parse_playbook(BASE.format(name="bad", action="{action: resize-instance}"))


def test_unknown_top_level_key_is_an_error():
    with pytest.raises(PlaybookError, match="modee"):
        parse_playbook(BASE.format(name="bad", action="{action: notify}") + "modee: execute\n")


def test_mode_defaults_to_dry_run():
    assert parse_playbook(BASE.format(name="ok", action="{action: notify}")).mode == "dry-run"


def test_invalid_playbook_in_directory_is_reported_and_never_loaded(tmp_path: Path):
    (tmp_path / "good.yaml").write_text(BASE.format(name="good", action="{action: notify}"))
    (tmp_path / "bad.yaml").write_text(BASE.format(name="bad", action="{action: nuke}"))
    playbooks, errors = load_playbooks(tmp_path)
    assert [p.name for p in playbooks] == ["good"]
    assert len(errors) == 1 and "bad.yaml" in errors[0]


def test_packaged_playbooks_are_valid_and_copied_only_when_absent(tmp_path: Path):
    copied = install_defaults(tmp_path)
    assert {p.name for p in copied} == {p.name for p in PACKAGED_DIR.glob("*.yaml")}
    (tmp_path / "notify-anomalies.yaml").write_text(
        BASE.format(name="mine", action="{action: notify}")
    )
    assert install_defaults(tmp_path) == []
    playbooks, errors = load_playbooks(tmp_path)
    assert errors == [] and "mine" in {p.name for p in playbooks}


def test_schedule_windows_in_utc():
    pb = parse_playbook(
        BASE.format(name="w", action="{action: notify}")
        + "schedule: [{days: [mon], start: '09:00', end: '17:00'}]\n"
    )
    assert in_schedule(pb.schedule, datetime(2026, 11, 23, 10, tzinfo=UTC))  # a Monday
    assert not in_schedule(pb.schedule, datetime(2026, 11, 23, 18, tzinfo=UTC))
    assert not in_schedule(pb.schedule, datetime(2026, 11, 24, 10, tzinfo=UTC))


def test_validate_params_rejects_unknown_keys():
    with pytest.raises(ValueError, match="force: Extra inputs"):
        validate_params("stop-instance", {"force": True})


EXECUTE = """
name: stopper
trigger: {anomaly: {min_severity: high}}
actions: [{action: stop-instance}]
mode: execute
"""


def test_execute_playbook_without_an_explicit_approval_block_is_refused():
    with pytest.raises(PlaybookError, match="explicit approval block"):
        parse_playbook(EXECUTE)
    assert parse_playbook(EXECUTE + "approval: {required: true}\n").approval.required
    assert not parse_playbook(EXECUTE + "approval: {required: false}\n").approval.required


@pytest.mark.parametrize(
    "extra, field",
    [
        (
            "rate_limit: {per_account_per_hour: 1000000000000000000000000}",
            "rate_limit.per_account_per_hour",
        ),
        ("rate_limit: {per_account_per_hour: -1}", "rate_limit.per_account_per_hour"),
        ("approval: {required: true, expires_after_hours: .inf}", "approval.expires_after_hours"),
        ("approval: {required: true, expires_after_hours: .nan}", "approval.expires_after_hours"),
        ("approval: {required: true, expires_after_hours: 1e30}", "approval.expires_after_hours"),
    ],
)
def test_rate_limits_and_expiries_are_bounded_when_loading(extra: str, field: str):
    with pytest.raises(PlaybookError, match=field.replace(".", r"\.")):
        parse_playbook(EXECUTE + extra + "\n")
