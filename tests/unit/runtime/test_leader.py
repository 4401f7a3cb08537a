"""One leader per service among its instances (finfocus/leader.py), on the real PostgreSQL.

Waits are bounds for a failure to show, never measured: each ends as soon as what it waits
for happened."""

from __future__ import annotations

import asyncio

import asyncpg
from prometheus_client import REGISTRY

from finfocus.leader import Leader, lock_key

BOUND_S = 20.0


class Calls:
    def __init__(self) -> None:
        self.elected = asyncio.Event()
        self.nudged = asyncio.Event()


def leader(url: str, service: str, calls: Calls, name: str) -> Leader:
    return Leader(
        service,
        url,
        on_elected=calls.elected.set,
        on_nudge=calls.nudged.set,
        retry_s=0.2,
        check_s=2.0,
        instance=name,
    )


def gauge(service: str) -> float | None:
    return REGISTRY.get_sample_value("finfocus_periodic_leader", {"service": service})


async def holders(url: str, service: str) -> int:
    """Sessions that hold the service's lock, as PostgreSQL sees them."""
    key = lock_key(service)
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND ((classid::bigint << 32) | objid::bigint) = $1",
            key,
        )
    finally:
        await conn.close()


async def test_one_of_two_instances_leads_and_hears_what_the_other_stored(database_url: str):
    a_calls, b_calls = Calls(), Calls()
    a = leader(database_url, "svc-a", a_calls, "a")
    b = leader(database_url, "svc-a", b_calls, "b")
    await a.start()
    await b.start()
    try:
        assert a.leading and not b.leading
        assert a_calls.elected.is_set() and not b_calls.elected.is_set()
        assert gauge("svc-a") is not None
        b.nudge()  # rows stored by the follower: the leader's work is due
        await asyncio.wait_for(a_calls.nudged.wait(), BOUND_S)
        a.nudge()  # the leader's own: nothing to forward
        assert not b_calls.nudged.is_set()
        assert not b.leading
    finally:
        await b.stop()
        await a.stop()


async def test_the_follower_takes_over_when_the_leaders_socket_dies(database_url: str):
    a_calls, b_calls = Calls(), Calls()
    a = leader(database_url, "svc-b", a_calls, "a")
    b = leader(database_url, "svc-b", b_calls, "b")
    await a.start()
    await b.start()
    try:
        assert a.leading and not b.leading
        # what kill -9 leaves: the socket closed without a goodbye to the server
        assert a._task is not None
        a._task.cancel()
        await asyncio.gather(a._task, return_exceptions=True)
        a._task = None
        assert a._conn is not None
        a._conn.terminate()
        await asyncio.wait_for(b_calls.elected.wait(), BOUND_S)
        assert b.leading and not a.leading
        assert await holders(database_url, "svc-b") == 1
    finally:
        await b.stop()
        await a.stop()


async def test_a_stopped_leader_hands_on_and_services_do_not_exclude_each_other(
    database_url: str,
):
    a_calls, b_calls, c_calls = Calls(), Calls(), Calls()
    a = leader(database_url, "svc-c", a_calls, "a")
    b = leader(database_url, "svc-c", b_calls, "b")
    other = leader(database_url, "svc-d", c_calls, "c")
    await a.start()
    await b.start()
    await other.start()
    try:
        assert a.leading and not b.leading and other.leading
        assert gauge("svc-d") == 1.0
        await a.stop()
        assert gauge("svc-c") is None  # a stopped instance reports nothing
        await asyncio.wait_for(b_calls.elected.wait(), BOUND_S)
        assert b.leading and b.elections == 1
        assert await holders(database_url, "svc-c") == 1
    finally:
        await other.stop()
        await b.stop()
        await a.stop()


async def test_a_leader_whose_session_the_server_ended_steps_down_and_leads_again(
    database_url: str,
):
    calls = Calls()
    a = leader(database_url, "svc-e", calls, "a")
    await a.start()
    try:
        assert a.leading and a.elections == 1
        assert a._conn is not None
        pid = a._conn.get_server_pid()
        admin = await asyncpg.connect(database_url)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        for _ in range(int(BOUND_S / 0.1)):
            if a.elections == 2:
                break
            await asyncio.sleep(0.1)
        assert a.elections == 2 and a.leading
        assert await holders(database_url, "svc-e") == 1
    finally:
        await a.stop()
