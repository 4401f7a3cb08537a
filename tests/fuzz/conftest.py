"""Hypothesis profiles: `suite` runs each fuzz target briefly with the rest of the tests;
`make fuzz` loads `fuzz` (FINFOCUS_FUZZ_EXAMPLES examples per target, 5,000 unless set)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_QUIET = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]
settings.register_profile(
    "suite", max_examples=40, deadline=None, database=None, suppress_health_check=_QUIET
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("FINFOCUS_FUZZ_EXAMPLES", "5000")),
    deadline=None,
    suppress_health_check=_QUIET,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))
