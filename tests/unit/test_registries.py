"""Every registry entry (pricing plug-ins, anomaly detectors, remediation actions) keeps the
conventions: a kebab-case name, a pydantic parameters model that forbids unknown keys, and a
documented field for every parameter."""

from __future__ import annotations

import re

import pytest
from pydantic import BaseModel, ValidationError

from services.anomaly.detectors import DETECTORS
from services.pricing.plugins import BUILTINS
from services.remediation.actions import REGISTRY as ACTIONS

KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")

ENTRIES = (
    [("pricing-plugin", name, entry.params) for name, entry in BUILTINS.items()]
    + [("anomaly-detector", name, entry.params) for name, entry in DETECTORS.items()]
    + [("remediation-action", name, spec.params) for name, spec in ACTIONS.items()]
)


def test_every_registry_has_entries():
    kinds = {kind for kind, _, _ in ENTRIES}
    assert kinds == {"pricing-plugin", "anomaly-detector", "remediation-action"}


@pytest.mark.parametrize(
    ("kind", "name", "params"), ENTRIES, ids=[f"{k}:{n}" for k, n, _ in ENTRIES]
)
def test_entry_is_kebab_case_with_a_strict_documented_parameters_model(kind, name, params):
    assert KEBAB.match(name), f"{kind} {name!r} is not kebab-case"
    assert issubclass(params, BaseModel)
    assert params.model_config.get("extra") == "forbid", (
        f"{kind} {name}: unknown keys must be refused"
    )
    for field_name, field in params.model_fields.items():
        assert field.description, f"{kind} {name}: parameter {field_name} has no description"
    required = {n: f for n, f in params.model_fields.items() if f.is_required()}
    sample = {n: _sample(f.annotation) for n, f in required.items()}
    with pytest.raises(ValidationError, match="xtra|not permitted"):
        params.model_validate({**sample, "no_such_parameter": 1})


def _sample(annotation):
    return {int: 1, float: 1.0, bool: True}.get(annotation, "x")


def test_remediation_actions_include_the_documented_set():
    assert {
        "notify",
        "tag-resource",
        "stop-instance",
        "resize-instance",
        "delete-volume",
        "release-address",
        "scale-down",
    } <= set(ACTIONS)
