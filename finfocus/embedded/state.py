"""The embedded stack's state file and safe handling of the processes it records.

`finfocus up` writes `FINFOCUS_HOME/run/stack.json`: addresses (read back by
`finfocus.settings`), and for every process it started its pid *and* creation time. A pid
alone is not an identity: after a crash the number may belong to an unrelated process, so
nothing is signalled unless the creation time still matches.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil

#: process states reported by `finfocus status`
STARTING, RUNNING, RESTARTING, FAILED, STOPPED = (
    "starting",
    "running",
    "restarting",
    "failed",
    "stopped",
)


@dataclass(frozen=True)
class ProcessRef:
    """A process identity that survives pid reuse: pid plus creation time."""

    pid: int
    create_time: float

    @classmethod
    def of(cls, pid: int) -> ProcessRef | None:
        """The identity of the live process `pid`, or None when there is none."""
        try:
            return cls(pid, psutil.Process(pid).create_time())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ProcessRef | None:
        if not data or "pid" not in data:
            return None
        return cls(int(data["pid"]), float(data.get("create_time") or 0.0))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def process(self) -> psutil.Process | None:
        """The live process this reference names, or None (gone, zombie, or pid reused)."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 0.05:
                return None  # the pid now belongs to someone else
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None

    def alive(self) -> bool:
        return self.process() is not None


def terminate(ref: ProcessRef | None, timeout: float = 10.0) -> bool:
    """SIGTERM the process `ref` names (never a reused pid), SIGKILL after `timeout`.

    Returns True when a process was signalled.
    """
    proc = ref.process() if ref else None
    if proc is None:
        return False
    try:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    except psutil.NoSuchProcess:
        pass
    return True


def mask_url(url: str | None) -> str | None:
    """The URL with any password replaced by `***` (state and status never show secrets)."""
    if not url or "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class StateFile:
    """Atomic JSON read/write of `stack.json` (a reader never sees half a file)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def write(self, state: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        # the file names the database and the password files: its owner's only, from the
        # first byte (created 0600, never chmod-ed after the fact)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(state, indent=2))
        os.replace(tmp, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def supervisor_alive(state: dict[str, Any]) -> bool:
    """Is the supervisor recorded in `state` still the live process it was?"""
    ref = ProcessRef.from_dict(state.get("supervisor"))
    return bool(ref and ref.alive())


def wait_gone(ref: ProcessRef, timeout: float) -> bool:
    """Wait until the process is gone; True when it is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not ref.alive():
            return True
        time.sleep(0.1)
    return not ref.alive()
