"""Faults on the embedded stack, with every row stored exactly once afterwards (issue 12).

Each test runs on a stack from `finfocus up --detach` in a private FINFOCUS_HOME (its own broker
and its own PostgreSQL, so killing them touches nothing else), imports a few thousand billed
rows with `finfocus ingest`, injects one fault with SIGKILL, waits until the pipeline settles,
then checks pricing's, anomaly's, forecast's and remediation's copies of the lines: every row
once, the total to the cent with the input's (Decimal), and no valid row dead-lettered. The
scenarios and the counting are bench/chaos.py's, which runs the same faults at scale.

Starting a stack is most of a scenario's time, so the faults a stack recovers from in place (a
consumer killed, `finfocus ingest` killed, the PostgreSQL postmaster killed: in that order,
the postmaster last) run one after the other on one stack for the module, each with resource
ids and a billing account of its own and counting only those; each first waits until every
service the previous fault killed runs again. The broker kills each start their own stack:
the restarted broker is empty, which every later run would feel.

The worst moment of a consumer (right after an offset commit, before its store commit) is found
by a hook loaded into the stack's processes (bench/chaoshook/sitecustomize.py) and armed by
the test: the consumer kills itself right after the offset commit that covers a third of the
rows. Its auto-commit interval is shortened to 100 ms in the same process, so a client that
commits what it was handed, ahead of the store, shows it on a few thousand rows.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.chaos import Outcome, Stack, report, run_scenario, shared_stack  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

ROWS = 4000
#: short lease and sweep, so a killed import is settled within the test (on the shared stack:
#: the sweep for the stack, the lease for the imports of ingest-kill only)
INGEST_ENV = {"FINFOCUS_INGEST_JOB_LEASE_S": "4", "FINFOCUS_INGEST_SWEEP_INTERVAL_S": "1"}
SWEEP_ENV = {"FINFOCUS_INGEST_SWEEP_INTERVAL_S": "1"}


@pytest.fixture(scope="module")
def stack():
    """One stack for the faults it recovers from in place, the commit hook loaded."""
    shared = shared_stack(env=SWEEP_ENV, autocommit_ms=100)
    try:
        shared.up()
        yield shared
    finally:
        shared.down()
        shared.discard()


def chaos(scenario: str, stack: Stack | None = None, **options) -> Outcome:
    options = {
        "rows": ROWS,
        "quiet": 12.0,
        "timeout": 90.0,
        "autocommit_ms": 100,
        # each `finfocus status` is a Python process: often only where an assertion reads what
        # it showed while the fault lasted (postgres-kill), else enough for the report
        "status_every": 5.0,
        "poll": 1.0,
        **options,
    }
    outcome = run_scenario(scenario, stack, **options)
    print(report(outcome))  # where the seconds went (phases), shown with -s or on failure
    return outcome


def assert_every_row_once(outcome: Outcome) -> None:
    assert outcome.injected, report(outcome)
    expected = outcome.expected
    found = {
        name: (c.stored, c.duplicates, c.missing, c.total) for name, c in outcome.copies.items()
    }
    wanted = {name: (expected.count, 0, 0, expected.total) for name in outcome.copies}
    assert found == wanted, report(outcome)
    assert all(c.reconciles for c in outcome.copies.values())
    assert outcome.dead.get("valid") == 0, report(outcome)


def test_pricing_killed_right_after_an_offset_commit_stores_every_row_once(stack: Stack):
    assert_every_row_once(chaos("pricing-after-commit", stack))


def test_anomaly_killed_right_after_an_offset_commit_stores_every_row_once(stack: Stack):
    assert_every_row_once(chaos("kill-anomaly", stack))


def test_remediation_killed_right_after_an_offset_commit_stores_every_row_once(stack: Stack):
    assert_every_row_once(chaos("kill-remediation", stack))


def test_ingest_killed_mid_import_counts_nothing_partial_and_a_reimport_stores_every_row_once(
    stack: Stack,
):
    outcome = chaos("ingest-kill", stack, files=3, lease_wait=30.0, env=INGEST_ENV)
    assert_every_row_once(outcome)
    jobs = outcome.after_kill["jobs"]
    assert jobs and all(j["status"] in ("completed", "failed") for j in jobs), jobs
    counted = set(outcome.after_kill["counted"].values())
    # the killed job either finished (everything counts) or failed (nothing counts)
    assert counted in ({0}, {ROWS}), outcome.after_kill


def test_postgres_killed_mid_stream_is_restarted_and_every_row_stored_once(stack: Stack):
    # last on the shared stack: nothing runs after it on a restarted postmaster
    outcome = chaos("postgres-kill", stack, at=0.0, status_every=2.0)
    assert_every_row_once(outcome)
    # `status` showed the trouble while it lasted
    trails = outcome.status["services"].values()
    assert any("degraded" in trail for trail in trails) or outcome.status["consumers_in_trouble"], (
        report(outcome)
    )


def test_broker_killed_after_an_import_published_recovers_every_row_and_new_imports():
    outcome = chaos("broker-kill", env=INGEST_ENV)
    assert_every_row_once(outcome)
    assert outcome.status["broker_restarts"] >= 1, report(outcome)


def test_broker_killed_after_pricing_stored_direct_rows_every_downstream_copy_gets_them_once():
    # rows published straight onto raw-billing (no import for ingest to replay): pricing stored
    # every one before the broker died, downstream had not necessarily consumed them; pricing
    # publishes again what it stored since the quiescent point
    outcome = chaos("broker-kill", source="direct", kill_when_priced=True, env=INGEST_ENV)
    assert_every_row_once(outcome)
    assert outcome.status["broker_restarts"] >= 1, report(outcome)
    assert any(r.startswith("pricing epoch") for r in outcome.status["recovery"]), report(outcome)
