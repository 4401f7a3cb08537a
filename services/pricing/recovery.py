"""After the embedded broker restarted empty: publish the lines downstream may have missed.

The embedded broker keeps nothing across a restart. Rows that reached pricing through an
import are published again by ingest, priced again and so re-published; rows an upstream
producer published straight onto raw-billing are not: pricing stored them, but a downstream
service that had not consumed them from priced-resources before the crash would never see
them. The stack passes `FINFOCUS_BROKER_RECOVER_SINCE`, the last moment every consumer group
had consumed everything; every line stored or updated since then (less `MARGIN`, for health
files written a moment apart) goes out again as the same PricedRecord v1. Downstream copies
are idempotent on x_RecordId, so overlap with ingest's replay or the live stream is harmless.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from finfocus.telemetry import trace_headers
from schemas.topics import Topics, schema_headers

logger = logging.getLogger(__name__)

#: health files of the services are written ~2 s apart; lines stored this long before the
#: quiescent point go out again too
MARGIN = timedelta(seconds=30)
#: lines per publish_batched call (and per progress update)
BATCH = 5000
_PRICED_HEADERS = [(k, v.encode()) for k, v in schema_headers("PricedRecord").items()]


async def recover_broker(
    store, publisher, tracer, epoch: str, since: datetime | None
) -> dict[str, Any] | None:
    """Publish again every line stored since `since` under the new broker `epoch`, record the
    recovery, then the epoch. None when the epoch is already recorded.

    Without `since` (a stack start, not a broker loss: nothing is known to be missing) the
    epoch is recorded only. A failed recovery leaves the old epoch, so the next start of the
    service tries again with the same window."""
    if await store.last_epoch() == epoch:
        return None
    if since is None:
        await store.record_epoch(epoch)
        return None
    start = since - MARGIN
    recovery = await store.start_recovery(epoch, start)
    rows = 0
    try:
        async for lines in store.lines_stored_since(start, BATCH):
            with tracer.start_as_current_span(
                "pricing.recover", attributes={"rows": len(lines)}
            ) as span:
                headers = trace_headers(span) + _PRICED_HEADERS
                await publisher.publish_batched(
                    Topics.PRICED_RESOURCES,
                    [(key.encode(), body.encode(), headers) for key, body in lines],
                )
            rows += len(lines)
            await store.recovery_progress(recovery, rows)
    except Exception as exc:
        await store.recovery_progress(
            recovery, rows, "failed", f"{type(exc).__name__}: {exc}"[:500]
        )
        raise
    await store.recovery_progress(recovery, rows, "completed")
    await store.record_epoch(epoch)
    logger.info(
        "broker recovery",
        extra={"fields": {"epoch": epoch, "since": start.isoformat(), "rows": rows}},
    )
    return {"epoch": epoch, "rows": rows}
