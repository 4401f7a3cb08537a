"""The committed OpenAPI document is the one the app serves (regenerate with
`python -m services.api.openapi`)."""

from __future__ import annotations

import json

from services.api.openapi import DOC, render


def test_committed_openapi_document_matches_the_app():
    assert json.loads(DOC.read_text()) == json.loads(render()), (
        "docs/api/openapi.json drifted: run `python -m services.api.openapi`"
    )


def test_every_operation_but_health_requires_a_token_or_a_session():
    doc = json.loads(render())
    assert doc["openapi"].startswith("3.")
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            if path == "/api/v1/health":
                assert not op.get("security")
            else:
                schemes = {name for s in op.get("security", []) for name in s}
                assert {"HTTPBearer", "APIKeyCookie"} <= schemes, f"{method} {path}"
