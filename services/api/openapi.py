"""Write the api's OpenAPI document to docs/api/openapi.json (run: `python -m services.api.openapi`).

The committed document is what clients and the drift test compare against; the app serves
the same at GET /api/v1/openapi.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from finfocus.settings import FinFocusSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "api" / "openapi.json"


def render() -> str:
    from services.api.app import build_app

    app = build_app(
        FinFocusSettings(
            kafka_bootstrap="kafka:9092", database_url="postgresql://finfocus@postgres/finfocus"
        )
    )
    return json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(render())
    print(f"wrote {DOC.relative_to(DOC.parents[2])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
