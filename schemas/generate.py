"""Write the JSON Schema of every contract to `schemas/json/` (run: `make schemas`).

The committed files are what non-Python producers and consumers validate against; a test
fails when they drift from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from schemas import AnomalyV1, BillingRecordV1, DeadLetterV1, PricedRecordV1, RemediationCommandV1
from schemas.anomaly import AnomalyFeedbackV1
from schemas.budget import BudgetCommandV1
from schemas.decisions import RecommendationDecisionV1, RemediationDecisionV1
from schemas.monitors import MonitorCommandV1
from schemas.playbooks import PlaybookCommandV1
from schemas.remediation import RecommendationV1, RemediationResultV1, ResourceMetricV1

JSON_DIR = Path(__file__).parent / "json"

CONTRACTS: dict[str, type[BaseModel]] = {
    "BillingRecord.v1": BillingRecordV1,
    "PricedRecord.v1": PricedRecordV1,
    "Anomaly.v1": AnomalyV1,
    "RemediationCommand.v1": RemediationCommandV1,
    "DeadLetter.v1": DeadLetterV1,
    "AnomalyFeedback.v1": AnomalyFeedbackV1,
    "BudgetCommand.v1": BudgetCommandV1,
    "RemediationResult.v1": RemediationResultV1,
    "Recommendation.v1": RecommendationV1,
    "ResourceMetric.v1": ResourceMetricV1,
    "RemediationDecision.v1": RemediationDecisionV1,
    "RecommendationDecision.v1": RecommendationDecisionV1,
    "MonitorCommand.v1": MonitorCommandV1,
    "PlaybookCommand.v1": PlaybookCommandV1,
}


def render(name: str) -> str:
    """The JSON Schema text of one contract, as committed (sorted, indented, newline-terminated)."""
    schema = CONTRACTS[name].model_json_schema(mode="validation")
    schema["$id"] = f"https://finfocus.dev/schemas/{name}.json"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> int:
    JSON_DIR.mkdir(exist_ok=True)
    for name in CONTRACTS:
        (JSON_DIR / f"{name}.json").write_text(render(name))
        print(f"wrote schemas/json/{name}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
