"""Hostile files count nothing (issue 13 item 6): each ends with a one-line error, exit 1 or
2, a failed job (or a refusal before any job) and nothing published or stored by pricing.
Files are generated small; the latin-1 row sits past the first 32k-row batch, where the old
importer had already published what came before it."""

from __future__ import annotations

import gzip
import os
import random
from pathlib import Path

import asyncpg
import pytest

from tests.integration.test_ingest_focus import finfocus, month_file, pricing  # noqa: F401 - fixture

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

HEADER = (
    "ProviderName,BillingAccountId,ServiceName,ChargeCategory,ChargePeriodStart,"
    "ChargePeriodEnd,BillingCurrency,BilledCost\n"
)


def row(i: int, *, start: str | None = None) -> str:
    day = i % 28 + 1
    start = start or f"2024-11-{day:02d}T00:00:00Z"
    return f"AWS,000333,EC2,Usage,{start},2024-11-{day:02d}T01:00:00Z,USD,{i % 97}.25\n"


def csv_text(rows: int) -> str:
    return HEADER + "".join(row(i) for i in range(rows))


def hostile_files(tmp: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    whole = gzip.compress(csv_text(3000).encode())
    files["truncated gzip"] = tmp / "truncated.csv.gz"
    files["truncated gzip"].write_bytes(whole[: int(len(whole) * 0.7)])

    late = tmp / "late-latin1.csv"
    with late.open("wb") as out:
        out.write(csv_text(40_000).encode())
        out.write(
            "AWS,000333,Caf\u00e9,Usage,2024-11-02T00:00:00Z,2024-11-02T01:00:00Z,USD,1.00\n".encode(
                "latin-1"
            )
        )
        out.write("".join(row(i) for i in range(50)).encode())
    files["late bad encoding"] = late

    quote = tmp / "quote.csv"
    quote.write_text(
        csv_text(200)
        + 'AWS,000333,"EC2 unbalanced,Usage,2024-11-01T00:00:00Z,2024-11-01T01:00:00Z,USD,1\n'
        + csv_text(20)[len(HEADER) :]
    )
    files["unbalanced quote"] = quote

    short = tmp / "short.csv"
    short.write_text(csv_text(100) + "AWS,000333,EC2\n" + csv_text(10)[len(HEADER) :])
    files["short row"] = short

    nul = tmp / "nul.csv"
    nul.write_text(
        csv_text(100) + "AWS,000333,EC\x002,Usage,2024-11-01T00:00:00Z,2024-11-01T01:00:00Z,USD,1\n"
    )
    files["NUL byte"] = nul

    rng = random.Random(13)
    fake = tmp / "fake.parquet"
    fake.write_bytes(b"PAR1" + bytes(rng.randrange(256) for _ in range(2048)) + b"PAR1")
    files["fake Parquet"] = fake

    binary = tmp / "blob.csv"
    binary.write_bytes(bytes(rng.randrange(256) for _ in range(8192)))
    files["binary file"] = binary

    header_only = tmp / "header-only.csv"
    header_only.write_text(HEADER)
    files["header-only file"] = header_only

    dates = tmp / "dates.csv"
    dates.write_text(
        HEADER
        + row(1, start="0001-01-01T00:00:00+05:00")
        + row(2, start="10000-01-01T00:00:00Z")
        + row(3, start="0000-06-01T00:00:00Z")
    )
    files["out-of-range dates"] = dates

    fifo = tmp / "pipe.csv"
    os.mkfifo(fifo)
    files["FIFO"] = fifo
    files["/dev/zero"] = Path("/dev/zero")
    return files


async def test_hostile_files_end_in_one_line_errors_and_count_nothing(settings, tmp_path, pricing):  # noqa: F811
    for name, path in hostile_files(tmp_path).items():
        code, out, err = await finfocus(
            settings, "ingest", str(path), "--wait", "--wait-timeout", "20"
        )
        assert code in (1, 2), f"{name}: exit {code}\n{out}\n{err}"
        lines = [line for line in err.splitlines() if line.strip()]
        assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("error"), (
            f"{name}: {err!r}"
        )

    conn = await asyncpg.connect(settings.database)
    try:
        jobs = await conn.fetch("SELECT status, rows_published, error FROM ingest.v_import_jobs")
        assert jobs and all(j["status"] == "failed" and j["error"] for j in jobs), jobs
        assert await conn.fetchval("SELECT count(*) FROM ingest.published_chunks") == 0
    finally:
        await conn.close()

    # pricing was listening all along: a good file is stored, and it is all that is
    good = month_file(tmp_path / "good.csv", ["1.00", "2.00"])
    code, out, err = await finfocus(settings, "ingest", str(good), "--wait", "--wait-timeout", "60")
    assert code == 0, err
    conn = await asyncpg.connect(settings.database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM pricing.v_cost_lines") == 2
    finally:
        await conn.close()
