"""The pure rules of import jobs: which scope changes are partial, the figures a job keeps
per scope, kept chunks that unpack to what was packed, and the fast signer's headers."""

from __future__ import annotations

from decimal import Decimal

from finfocus.signing import SigningKeys, sign, signer
from services.ingest.domain import Built, JobTally, scope_changes
from services.ingest.store import pack, unpack


def test_a_one_row_correction_of_a_month_is_partial_and_a_restatement_is_not():
    old = {
        "AWS:1:2024-10": ("job-a", {"rows": 4, "totals": {"USD": "777.72"}}),
        "AWS:2:2024-10": ("job-a", {"rows": 3, "totals": {"USD": "6"}}),
    }
    new = {
        "AWS:1:2024-10": {"rows": 1, "totals": {"USD": "1"}},
        "AWS:2:2024-10": {"rows": 2, "totals": {"USD": "3.5"}},
        "AWS:3:2024-10": {"rows": 1, "totals": {"USD": "9"}},
    }
    changes = {c.scope: c for c in scope_changes(new, old)}
    assert set(changes) == {"AWS:1:2024-10", "AWS:2:2024-10"}  # a new scope supersedes nothing
    assert changes["AWS:1:2024-10"].partial and not changes["AWS:2:2024-10"].partial
    assert (
        changes["AWS:1:2024-10"].line()
        == "AWS:1:2024-10: 4 rows, 777.72 USD (job job-a) -> 1 rows, 1 USD"
    )


def test_a_job_keeps_rows_and_totals_per_scope_and_currency():
    tally = JobTally()
    tally.add_scope("AWS:1:2024-10", "USD", 2, Decimal("1.50"))
    tally.add_scope("AWS:1:2024-10", "EUR", 1, Decimal("2"))
    tally.add_scope("AWS:1:2024-10", "USD", 1, Decimal("0.50"))
    assert tally.scope_figures() == {
        "AWS:1:2024-10": {"rows": 4, "totals": {"EUR": "2", "USD": "2"}}
    }


def test_a_kept_chunk_unpacks_to_the_records_packed():
    built = Built(keys=[b"AWS:1", b"GCP:2"], values=[b'{"a":"line\\nbreak \\u0000"}', b"{}"])
    assert unpack(pack(built)) == built.records()
    assert unpack(pack(Built())) == []


class _Secrets:
    def get(self, name):
        class Secret:
            def reveal(self):
                return "k" if name == "bus-signing/ingest" else None

        return Secret() if name == "bus-signing/ingest" else None


def test_the_batch_signer_gives_the_headers_sign_gives():
    keys = SigningKeys(_Secrets())
    fast = signer(keys, "ingest", "raw-billing")
    for value in (b"", b'{"x_BillingScope":"AWS:1:2024-10"}', bytes(range(256))):
        assert fast(value) == sign(keys, "ingest", "raw-billing", value)
