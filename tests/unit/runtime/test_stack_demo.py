"""`finfocus demo` helpers: a missing command is a note, not a crash."""

from __future__ import annotations

import subprocess

from finfocus.embedded.demo import Cli, _show


def test_a_command_that_does_not_exist_is_recognised(tmp_path):
    result = Cli(str(tmp_path)).run("no-such-command", timeout=60)
    assert Cli.missing(result)
    assert not Cli.missing(subprocess.CompletedProcess([], 1, "", "error: boom"))


def test_show_notes_missing_and_failed_commands_and_prints_output(capsys):
    missing = subprocess.CompletedProcess([], 2, "", "Error: No such command 'anomalies'.")
    failed = subprocess.CompletedProcess([], 1, "", "error: database unreachable")
    ok = subprocess.CompletedProcess([], 0, "a table\n", "")
    assert _show(missing, "finfocus anomalies list") is False
    assert _show(failed, "finfocus cost actual") is False
    assert _show(ok, "finfocus forecast show") is True
    out = capsys.readouterr().out
    assert "not available in this build yet" in out
    assert "failed (exit 1)" in out and "database unreachable" in out
    assert "a table" in out
