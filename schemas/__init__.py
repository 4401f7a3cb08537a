"""Event contracts shared by every FinFocus service: the only code services have in common.

Each producing service has one module; models carry their version in their name.
"""

from schemas.anomaly import AnomalyV1, RootCauseV1
from schemas.deadletter import DeadLetterV1
from schemas.ingest import BillingRecordV1, derive_record_id
from schemas.pricing import PricedRecordV1
from schemas.remediation import RemediationCommandV1, RemediationTargetV1
from schemas.topics import Topics

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
