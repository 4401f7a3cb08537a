"""The embedded PostgreSQL as a local attacker meets it: no passwordless session for any
local user, service roles confined to their schema, no program execution on the server,
and no secret in the postmaster's environment (issue 13, "no local superuser")."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import asyncpg
import pytest

from finfocus.embedded.postgres import _bin, start_postgres
from finfocus.embedded.roles import provision, service_role

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="switching to user nobody needs root")
PLANTED = {
    "FINFOCUS_SECRET_SLACK_WEBHOOK": "https://hooks.example/T0/B0/planted",
    "VAULT_TOKEN": "hvs.planted",
    "AWS_SECRET_ACCESS_KEY": "planted-aws",
}


@pytest.fixture(scope="module")
def cluster():
    saved = {k: os.environ.get(k) for k in PLANTED}
    os.environ.update(PLANTED)
    # our own directory, opened for the server's user when root; nothing above it changes
    base = Path(tempfile.mkdtemp(prefix="finfocus-sec-"))
    base.chmod(0o755)
    home = base / "home"
    server = None
    try:
        server = start_postgres(
            base / "cluster" / "data",
            base / "cluster" / "postgres.log",
            password_file=home / "secrets" / "postgres" / "postgres.password",
        )
        passwords = provision(server.url, home, ("ingest", "pricing"))
        urls = {
            s: server.url_for(service_role(s), passwords[service_role(s)])
            for s in ("ingest", "pricing")
        }
        urls["reader"] = server.url_for("finfocus_reader", passwords["finfocus_reader"])
        yield server, urls
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if server is not None:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


def _as_nobody(*args: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "PGCONNECT_TIMEOUT": "5"}
    return subprocess.run(
        [
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            _bin("psql"),
            "-w",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )


@ROOT_ONLY
def test_nobody_cannot_connect_over_tcp_or_the_socket(cluster):
    server, _ = cluster
    for user in ("postgres", "finfocus_ingest", "finfocus_reader", "nobody"):
        tcp = _as_nobody(
            "-h",
            "127.0.0.1",
            "-p",
            str(server.port),
            "-U",
            user,
            "-d",
            "finfocus",
            "-c",
            "SELECT 1",
        )
        assert tcp.returncode != 0 and "password" in tcp.stderr, tcp.stderr
        sock = _as_nobody(
            "-h",
            str(server.data_dir),
            "-p",
            str(server.port),
            "-U",
            user,
            "-d",
            "finfocus",
            "-c",
            "SELECT 1",
        )
        assert sock.returncode != 0, sock.stdout
        assert "Permission denied" in sock.stderr or "password" in sock.stderr, sock.stderr


def test_pg_hba_has_no_trust_line(cluster):
    server, _ = cluster
    lines = [
        ln.split()
        for ln in (server.data_dir / "pg_hba.conf").read_text().splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
    assert lines and all(line[-1] == "scram-sha-256" for line in lines)


async def test_a_service_role_cannot_touch_another_service_schema(cluster):
    _, urls = cluster
    ingest = await asyncpg.connect(urls["ingest"])
    pricing = await asyncpg.connect(urls["pricing"])
    try:
        await ingest.execute("CREATE TABLE IF NOT EXISTS ingest.jobs_probe (id int)")
        await ingest.execute("INSERT INTO ingest.jobs_probe VALUES (1)")
        for sql in (
            "INSERT INTO ingest.jobs_probe VALUES (2)",
            "SELECT * FROM ingest.jobs_probe",
            "CREATE TABLE ingest.planted (id int)",
            "DROP TABLE ingest.jobs_probe",
            "CREATE SCHEMA planted",
            "CREATE ROLE planted LOGIN",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await pricing.execute(sql)
        assert not await pricing.fetchval(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        )
    finally:
        await ingest.close()
        await pricing.close()


async def test_copy_from_program_is_refused_for_service_roles_and_the_reader(cluster):
    _, urls = cluster
    for who in ("ingest", "pricing", "reader"):
        conn = await asyncpg.connect(urls[who])
        try:
            if who != "reader":  # the stores' bulk writes use temporary tables
                await conn.execute("CREATE TEMP TABLE out (line text)")
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="program"):
                await conn.execute("COPY out FROM PROGRAM 'env'")
        finally:
            await conn.close()


async def test_the_reader_logs_in_as_itself_and_only_reads_views(cluster):
    _, urls = cluster
    ingest = await asyncpg.connect(urls["ingest"])
    try:
        await ingest.execute("CREATE TABLE IF NOT EXISTS ingest.secret_probe (id int)")
        await ingest.execute("CREATE OR REPLACE VIEW ingest.v_probe AS SELECT 1 AS one")
        await ingest.execute("GRANT SELECT ON ingest.v_probe TO finfocus_reader")
    finally:
        await ingest.close()
    reader = await asyncpg.connect(urls["reader"])
    try:
        assert await reader.fetchval("SELECT current_user") == "finfocus_reader"
        assert await reader.fetchval("SELECT one FROM ingest.v_probe") == 1
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await reader.fetch("SELECT * FROM ingest.secret_probe")
        with pytest.raises(asyncpg.PostgresError):  # read-only transaction, no privilege
            await reader.execute("CREATE TABLE ingest.planted (id int)")
    finally:
        await reader.close()


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_the_postmaster_environment_holds_no_secret(cluster):
    server, _ = cluster
    pid = int((server.data_dir / "postmaster.pid").read_text().splitlines()[0])
    environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
    names = {entry.split("=", 1)[0] for entry in environ if entry}
    assert not [n for n in names if n.startswith(("FINFOCUS_SECRET_", "VAULT_", "AWS_"))], names
    assert not [v for v in PLANTED.values() if any(v in entry for entry in environ)]


async def test_service_migrations_run_as_the_service_role(cluster):
    from finfocus.db import migrate_url

    _, urls = cluster
    root = Path(__file__).resolve().parents[2]  # noqa: ASYNC240 - a test, nothing else on its loop
    await migrate_url(urls["pricing"], "pricing", root / "services" / "pricing" / "migrations")
    conn = await asyncpg.connect(urls["pricing"])
    try:
        owners = await conn.fetch(
            "SELECT DISTINCT pg_get_userbyid(relowner) AS o FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pricing'"
        )
        assert {r["o"] for r in owners} == {"finfocus_pricing"}
    finally:
        await conn.close()


def test_a_trust_cluster_of_an_older_version_gets_a_password_on_start():
    from finfocus.embedded.postgres import _own, _run_as, server_environment

    base = Path(tempfile.mkdtemp(prefix="finfocus-old-"))
    base.chmod(0o755)
    data = base / "data"
    server = None
    try:
        data.mkdir(mode=0o700)
        _own(data)
        subprocess.run(
            [_bin("initdb"), "-D", str(data), "--auth=trust", "-U", "postgres"],
            check=True,
            capture_output=True,
            env=server_environment(),
            **_run_as(),
        )
        server = start_postgres(data, base / "postgres.log")
        assert server.password and "trust" not in (data / "pg_hba.conf").read_text()
        no_password = subprocess.run(
            [
                _bin("psql"),
                "-w",
                "-h",
                "127.0.0.1",
                "-p",
                str(server.port),
                "-U",
                "postgres",
                "-c",
                "SELECT 1",
            ],
            capture_output=True,
            text=True,
            env={"PATH": os.environ["PATH"]},
        )
        assert no_password.returncode != 0 and "password" in no_password.stderr
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)
