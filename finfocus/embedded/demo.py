"""`finfocus demo`: the whole pipeline on the embedded default, driven through the CLI.

Starts the stack (or reuses a running one), writes the multi-cloud sample under
`FINFOCUS_HOME/demo/`, imports it with `finfocus ingest --wait`, then prints what the
services found. Every step runs the real command in a subprocess, exactly as a user would;
a command that is not available yet is reported as such and the demo goes on.
Re-running is safe: the sample's rows carry stable ids, so nothing is counted twice.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from decimal import Decimal
from typing import Any

from rich.console import Console

from finfocus.embedded.stack import StackError, all_running, failed_services, start_detached
from finfocus.embedded.state import StateFile, supervisor_alive
from finfocus.sample_data import build_sample
from finfocus.settings import FinFocusSettings

console = Console()


class Cli:
    """Runs `finfocus ...` in a subprocess against one FINFOCUS_HOME."""

    def __init__(self, home: str) -> None:
        self.env = dict(os.environ, FINFOCUS_HOME=home)
        # the commands print tables through rich, which assumes 80 columns without a terminal
        self.env.setdefault("COLUMNS", str(max(shutil.get_terminal_size((160, 40)).columns, 120)))

    def run(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(
                [sys.executable, "-m", "finfocus.cli", *args],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(
                exc.cmd, 124, exc.stdout or "", f"timed out after {timeout:.0f}s"
            )

    @staticmethod
    def missing(result: subprocess.CompletedProcess) -> bool:
        """The command does not exist (yet) in this installation."""
        return result.returncode == 2 and "No such command" in (result.stderr or "")

    def json(self, *args: str, timeout: float = 60.0) -> tuple[subprocess.CompletedProcess, Any]:
        result = self.run(*args, "--output", "json", timeout=timeout)
        try:
            return result, json.loads(result.stdout) if result.returncode == 0 else None
        except json.JSONDecodeError:
            return result, None


def _heading(text: str) -> None:
    console.rule(f"[bold]{text}")


def _show(result: subprocess.CompletedProcess, what: str) -> bool:
    """Print a command's output; False (with a note) when it is missing or failed."""
    if Cli.missing(result):
        console.print(f"[yellow]note:[/yellow] `{what}` is not available in this build yet")
        return False
    if result.returncode != 0:
        console.print(f"[yellow]note:[/yellow] `{what}` failed (exit {result.returncode}):")
        console.print(
            (result.stderr or result.stdout).strip()[-2000:], markup=False, highlight=False
        )
        return False
    sys.stdout.write(result.stdout)
    sys.stdout.flush()
    return True


def _wait_for(cli: Cli, args: tuple[str, ...], key: str, timeout: float) -> tuple[list, bool]:
    """Poll `finfocus ARGS --output json` until `key` lists something; (items, command exists)."""
    deadline = time.monotonic() + timeout
    while True:
        result, body = cli.json(*args)
        if Cli.missing(result):
            return [], False
        items = (body or {}).get(key) or []
        if items or time.monotonic() > deadline:
            return items, True
        time.sleep(3)


def _ensure_stack(settings: FinFocusSettings) -> dict | None:
    state = StateFile(settings.state_file).read()
    if state and supervisor_alive(state):
        console.print("using the running stack (`finfocus status` shows it)")
        return state
    console.print(f"starting the embedded stack under {settings.home} ...")
    try:
        return start_detached(settings, timeout=240)
    except StackError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return None


