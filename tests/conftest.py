"""Fixtures for the real broker and the real PostgreSQL.

- `kafka_bootstrap`: a fresh embedded Tansu broker per test (it starts in milliseconds and
  keeps nothing, so tests never see each other's messages). `FINFOCUS_TEST_KAFKA` points the
  suite at an existing cluster instead.
- `database_url`: a fresh database per test on the PostgreSQL at 127.0.0.1:5432 (or
  `FINFOCUS_TEST_PG_ADMIN_URL`), dropped afterwards; where no server answers there, an
  embedded PostgreSQL is started once for the session.
- `settings`: FinFocusSettings wired to both, with the embedded profile's short group timeouts.

Nothing here is shared between tests but the PostgreSQL server, so `make test` runs the suite
in two pytest-xdist workers (a file's tests stay on one worker, for its module fixtures). The
one object of that server that every test database uses, the `finfocus_reader` role, is made
once before any test, so that two workers migrating at once do not race to create it.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import asyncpg
import pytest

from finfocus.settings import FinFocusSettings

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ADMIN_URL = os.environ.get(
    "FINFOCUS_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _reachable(url: str) -> bool:
    from urllib.parse import urlparse

    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or 5432), timeout=1
        ):
            return True
    except OSError:
        return False


def docker_engine_answers(timeout: float = 1.0) -> bool:
    """True when a Docker engine answers `/_ping` within `timeout` (testcontainers can run)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return False
    path = host.removeprefix("unix://")
    if not os.path.exists(path):
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b"OK" in sock.recv(1024)
    except OSError:
        return False


def _ensure_reader_role(url: str) -> None:
    """The cluster-wide reader role the migrations grant views to (NOLOGIN, as
    `finfocus.db` makes it where nobody did), made by whichever worker comes first."""
    import asyncio

    from finfocus.db import READER_ROLE

    async def ensure() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                f"DO $$ BEGIN CREATE ROLE {READER_ROLE} NOLOGIN; "
                "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
            )
        finally:
            await conn.close()

    asyncio.run(ensure())


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """URL of a PostgreSQL server where tests may create databases.

    In order: the server at FINFOCUS_TEST_PG_ADMIN_URL (127.0.0.1:5432 by default); a
    testcontainers PostgreSQL where a Docker engine answers; the embedded PostgreSQL.
    """
    if _reachable(ADMIN_URL):
        _ensure_reader_role(ADMIN_URL)
        yield ADMIN_URL
        return
    if docker_engine_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver=None) as container:
            yield container.get_connection_url()
        return
    import shutil
    import tempfile

    from finfocus.embedded.postgres import start_postgres

    # Not under pytest's tmp root: pytest makes it 0700 again on every run, which locks out
    # the unprivileged user the embedded PostgreSQL runs as when tests run as root.
    home = Path(tempfile.mkdtemp(prefix="finfocus-test-pg-"))
    home.chmod(0o755)
    server = start_postgres(home / "data", home / "postgres.log")
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
async def database_url(pg_admin_url: str) -> str:
    """A fresh, empty database for one test."""
    name = f"ff_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = pg_admin_url.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    admin = await asyncpg.connect(pg_admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def kafka_bootstrap(tmp_path: Path) -> str:
    """A fresh embedded broker for one test (or FINFOCUS_TEST_KAFKA when set)."""
    external = os.environ.get("FINFOCUS_TEST_KAFKA")
    if external:
        yield external
        return
    from finfocus.embedded.kafka import start_kafka

    broker = start_kafka(tmp_path / "tansu.log")
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def settings(tmp_path: Path, kafka_bootstrap: str, database_url: str) -> FinFocusSettings:
    """Settings for one test: its own home, broker and database; short consumer-group timeouts."""
    return FinFocusSettings(
        home=tmp_path / "home",
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url,
        kafka_session_timeout_ms=1500,
        kafka_heartbeat_interval_ms=500,
    )


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` beside the project (tests may read it; the product may not)."""
    if not SHARED_DATA.exists():
        pytest.skip(f"{SHARED_DATA} is not present")
    return SHARED_DATA
