"""Reads of the ingest service's `v_import_jobs`: `finfocus ingest jobs` and the api's
`ingest/jobs` list the same columns of the same rows."""

from __future__ import annotations

JOB_COLUMNS = (
    "job_id",
    "version",
    "status",
    "source",
    "format",
    "rows_read",
    "rows_published",
    "rows_rejected",
    "totals",
    "billing_scopes",
    "started_at",
    "finished_at",
    "error",
)

_SELECT = f"SELECT {', '.join(JOB_COLUMNS)}, files, rejection_reasons FROM ingest.v_import_jobs"


async def import_jobs(conn, limit: int, job_id: str | None = None) -> list[dict]:
    """One job by id (every version of it), or the `limit` newest, newest first."""
    if job_id:
        rows = await conn.fetch(_SELECT + " WHERE job_id = $1", job_id)
    else:
        rows = await conn.fetch(_SELECT + " ORDER BY version DESC LIMIT $1", limit)
    return [dict(r) for r in rows]
