"""The console's pages served by the api in-process on the real database, without a browser
(the browser tests in tests/e2e/test_console.py skip where Chromium is absent): sign-in
redirect, every page for a viewer, totals per currency equal to `finfocus cost actual`, the
explorer's CSV, and no decision button for a viewer."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.api.console import view
from tests.integration.api_helpers import cost_actual, make_user, running_api
from tests.integration.api_seed import refresh_daily_costs, seed_cost_lines

pytestmark = pytest.mark.integration

PAGES = ("/", "/costs", "/anomalies", "/forecasts", "/recommendations", "/remediation", "/data")


def cost_actual_text(settings, *args: str) -> str:
    return view.totals_text(cost_actual(settings, *args)["summary"])


def shown(html: str, name: str) -> str:
    found = re.search(rf'data-testid="{name}">([^<]*)<', html)
    assert found, f"no {name} in the page"
    return found.group(1)


async def test_a_viewer_signs_in_and_every_page_shows_the_api_figures(settings):
    await seed_cost_lines(settings.database_url)
    await refresh_daily_costs(settings.database_url)
    today = datetime.now(UTC).date()
    first, tomorrow = today.replace(day=1).isoformat(), (today + timedelta(days=1)).isoformat()
    start = (today - timedelta(days=20)).isoformat()
    month_to_date = cost_actual_text(settings, "--from", first, "--to", tomorrow)
    window = cost_actual_text(settings, "--from", start, "--to", tomorrow)
    aws = cost_actual_text(settings, "--from", start, "--to", tomorrow, "--filter", "provider=AWS")
    assert " · " in window  # USD and EUR, shown apart

    async with running_api(settings) as (app, client):
        redirect = await client.get("/costs?from=2026-01-01")
        assert redirect.status_code == 303
        assert redirect.headers["location"] == "/login?next=%2Fcosts%3Ffrom%3D2026-01-01"
        await make_user(app, "console-viewer", "viewer", "viewer-pass-1234")
        login = await client.post(
            "/login", data={"username": "console-viewer", "password": "viewer-pass-1234"}
        )
        assert login.status_code == 303
        for path in PAGES:
            page = await client.get(path)
            assert page.status_code == 200, (path, page.text[:500])
            assert 'data-action="approve"' not in page.text and 'id="budget-form"' not in page.text
        assert shown((await client.get("/")).text, "summary-total") == month_to_date
        overview = (await client.get("/", params={"from": start, "to": tomorrow})).text
        assert shown(overview, "summary-total") == window
        explorer = await client.get(
            "/costs", params={"from": start, "to": tomorrow, "group_by": "service,tag:team"}
        )
        assert shown(explorer.text, "costs-total") == window
        assert "(untagged)" in explorer.text
        query = {
            "from": start,
            "to": tomorrow,
            "group_by": "monthly,account",
            "filter": "provider=AWS",
        }
        assert shown((await client.get("/costs", params=query)).text, "costs-total") == aws
        csv_text = (await client.get("/costs.csv", params=query)).text
        rows = list(csv.DictReader(io.StringIO(csv_text)))
        assert view.money(sum(Decimal(r["cost"]) for r in rows), "USD") == aws
        bad = await client.get("/costs", params={"from": start, "filter": "nonsense=1"})
        assert bad.status_code == 200 and "unknown --filter key" in bad.text


async def test_the_ask_page_renders_for_a_viewer_and_its_form_posts_to_the_assistant(settings):
    """The page and the overview's box carry a labelled field; the request console.js makes
    (session cookie + X-CSRF-Token from the readable cookie) answers, and without the token a
    session write is refused."""
    await seed_cost_lines(settings.database_url)
    await refresh_daily_costs(settings.database_url)
    async with running_api(settings) as (app, client):
        await make_user(app, "ask-viewer", "viewer", "viewer-pass-1234")
        login = await client.post(
            "/login", data={"username": "ask-viewer", "password": "viewer-pass-1234"}
        )
        assert login.status_code == 303
        page = await client.get("/ask", params={"q": "<b>spend</b> on ec2 last month"})
        assert page.status_code == 200, page.text[:500]
        html = page.text
        assert 'href="/ask"' in html and 'aria-current="page"' in html
        assert 'id="ask-form"' in html and 'data-url="/api/v1/ai/query"' in html
        assert '<label for="ask-question">' in html and 'id="ask-question" name="q"' in html
        assert "&lt;b&gt;spend&lt;/b&gt;" in html and "<b>spend</b>" not in html
        overview = (await client.get("/")).text
        assert 'action="/ask"' in overview and '<label for="overview-ask">' in overview

        question = {"question": "what did we spend on ec2 last month"}
        refused = await client.post("/api/v1/ai/query", json=question)
        assert refused.status_code == 403
        csrf = client.cookies.get("finfocus_csrf")
        assert csrf
        answered = await client.post(
            "/api/v1/ai/query", json=question, headers={"X-CSRF-Token": csrf}
        )
        assert answered.status_code == 200, answered.text
        doc = answered.json()
        assert doc["question"] == question["question"] and doc.get("error") is None, doc
        assert doc["answer"] and doc["sql"].lstrip().upper().startswith(("SELECT", "WITH"))
        unknown = await client.post(
            "/api/v1/ai/query",
            json={"question": "what did we spend on zorblax"},
            headers={"X-CSRF-Token": csrf},
        )
        assert unknown.status_code == 200 and unknown.json()["error"] == "not-understood"
        assert "zorblax" in unknown.json()["answer"]
