"""The web console in a real Chromium (Debian's `chromium`, driven by Playwright), against one
embedded stack running `finfocus demo`'s data.

Logs in through `/login`, opens every page (no console error, no failed request, a
screenshot at 1280x800 under test-artifacts/console/), checks the overview's and the
explorer's totals against `finfocus cost actual` to the cent, the viewer's missing approve
button and the API's 403 when forced, an approver's approval through the confirmation
dialog, and the accessibility basics (a label on every control, actions reachable by Tab).
Skips with one line when Chromium or Playwright is missing; never downloads a browser.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "console"
CHROMIUM = os.environ.get("FINFOCUS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PAGES = {
    "overview": "/",
    "costs": "/costs",
    "anomalies": "/anomalies",
    "forecasts": "/forecasts",
    "recommendations": "/recommendations",
    "remediation": "/remediation",
    "data": "/data",
}
PASSWORDS = {
    "console-viewer": "viewer-pass-1234",
    "console-approver": "approver-pass-1234",
    "console-admin": "admin-pass-1234",
}


def _missing() -> str | None:
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    return None


if (_reason := _missing()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402

#: boto3's standard configuration for the stack: its executors act on a moto server
AWS: dict[str, str] = {}


def finfocus(
    home: Path, *args: str, stdin: str | None = None, timeout: float = 240
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FINFOCUS_", "AWS_"))}
    env.update(AWS, FINFOCUS_HOME=str(home))
    return subprocess.run(
        [sys.executable, "-m", "finfocus.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def people(amount: str | Decimal, currency: str) -> str:
    """What the console shows for a `cost actual` figure: cents, thousands separated."""
    return f"{Decimal(amount).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,.2f} {currency}"


def cost_actual_text(home: Path, start: str, end: str, *extra: str) -> str:
    result = finfocus(
        home, "cost", "actual", "--from", start, "--to", end, *extra, "--output", "json"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)["summary"]
    totals = summary.get("totals") or [
        {"currency": summary["currency"], "totalCost": summary["totalCost"]}
    ]
    return " · ".join(people(t["totalCost"], t["currency"]) for t in totals if t["currency"])


@dataclass
class Stack:
    home: Path
    url: str
    demo_output: str


@pytest.fixture(scope="module")
def moto():
    """A moto server standing in for AWS, holding the demo's spiking EC2 instance under its
    real id (moto draws instance ids at random: the draw is fixed for that one launch)."""
    from unittest import mock

    import boto3
    from moto.ec2.models import instances
    from moto.server import ThreadedMotoServer

    from finfocus.sample_data import SPIKE_RESOURCE_ID

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    AWS.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
    )
    ec2 = boto3.client(
        "ec2",
        region_name="us-east-1",
        endpoint_url=AWS["AWS_ENDPOINT_URL"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with mock.patch.object(instances, "random_instance_id", return_value=SPIKE_RESOURCE_ID):
        ec2.run_instances(
            ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="c5.24xlarge"
        )
    try:
        yield ec2
    finally:
        AWS.clear()
        server.stop()


def instance_state(ec2) -> str:
    from finfocus.sample_data import SPIKE_RESOURCE_ID

    found = ec2.describe_instances(InstanceIds=[SPIKE_RESOURCE_ID])["Reservations"][0]["Instances"][
        0
    ]
    return found["State"]["Name"]


@pytest.fixture(scope="module")
def stack(moto):
    """One embedded stack for every console test: `up`, the packaged playbook that stops a
    spiking instance after approval enabled, `demo`, three logins."""
    base = Path(tempfile.mkdtemp(prefix="finfocus-console-"))
    home = base / "home"
    up = finfocus(home, "up", "--detach", "--timeout", "180")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        from services.remediation.playbooks import PACKAGED_DIR

        (home / "playbooks").mkdir(exist_ok=True)
        (home / "playbooks" / "stop-spiking-instances.yaml").write_text(
            (PACKAGED_DIR / "stop-spiking-instances.yaml")
            .read_text()
            .replace("enabled: false", "enabled: true")
        )
        demo = finfocus(home, "demo", "--timeout", "90", timeout=900)
        assert demo.returncode == 0, demo.stdout + demo.stderr
        for name, password in PASSWORDS.items():
            added = finfocus(
                home,
                "user",
                "add",
                name,
                "--role",
                name.split("-")[1],
                "--password-stdin",
                stdin=password + "\n",
            )
            assert added.returncode == 0, added.stderr
        status = json.loads(finfocus(home, "status", "--output", "json").stdout)
        assert status.get("api_url"), status
        yield Stack(home, status["api_url"].rstrip("/"), demo.stdout)
    finally:
        finfocus(home, "down", timeout=120)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


class Watched:
    """A page whose console errors, uncaught exceptions and failed requests are collected."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.problems: list[str] = []
        page.on(
            "console",
            lambda m: self.problems.append(f"console: {m.text}") if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: self.problems.append(f"exception: {e}"))
        page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url}"))
        page.on(
            "response",
            lambda r: (
                self.problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None
            ),
        )

    def take(self) -> list[str]:
        out, self.problems = self.problems, []
        return out


