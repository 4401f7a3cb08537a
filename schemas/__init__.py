"""Event contracts shared by every FinFocus service: the only code services have in common.

Each producing service has one module; models carry their version in their name.
The names below load on first use (PEP 562): a process that needs one contract, or only
`schemas.reads`, does not pay for building every pydantic model at start (the CLI starts
about 0.1 s sooner).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: exported name -> the module that defines it
_HOMES = {
    "AnomalyV1": "schemas.anomaly",
    "RootCauseV1": "schemas.anomaly",
    "DeadLetterV1": "schemas.deadletter",
    "BillingRecordV1": "schemas.ingest",
    "derive_record_id": "schemas.ingest",
    "PricedRecordV1": "schemas.pricing",
    "RemediationCommandV1": "schemas.remediation",
    "RemediationTargetV1": "schemas.remediation",
    "Topics": "schemas.topics",
}

__all__ = [
    "AnomalyV1",
    "BillingRecordV1",
    "DeadLetterV1",
    "PricedRecordV1",
    "RemediationCommandV1",
    "RemediationTargetV1",
    "RootCauseV1",
    "Topics",
    "derive_record_id",
]

if TYPE_CHECKING:
    from schemas.anomaly import AnomalyV1, RootCauseV1
    from schemas.deadletter import DeadLetterV1
    from schemas.ingest import BillingRecordV1, derive_record_id
    from schemas.pricing import PricedRecordV1
    from schemas.remediation import RemediationCommandV1, RemediationTargetV1
    from schemas.topics import Topics


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'schemas' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
