"""What every request handler may use, built once at start-up (`app.state.ctx`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg

from finfocus.broker import RecordPublisher
from finfocus.db import READER_ROLE, _init_connection, migrate_url
from finfocus.signing import SigningKeys, service_keys
from services.api import store
from services.api.config import ApiSettings
from services.api.oidc import OidcVerifier
from services.api.security import LoginThrottle

#: the api signs the decisions it publishes as this issuer
ISSUER = "api"


@dataclass
class ApiContext:
    settings: ApiSettings
    pool: asyncpg.Pool | None = None  # the api's own schema, as its own role
    readers: asyncpg.Pool | None = None  # the other services' v_* views, as finfocus_reader
    publisher: RecordPublisher | None = None
    keys: SigningKeys | None = None
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    oidc: OidcVerifier | None = None  # set when FINFOCUS_OIDC_ISSUER is
    _publisher_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[asyncpg.Connection]:
        """A read-only connection as `finfocus_reader`: all the api reads of other services."""
        assert self.readers is not None, "the api is not started"
        async with self.readers.acquire() as conn:
            yield conn

    async def bus(self) -> RecordPublisher:
        """The producer, started on first use: reads must not wait for (or fail on) the broker."""
        async with self._publisher_lock:
            if self.publisher is None:
                publisher = RecordPublisher(self.settings.kafka)
                await publisher.start()
                self.publisher = publisher
            return self.publisher

    def reader_url(self) -> tuple[str, bool]:
        """(URL, logs in as the reader itself): the reader's own LOGIN role where its URL is
        known (FINFOCUS_READER_DATABASE_URL, the embedded stack), else the service URL with
        the reader role set for the whole session (test databases: no boundary, see db.reader)."""
        s = self.settings
        own = s.reader_database_url or (None if s.database_url else s.embedded_reader_url())
        return (own, True) if own else (s.database, False)

    async def start(self) -> None:
        settings = self.settings
        self.oidc = OidcVerifier.from_settings(settings)  # a bad setting stops the start
        await migrate_url(settings.database, "api", store.MIGRATIONS_DIR)
        self.pool = await asyncpg.create_pool(
            settings.database, min_size=1, max_size=4, init=_init_connection
        )
        url, own = self.reader_url()
        server_settings = {"default_transaction_read_only": "on"}
        if not own:
            server_settings["role"] = READER_ROLE
        self.readers = await asyncpg.create_pool(
            url, min_size=1, max_size=8, init=_init_connection, server_settings=server_settings
        )
        self.keys = service_keys(settings.home, [ISSUER])
        self.throttle = LoginThrottle(settings.api_login_attempts, settings.api_login_window_s)

    async def stop(self) -> None:
        if self.publisher is not None:
            await self.publisher.stop()
            self.publisher = None
        for pool in (self.readers, self.pool):
            if pool is not None:
                await pool.close()
        self.pool = self.readers = None