def login(
    browser: Browser, stack: Stack, user: str, width: int = 1280, height: int = 800
) -> Watched:
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    watched = Watched(page)
    page.goto(f"{stack.url}/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORDS[user])
    page.click("button[type=submit]")
    page.wait_for_url(f"{stack.url}/")
    return watched


def month_to_date() -> tuple[str, str]:
    today = datetime.now(UTC).date()
    return today.replace(day=1).isoformat(), (today + timedelta(days=1)).isoformat()


def sample_window(stack: Stack) -> tuple[str, str]:
    rows = list(csv.DictReader((stack.home / "demo" / "focus-demo.csv").open()))
    first = min(r["ChargePeriodStart"][:10] for r in rows)
    last = max(r["ChargePeriodStart"][:10] for r in rows)
    return first, (date.fromisoformat(last) + timedelta(days=1)).isoformat()


def test_demo_ends_with_the_console_url_and_how_to_log_in(stack: Stack):
    tail = stack.demo_output[-1500:]
    assert stack.url in tail, tail
    assert "password" in tail.lower(), tail


def test_login_then_every_page_renders_without_console_errors(browser: Browser, stack: Stack):
    watched = login(browser, stack, "console-admin")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name, path in PAGES.items():
        started = time.monotonic()
        watched.page.goto(stack.url + path)
        watched.page.wait_for_load_state("load")
        watched.page.wait_for_timeout(150)  # the charts draw after load
        assert watched.page.locator("h1").count() == 1, name
        assert "/login" not in watched.page.url, name
        watched.page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
        print(f"{name}: loaded in {time.monotonic() - started:.2f}s")
        assert watched.take() == [], name
    page = watched.page
    page.goto(f"{stack.url}/anomalies")
    page.locator("[data-testid=anomalies-table] tbody a").first.click()
    page.wait_for_load_state("load")
    page.wait_for_timeout(150)
    page.screenshot(path=str(ARTIFACTS / "anomaly.png"))
    impact = page.get_by_test_id("anomaly-impact").inner_text().split(" (")[0]
    assert (
        page.get_by_test_id("root-cause-sum").inner_text() == impact
    )  # root causes add up to the impact
    assert page.get_by_test_id("anomaly-monitor").inner_text()
    assert watched.take() == []
    page.context.close()


def test_overview_month_to_date_total_equals_cost_actual_to_the_cent(
    browser: Browser, stack: Stack
):
    watched = login(browser, stack, "console-viewer")
    start, end = month_to_date()
    shown = watched.page.get_by_test_id("summary-total").inner_text()  # the default: month to date
    assert shown == cost_actual_text(stack.home, start, end)
    first, until = sample_window(stack)
    watched.page.goto(f"{stack.url}/?from={first}&to={until}")
    assert watched.page.get_by_test_id("summary-total").inner_text() == cost_actual_text(
        stack.home, first, until
    )
    assert watched.take() == []
    watched.page.context.close()


def test_explorer_total_equals_cost_actual_and_the_csv_adds_up(browser: Browser, stack: Stack):
    watched = login(browser, stack, "console-viewer")
    first, until = sample_window(stack)
    page = watched.page
    page.goto(f"{stack.url}/costs?from={first}&to={until}&group_by=service,tag:team")
    expected = cost_actual_text(stack.home, first, until)
    assert page.get_by_test_id("costs-total").inner_text() == expected
    assert "(untagged)" in page.get_by_test_id("costs-table").inner_text()
    # a filter is part of the query the URL carries
    page.goto(
        f"{stack.url}/costs?from={first}&to={until}&group_by=daily,account&filter=provider=AWS"
    )
    assert page.get_by_test_id("costs-total").inner_text() == cost_actual_text(
        stack.home, first, until, "--filter", "provider=AWS"
    )
    # the form keeps the query in the URL
    page.select_option("#granularity", "monthly")
    page.fill("#dim1", "provider")
    page.fill("#dim2", "")
    page.click("#explorer-form button[type=submit]")
    page.wait_for_url("**/costs?**group_by=monthly%2Cprovider**")
    assert page.get_by_test_id("costs-total").inner_text() == cost_actual_text(
        stack.home, first, until, "--filter", "provider=AWS"
    )
    with page.expect_download() as download:
        page.click("text=Download CSV")
    with open(download.value.path()) as downloaded:
        rows = list(csv.DictReader(downloaded))
    assert sum(Decimal(r["cost"]) for r in rows) == Decimal(
        json.loads(
            finfocus(
                stack.home,
                "cost",
                "actual",
                "--from",
                first,
                "--to",
                until,
                "--filter",
                "provider=AWS",
                "--output",
                "json",
            ).stdout
        )["summary"]["totalCost"]
    )
    # a saved view comes back as a link to the same query
    page.fill("#view-name", "aws monthly")
    page.click("#save-view button[type=submit]")
    page.wait_for_function(
        "() => /Saved the view/.test(document.getElementById('status').textContent)"
    )
    page.goto(f"{stack.url}/costs")
    page.click("text=aws monthly")
    assert "group_by=monthly%2Cprovider" in page.url and "filter=provider%3DAWS" in page.url, (
        page.url
    )
    assert watched.take() == []
    page.context.close()


def test_viewer_sees_no_approve_button_and_gets_403_when_forcing_it(browser: Browser, stack: Stack):
    watched = login(browser, stack, "console-viewer")
    page = watched.page
    page.goto(f"{stack.url}/remediation")
    assert page.locator("button[data-action=approve]").count() == 0
    commands = json.loads(finfocus(stack.home, "remediation", "list", "--output", "json").stdout)[
        "commands"
    ]
    target = commands[0]["command_id"] if commands else "no-such-command"
    status = page.evaluate(
        """async (id) => {
             const csrf = document.cookie.split('; ').find(c => c.startsWith('finfocus_csrf=')).split('=')[1];
             const r = await fetch('/api/v1/remediation/commands/' + encodeURIComponent(id) + '/approve',
               {method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
                body: JSON.stringify({reason: 'forced'})});
             return r.status; }""",
        target,
    )
    assert status == 403
    watched.take()  # the forced 403 is the point here
    page.context.close()


def _pending_command(stack: Stack, timeout: float = 120) -> dict | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = finfocus(stack.home, "remediation", "list", "--output", "json")
        if result.returncode == 0:
            pending = [
                c
                for c in json.loads(result.stdout)["commands"]
                if c["status"] == "pending-approval" and c["action"] == "stop-instance"
            ]
            if pending:
                return pending[0]
        time.sleep(3)
    return None


def test_an_approver_approves_the_pending_command_and_sees_it_executed(
    browser: Browser, stack: Stack, moto
):
    command = _pending_command(stack)
    assert command is not None, "the demo produced no stop-instance command waiting for approval"
    assert instance_state(moto) == "running"
    watched = login(browser, stack, "console-approver")
    page = watched.page
    page.goto(f"{stack.url}/remediation")
    row = page.locator(f"tr[data-command='{command['command_id']}']")
    row.locator("button[data-action=approve]").click()
    text = page.locator("#confirm-text").inner_text()
    target = command["target"]["resource_id"]
    assert "stop-instance" in text and target in text and "saving" in text, text
    page.fill("#confirm-note", "approved from the browser test")
    page.click("#confirm-ok")
    page.wait_for_function(
        "() => /done|accepted/.test(document.getElementById('status').textContent)"
    )
    deadline = time.monotonic() + 90
    status = None
    while time.monotonic() < deadline:  # the executor picks approved commands up on its next sweep
        page.goto(f"{stack.url}/remediation/{command['command_id']}")
        status = page.get_by_test_id("command-status").inner_text()
        if status not in ("pending-approval", "approved"):
            break
        page.wait_for_timeout(2000)
    assert status == "executed", page.locator("main").inner_text()[:3000]
    assert instance_state(moto) in ("stopping", "stopped")
    assert "user:console-approver" in page.get_by_test_id("audit-table").inner_text()
    assert page.locator("button[data-action=approve]").count() == 0
    assert watched.take() == []
    page.context.close()


def test_an_approver_gives_feedback_on_the_anomaly(browser: Browser, stack: Stack):
    watched = login(browser, stack, "console-approver")
    page = watched.page
    page.goto(f"{stack.url}/anomalies")
    page.locator("[data-testid=anomalies-table] tbody a").first.click()
    page.click("button[data-verdict=planned]")
    assert "Planned change" in page.locator("#confirm-text").inner_text()
    page.fill("#confirm-note", "the load test of the week")
    page.click("#confirm-ok")
    page.wait_for_function(
        "() => /done|accepted/.test(document.getElementById('status').textContent)"
    )
    assert watched.take() == []
    page.context.close()


def test_an_admin_sets_a_budget_and_a_viewer_has_no_budget_form(browser: Browser, stack: Stack):
    watched = login(browser, stack, "console-admin")
    page = watched.page
    page.goto(f"{stack.url}/forecasts")
    page.fill("#b-name", "console-test")
    page.fill("#b-amount", "1234.50")
    page.fill("#b-scope", "provider=AWS")
    page.click("#budget-form button[type=submit]")
    assert "console-test" in page.locator("#confirm-text").inner_text()
    page.click("#confirm-ok")
    page.wait_for_function("() => /saved/.test(document.getElementById('status').textContent)")
    deadline = time.monotonic() + 30
    while (
        "console-test" not in page.get_by_test_id("budgets-table").inner_text()
        and time.monotonic() < deadline
    ):
        page.wait_for_timeout(1000)
        page.goto(f"{stack.url}/forecasts")
    assert "1,234.50 USD" in page.get_by_test_id("budgets-table").inner_text()
    assert watched.take() == []
    page.context.close()
    viewer = login(browser, stack, "console-viewer")
    viewer.page.goto(f"{stack.url}/forecasts")
    assert viewer.page.locator("#budget-form").count() == 0
    assert viewer.page.locator("button[data-action]").count() == 0
    viewer.page.context.close()


def test_controls_have_labels_actions_are_keyboard_reachable_and_390_wide_fits(
    browser: Browser, stack: Stack
):
    watched = login(browser, stack, "console-admin")
    page = watched.page
    for name, path in PAGES.items():
        page.goto(stack.url + path)
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                 .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                              && !e.getAttribute('aria-labelledby'))
                 .map(e => e.id || e.name || e.outerHTML.slice(0, 60))"""
        )
        assert unlabelled == [], (name, unlabelled)
    page.goto(f"{stack.url}/costs")
    reached = set()
    for _ in range(60):
        page.keyboard.press("Tab")
        reached.add(
            page.evaluate(
                "() => document.activeElement.textContent.trim() || document.activeElement.id"
            )
        )
    assert {"Explore", "Download CSV", "Save view"} <= reached, reached
    page.context.close()
    narrow = login(browser, stack, "console-admin", width=390, height=844)
    for path in ("/", "/costs", "/remediation"):
        narrow.page.goto(stack.url + path)
        width = narrow.page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 392, (path, width)
    narrow.page.screenshot(path=str(ARTIFACTS / "remediation-390.png"))
    narrow.page.context.close()


def test_a_viewer_asks_what_ec2_cost_last_month_and_sees_cost_actuals_total(
    browser: Browser, stack: Stack
):
    watched = login(browser, stack, "console-viewer")
    page = watched.page
    question = "what did we spend on ec2 last month"
    page.fill("#overview-ask", question)  # the overview's box hands the question to /ask
    page.press("#overview-ask", "Enter")
    page.wait_for_url("**/ask?q=*")
    answer = page.get_by_test_id("ask-answer")
    answer.wait_for(state="visible", timeout=30000)
    shown = answer.inner_text()

    today = datetime.now(UTC).date()
    first = (today.replace(day=1) - timedelta(days=1)).replace(day=1).isoformat()
    until = today.replace(day=1).isoformat()
    rows = list(csv.DictReader((stack.home / "demo" / "focus-demo.csv").open()))
    names = sorted(
        {
            r["ServiceName"]
            for r in rows
            if "ec2" in r["ServiceName"].lower() or "elastic compute" in r["ServiceName"].lower()
        }
    )
    assert len(names) == 1, names
    expected = cost_actual_text(stack.home, first, until, "--filter", f"service={names[0]}")
    assert expected and expected in shown, (expected, shown)
    assert f"from {first} to {until}" in shown, shown
    assert expected.split(" · ")[0] in page.get_by_test_id("ask-table").inner_text()
    assert page.locator("#ask-sql-details").get_attribute("open") is None  # SQL folded away
    assert "SELECT" in page.get_by_test_id("ask-sql").text_content()
    assert page.get_by_test_id("ask-error").is_hidden()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ask.png"), full_page=True)

    # asked again from the page's own field with the keyboard; a word it cannot place is
    # named back as a readable message, not a stack
    page.fill("#ask-question", "what did we spend on <img src=x onerror=alert(1)> zorblax")
    page.focus("#ask-question")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "ask-submit"
    page.keyboard.press("Enter")
    error = page.get_by_test_id("ask-error")
    error.wait_for(state="visible", timeout=30000)
    assert "zorblax" in error.inner_text() and "Traceback" not in error.inner_text()
    assert page.locator("main img").count() == 0  # the question stays text
    assert page.get_by_test_id("ask-answer").is_hidden()
    assert watched.take() == []
    page.context.close()