def _console_login(cli: Cli) -> None:
    """The console's address and a login: user `demo` (admin) with a fresh random password,
    shown once (a re-run replaces it)."""
    import secrets

    _, status = cli.json("status")
    url = (status or {}).get("api_url")
    if not url:
        console.print("[yellow]note:[/yellow] the api service is not running: no web console")
        return
    password = secrets.token_urlsafe(12)
    added = subprocess.run(
        [
            sys.executable,
            "-m",
            "finfocus.cli",
            "user",
            "add",
            "demo",
            "--role",
            "admin",
            "--password-stdin",
        ],
        env=cli.env,
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    console.print(f"Web console: [bold]{url}/[/bold]", highlight=False, soft_wrap=True)
    if added.returncode == 0:
        console.print(
            f"log in as [bold]demo[/bold] with password [bold]{password}[/bold] (shown once; "
            "a re-run of the demo sets a new one)",
            highlight=False,
            soft_wrap=True,
        )
    else:
        console.print(
            "create a login with `finfocus user add NAME --role admin --password-stdin`",
            highlight=False,
        )


def run_demo(settings: FinFocusSettings, *, wait_timeout: float = 180.0, days: int = 60) -> int:
    """The demo; returns the exit code."""
    home = settings.home.expanduser().resolve()
    cli = Cli(str(home))
    _heading("FinFocus demo")
    state = _ensure_stack(settings)
    if state is None:
        return 1
    if not all_running(state):
        console.print(
            f"[yellow]note:[/yellow] not every service is running ({', '.join(failed_services(state)) or 'some still starting'}); "
            f"their logs are in {home / 'logs'}"
        )

    path, sample = build_sample(home / "demo", days=days)
    totals = ", ".join(f"{v} {k}" for k, v in sample.totals.items())
    console.print(
        f"sample: {sample.rows} FOCUS rows, {sample.start} to {sample.end} (exclusive), "
        f"AWS, Azure and Google Cloud, billed total {totals}\n        written to {path}"
    )

    _heading("Import")
    ingest = cli.run("ingest", str(path), "--format", "focus", "--wait", timeout=900)
    if not _show(ingest, "finfocus ingest") and not Cli.missing(ingest):
        console.print(
            "[red]the import failed[/red]; the stack keeps running (`finfocus down` stops it)"
        )
        return 1

    _heading("Costs by provider and service")
    window = ("--from", sample.start.isoformat(), "--to", sample.end.isoformat())
    _show(
        cli.run("cost", "actual", *window, "--group-by", "provider,service"), "finfocus cost actual"
    )
    _, body = cli.json("cost", "actual", *window)
    if body and "summary" in body and body["summary"].get("totalCost") is not None:
        stored = Decimal(body["summary"]["totalCost"])
        expected = sample.totals.get(body["summary"].get("currency") or "USD")
        verdict = (
            "reconciles to the cent"
            if stored == expected
            else f"differs from the sample's {expected}"
        )
        console.print(f"stored total {stored} {body['summary'].get('currency')}: {verdict}")

    _heading("Anomalies")
    console.print(
        f"waiting up to {wait_timeout:.0f}s for the detector (the spike is on EC2 instance {sample.spike_resource_id}) ..."
    )
    anomalies, exists = _wait_for(cli, ("anomalies", "list"), "anomalies", wait_timeout)
    if exists:
        _show(cli.run("anomalies", "list"), "finfocus anomalies list")
        if not anomalies:
            console.print(
                "[yellow]note:[/yellow] no anomaly reported yet; try `finfocus anomalies list` again shortly"
            )
    else:
        console.print(
            "[yellow]note:[/yellow] `finfocus anomalies list` is not available in this build yet"
        )

    _heading("Forecasts")
    _wait_for(cli, ("forecast", "show"), "forecasts", min(wait_timeout, 60))
    _show(cli.run("forecast", "show"), "finfocus forecast show")

    _heading("Remediation commands")
    commands, exists = _wait_for(
        cli, ("remediation", "list"), "commands", wait_timeout if anomalies else 30
    )
    if exists:
        _show(cli.run("remediation", "list"), "finfocus remediation list")
        if not commands:
            console.print(
                "[yellow]note:[/yellow] no remediation command yet; try `finfocus remediation list` again shortly"
            )
    else:
        console.print(
            "[yellow]note:[/yellow] `finfocus remediation list` is not available in this build yet"
        )

    _heading("Done")
    _console_login(cli)
    console.print(
        "The stack is still running: explore with `finfocus status`, `finfocus cost actual --group-by "
        "account,service`, `finfocus anomalies list`.\nStop it with [bold]finfocus down[/bold]"
        + (f" (FINFOCUS_HOME={home})" if "FINFOCUS_HOME" in os.environ else "")
        + "."
    )
    return 0
