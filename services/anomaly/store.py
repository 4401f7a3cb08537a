"""The `anomaly` schema: cost lines, scope versions, raised anomalies, feedback."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg
import numpy as np

from services.anomaly.detectors import WalkState
from services.anomaly.domain import CostLine, Monitor, Raised, SeriesKey, StoredLine

#: errors that come from a record's content, not from the database being unavailable
BAD_DATA = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    ValueError,
    ArithmeticError,
)

COLUMNS = {
    "ProviderName": "provider",
    "BillingAccountId": "billing_account_id",
    "SubAccountId": "account",
    "ServiceName": "service_name",
    "ServiceCategory": "service_category",
    "RegionId": "region_id",
    "ResourceType": "resource_type",
    "SkuId": "sku_id",
    "ResourceId": "resource_id",
    "ChargeCategory": "charge_category",
}

LINE_COLUMNS = (
    "record_id",
    "provider",
    "billing_account_id",
    "account",
    "service_name",
    "service_category",
    "region_id",
    "sku_id",
    "resource_id",
    "resource_type",
    "charge_category",
    "charge_frequency",
    "recurring",
    "tags",
    "currency",
    "day",
    "period_end",
    "cost",
    "priced",
    "billing_scope",
    "billing_scope_version",
)

CREATE_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS stage_lines (
    record_id text, provider text, billing_account_id text, account text, service_name text,
    service_category text, region_id text, sku_id text, resource_id text, resource_type text,
    charge_category text, charge_frequency text, recurring boolean, tags text, currency text,
    day date, period_end timestamptz, cost numeric, priced boolean, billing_scope text,
    billing_scope_version bigint
) ON COMMIT DELETE ROWS
"""

UPSERT_LINES = f"""
WITH incoming AS (
    SELECT DISTINCT ON (record_id) {", ".join(c if c != "tags" else "tags::jsonb" for c in LINE_COLUMNS)}
    FROM stage_lines
), earlier AS (
    SELECT c.record_id, c.day, c.cost, c.priced, c.recurring, c.billing_scope, c.billing_scope_version
    FROM anomaly.cost_lines c JOIN incoming i USING (record_id)
), written AS (
    INSERT INTO anomaly.cost_lines ({", ".join(LINE_COLUMNS)})
    SELECT * FROM incoming
    ON CONFLICT (record_id) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in LINE_COLUMNS if c != "record_id")}, stored_at = now()
    RETURNING 1
)
SELECT * FROM earlier
"""

#: how many of a batch's scopes arrive in a newer version than stored (a restatement)
RESTATED = """
SELECT count(*) FROM unnest($1::text[], $2::bigint[]) AS i(billing_scope, version)
JOIN anomaly.scope_versions s USING (billing_scope) WHERE i.version > s.version
"""

BUMP_SCOPES = """
INSERT INTO anomaly.scope_versions (billing_scope, version)
SELECT * FROM unnest($1::text[], $2::bigint[])
ON CONFLICT (billing_scope) DO UPDATE SET version = GREATEST(anomaly.scope_versions.version, EXCLUDED.version)
"""

SAVE_ANOMALY = """
INSERT INTO anomaly.anomalies (anomaly_id, monitor, series_key, dimension, currency, window_start,
    window_end, expected_cost, actual_cost, impact, severity, status, detector, kind,
    first_detected_at, detected_at, body)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15, $16)
ON CONFLICT (anomaly_id) DO UPDATE SET window_end = EXCLUDED.window_end,
    expected_cost = EXCLUDED.expected_cost, actual_cost = EXCLUDED.actual_cost,
    impact = EXCLUDED.impact, severity = EXCLUDED.severity, status = EXCLUDED.status,
    kind = EXCLUDED.kind, detected_at = EXCLUDED.detected_at, body = EXCLUDED.body
"""

RAISED_MANY = """
SELECT a.series_key, a.anomaly_id, a.window_start, a.window_end, a.expected_cost, a.actual_cost, a.status, f.verdict
FROM anomaly.anomalies a LEFT JOIN anomaly.feedback f USING (anomaly_id)
WHERE a.monitor = $1 AND a.series_key = ANY($2::text[])
"""

SUPPRESSED_MANY = """
SELECT a.series_key, max(a.window_end) AS until FROM anomaly.anomalies a JOIN anomaly.feedback f USING (anomaly_id)
WHERE a.monitor = $1 AND a.series_key = ANY($2::text[]) AND f.verdict IN ('no', 'planned')
GROUP BY a.series_key
"""

SAVE_STATE = """
INSERT INTO anomaly.series_state VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (monitor, series_key) DO UPDATE SET start_day = $3, fingerprint = $4, steps = $5,
    regime_start = $6, run_dir = $7, run_start = $8, arrays = $9
"""

SAVE_FEEDBACK = """
INSERT INTO anomaly.feedback (anomaly_id, verdict, note, given_at, actor) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (anomaly_id) DO UPDATE SET verdict = EXCLUDED.verdict, note = EXCLUDED.note,
    given_at = EXCLUDED.given_at, actor = EXCLUDED.actor
"""
AUDIT_FEEDBACK = """
INSERT INTO anomaly.feedback_audit (anomaly_id, verdict, note, actor) VALUES ($1, $2, $3, $4)
"""


def series_key_text(key: SeriesKey) -> str:
    return json.dumps([list(key.values), key.currency], separators=(",", ":"))


def monitor_ref(monitor: Monitor) -> str:
    """The monitor's name and what slices its lines: editing its dimensions or filters in
    YAML starts its stored points afresh."""
    shape = json.dumps(
        [list(monitor.dimensions), [list(f) for f in monitor.filters]], separators=(",", ":")
    )
    return f"{monitor.name}:{hashlib.sha256(shape.encode()).hexdigest()[:12]}"


@dataclass
class Stored:
    """What storing a batch learned: earlier copies of its records, the current version of
    its scopes, and the points epoch (bumped when a scope was restated)."""

    previous: dict[str, StoredLine] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    epoch: int = 0


#: columns that are never null: compared bare, so their indexes serve series queries
NOT_NULL = {"provider", "billing_account_id", "account", "service_name"}


def _dim_sql(name: str, params: list) -> str:
    if name.startswith("tag:"):
        params.append(name[4:])
        return f"coalesce(tags ->> ${len(params)}, '')"
    column = COLUMNS[name]
    return column if column in NOT_NULL else f"coalesce({column}, '')"


def series_filter(monitor: Monitor, key: SeriesKey, params: list) -> str:
    """SQL conditions selecting the lines of one series (parameters appended to `params`)."""
    conds = []
    params.append(key.currency)
    conds.append(f"currency = ${len(params)}")
    for name, value in [*zip(monitor.dimensions, key.values, strict=True), *monitor.filters]:
        expr = _dim_sql(name, params)
        params.append(value)
        conds.append(f"{expr} = ${len(params)}")
    return " AND ".join(conds)


def filters_sql(monitor: Monitor, params: list) -> str:
    conds = ["true"]
    for name, value in monitor.filters:
        expr = _dim_sql(name, params)
        params.append(value)
        conds.append(f"{expr} = ${len(params)}")
    return " AND ".join(conds)


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


@dataclass
class Prefetched:
    """Everything the evaluation of one series reads, fetched for many series at once."""

    points: dict[date, Decimal] = field(default_factory=dict)
    high: datetime | None = None
    first: date | None = None
    state: tuple[date, str, WalkState] | None = None
    raised: list[Raised] = field(default_factory=list)
    suppressed_until: date | None = None


class Tx:
    """The queries of one handler transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def lock_series(self, keys: Sequence[SeriesKey]) -> None:
        """Serialise the batches that touch the same series, before their lines are stored,
        so the earlier copy a batch reads of a redelivered record is the committed one."""
        await self.conn.execute(
            """SELECT pg_advisory_xact_lock(h) FROM (
                   SELECT DISTINCT hashtextextended(m || k, 0) AS h
                   FROM unnest($1::text[], $2::text[]) AS t(m, k) ORDER BY 1) s""",
            [k.monitor for k in keys],
            [series_key_text(k) for k in keys],
        )

    async def store_lines(self, lines: Sequence[CostLine]) -> Stored:
        out = Stored()
        if not lines:
            out.epoch = await self.conn.fetchval("SELECT epoch FROM anomaly.points_epoch")
            return out
        await self.conn.execute(CREATE_STAGE)
        await self.conn.copy_records_to_table(
            "stage_lines",
            columns=list(LINE_COLUMNS),
            records=[
                (
                    ln.record_id,
                    ln.provider,
                    ln.billing_account_id,
                    ln.account,
                    ln.service_name,
                    ln.service_category,
                    ln.region_id,
                    ln.sku_id,
                    ln.resource_id,
                    ln.resource_type,
                    ln.charge_category,
                    ln.charge_frequency,
                    ln.recurring,
                    json.dumps(dict(ln.tags)),
                    ln.currency,
                    ln.day,
                    ln.period_end,
                    ln.cost,
                    ln.priced,
                    ln.billing_scope,
                    ln.billing_scope_version,
                )
                for ln in lines
            ],
        )
        earlier = await self.conn.fetch(UPSERT_LINES)
        await self.conn.execute("TRUNCATE stage_lines")
        scopes: dict[str, int] = {}
        for ln in lines:
            if ln.billing_scope is not None and ln.billing_scope_version is not None:
                scopes[ln.billing_scope] = max(
                    scopes.get(ln.billing_scope, ln.billing_scope_version), ln.billing_scope_version
                )
        restated = False
        if scopes:
            restated = bool(await self.conn.fetchval(RESTATED, list(scopes), list(scopes.values())))
            await self.conn.execute(BUMP_SCOPES, list(scopes), list(scopes.values()))
        wanted = set(scopes) | {
            r["billing_scope"] for r in earlier if r["billing_scope"] is not None
        }
        if wanted:
            out.versions = dict(
                await self.conn.fetch(
                    "SELECT billing_scope, version FROM anomaly.scope_versions WHERE billing_scope = ANY($1::text[])",
                    list(wanted),
                )
            )
        for r in earlier:
            scope, version = r["billing_scope"], r["billing_scope_version"]
            live = scope is None or version is None or out.versions.get(scope) == version
            cost = r["cost"] if live and r["priced"] and not r["recurring"] else Decimal(0)
            out.previous[r["record_id"]] = StoredLine(r["day"], cost)
        if restated:
            out.epoch = await self.conn.fetchval(
                "UPDATE anomaly.points_epoch SET epoch = epoch + 1 RETURNING epoch"
            )
        else:
            out.epoch = await self.conn.fetchval("SELECT epoch FROM anomaly.points_epoch")
        return out

    async def update_points(
        self,
        monitor: Monitor,
        keys: Sequence[SeriesKey],
        stored: Stored,
        deltas: dict[SeriesKey, dict[date, tuple[Decimal, datetime | None]]],
    ) -> None:
        """Bring the daily points of `keys` up to date: by the batch's `deltas`, or recomputed
        from the lines when they predate the points epoch (see 0005_series_points)."""
        ref = monitor_ref(monitor)
        texts = [series_key_text(k) for k in keys]
        current = {
            r["series_key"]
            for r in await self.conn.fetch(
                "SELECT series_key FROM anomaly.series_points_epoch"
                " WHERE monitor_ref = $1 AND series_key = ANY($2::text[]) AND epoch = $3",
                ref,
                texts,
                stored.epoch,
            )
        }
        stale = [k for k, t in zip(keys, texts, strict=True) if t not in current]
        if stale:
            await self._recompute_points(monitor, ref, stale, stored.epoch)
        rows = [
            (t, day, cost, high)
            for k, t in zip(keys, texts, strict=True)
            if t in current
            for day, (cost, high) in deltas.get(k, {}).items()
        ]
        if rows:
            await self.conn.execute(
                """INSERT INTO anomaly.series_points
                   SELECT $1, t.k, t.day, t.cost, coalesce(t.high, '-infinity')
                   FROM unnest($2::text[], $3::date[], $4::numeric[], $5::timestamptz[]) AS t(k, day, cost, high)
                   ON CONFLICT (monitor_ref, series_key, day) DO UPDATE
                   SET cost = anomaly.series_points.cost + EXCLUDED.cost,
                       high = GREATEST(anomaly.series_points.high, EXCLUDED.high)""",
                ref,
                *map(list, zip(*rows, strict=True)),
            )

    async def prefetch(
        self,
        monitor: Monitor,
        keys: Sequence[SeriesKey],
        suppress_days: int,
        *,
        max_days: int | None = None,
        lateness: timedelta = timedelta(0),
    ) -> dict[SeriesKey, Prefetched]:
        """Read what the evaluation of many series of one monitor needs (points brought up to
        date by `update_points`), in a few queries for all of them.

        With `max_days`, only the points the evaluation reads come back: from `max_days`
        before the last complete day (`complete_through` of the series' watermark, in SQL),
        so a long history is not loaded for every batch; `first` and `high` are still those
        of the whole series."""
        ref = monitor_ref(monitor)
        texts = [series_key_text(k) for k in keys]
        out = {k: Prefetched() for k in keys}
        by_text = dict(zip(texts, keys, strict=True))
        for r in await self.conn.fetch(
            """WITH s AS (
                   SELECT series_key, min(day) AS first, max(high) AS high
                   FROM anomaly.series_points
                   WHERE monitor_ref = $1 AND series_key = ANY($2::text[])
                   GROUP BY series_key)
               SELECT s.series_key, s.first, s.high, p.day, p.cost
               FROM s JOIN anomaly.series_points p
                 ON p.monitor_ref = $1 AND p.series_key = s.series_key
               WHERE $3::int IS NULL
                  OR p.day >= ((s.high - make_interval(secs => $4)) AT TIME ZONE 'UTC')::date - 1 - $3::int""",
            ref,
            texts,
            max_days,
            lateness.total_seconds(),
        ):
            p = out[by_text[r["series_key"]]]
            p.points[r["day"]] = r["cost"]
            p.high, p.first = r["high"], r["first"]
        for r in await self.conn.fetch(
            "SELECT * FROM anomaly.series_state WHERE monitor = $1 AND series_key = ANY($2::text[])",
            monitor.name,
            texts,
        ):
            arrays = np.frombuffer(r["arrays"], dtype="<f8").reshape(4, r["steps"])
            y, learn, expected, scores = (a.copy() for a in arrays)
            state = WalkState(
                y, learn, expected, scores, r["regime_start"], r["run_dir"], r["run_start"]
            )
            out[by_text[r["series_key"]]].state = (r["start_day"], r["fingerprint"], state)
        for r in await self.conn.fetch(RAISED_MANY, monitor.name, texts):
            key = by_text[r["series_key"]]
            out[key].raised.append(
                Raised(
                    r["anomaly_id"],
                    key,
                    r["window_start"].date(),
                    r["window_end"].date(),
                    r["expected_cost"],
                    r["actual_cost"],
                    r["status"],
                    r["verdict"],
                )
            )
        for r in await self.conn.fetch(SUPPRESSED_MANY, monitor.name, texts):
            out[by_text[r["series_key"]]].suppressed_until = r["until"].date() + timedelta(
                days=suppress_days
            )
        return out

    async def _recompute_points(
        self, monitor: Monitor, ref: str, keys: Sequence[SeriesKey], epoch: int
    ) -> None:
        """Rebuild the points of `keys` from their live lines and stamp them with `epoch`."""
        texts = [series_key_text(k) for k in keys]
        params: list = []
        n = len(monitor.dimensions)
        for i in range(n):
            params.append([k.values[i] for k in keys])
        params.append([k.currency for k in keys])
        params.append(texts)
        casts = ", ".join(f"${i + 1}::text[]" for i in range(n + 2))
        names = ", ".join([*(f"d{i}" for i in range(n)), "cur", "series_key"])
        conds = [f"{_dim_sql(d, params)} = k.d{i}" for i, d in enumerate(monitor.dimensions)]
        conds.append("l.currency = k.cur")
        conds.append(filters_sql(monitor, params))
        params.append(ref)
        await self.conn.execute(
            "DELETE FROM anomaly.series_points WHERE monitor_ref = $1 AND series_key = ANY($2::text[])",
            ref,
            texts,
        )
        await self.conn.execute(
            f"""INSERT INTO anomaly.series_points
                SELECT ${len(params)}, k.series_key, l.day,
                       coalesce(sum(l.cost) FILTER (WHERE l.priced AND NOT l.recurring), 0), max(l.period_end)
                FROM unnest({casts}) AS k({names})
                JOIN anomaly.live_lines l ON {" AND ".join(conds)}
                GROUP BY k.series_key, l.day""",
            *params,
        )
        await self.conn.execute(
            """INSERT INTO anomaly.series_points_epoch SELECT $1, k, $3 FROM unnest($2::text[]) AS k
               ON CONFLICT (monitor_ref, series_key) DO UPDATE SET epoch = EXCLUDED.epoch""",
            ref,
            texts,
            epoch,
        )

    async def save_states(
        self, monitor: Monitor, items: Sequence[tuple[SeriesKey, date, str, WalkState]]
    ) -> None:
        if items:
            await self.conn.executemany(
                SAVE_STATE,
                [
                    (
                        monitor.name,
                        series_key_text(k),
                        start,
                        fp,
                        len(st.y),
                        st.regime_start,
                        st.run_dir,
                        st.run_start,
                        np.stack([st.y, st.learn, st.expected, st.scores]).astype("<f8").tobytes(),
                    )
                    for k, start, fp, st in items
                ],
            )

    async def breakdown(
        self, monitor: Monitor, key: SeriesKey, dims: Sequence[str], start: date, end: date
    ) -> dict[tuple[tuple[str, str], ...], Decimal]:
        """Detection cost of [start, end) per combination of the sub-dimensions `dims`."""
        params: list = []
        where = series_filter(monitor, key, params)
        exprs = [_dim_sql(d, params) for d in dims]
        params += [start, end]
        rows = await self.conn.fetch(
            f"""SELECT {", ".join(f"{e} AS d{i}" for i, e in enumerate(exprs))}, sum(cost) AS cost
                FROM anomaly.live_lines
                WHERE {where} AND priced AND NOT recurring AND day >= ${len(params) - 1} AND day < ${len(params)}
                GROUP BY {", ".join(str(i + 1) for i in range(len(exprs)))}""",
            *params,
        )
        return {tuple((d, r[f"d{i}"]) for i, d in enumerate(dims)): r["cost"] for r in rows}

    async def top_values(
        self, monitor: Monitor, n: int, days: int = 30
    ) -> set[tuple[tuple[str, ...], str]]:
        """The `n` costliest (dimension values, currency) of the monitor over its last `days`
        days, from the points kept for every value it has seen lines of."""
        rows = await self.conn.fetch(
            """SELECT series_key, sum(cost) AS total FROM anomaly.series_points
               WHERE monitor_ref = $1
                 AND day >= (SELECT max(day) FROM anomaly.series_points WHERE monitor_ref = $1) - $2::int
               GROUP BY series_key ORDER BY total DESC, series_key LIMIT $3""",
            monitor_ref(monitor),
            days,
            n,
        )
        out = set()
        for r in rows:
            values, currency = json.loads(r["series_key"])
            out.add((tuple(values), currency))
        return out

    async def save_anomaly(
        self, monitor: str, key: SeriesKey, body: dict, kind: str, now: datetime
    ) -> None:
        await self.conn.execute(
            SAVE_ANOMALY,
            body["anomaly_id"],
            monitor,
            series_key_text(key),
            body["dimension"],
            body["currency"],
            datetime.fromisoformat(body["window_start"]),
            datetime.fromisoformat(body["window_end"]),
            Decimal(body["expected_cost"]),
            Decimal(body["actual_cost"]),
            Decimal(body["impact"]),
            body["severity"],
            body["status"],
            body["detector"],
            kind,
            now,
            body,
        )

    async def anomaly_body(self, anomaly_id: str) -> tuple[dict, str] | None:
        row = await self.conn.fetchrow(
            "SELECT body, kind FROM anomaly.anomalies WHERE anomaly_id = $1", anomaly_id
        )
        return (row["body"], row["kind"]) if row else None

    async def save_feedback(
        self,
        anomaly_id: str,
        verdict: str,
        note: str | None,
        at: datetime,
        actor: str | None = None,
    ) -> None:
        await self.conn.execute(SAVE_FEEDBACK, anomaly_id, verdict, note, at, actor)
        if actor is not None:
            await self.conn.execute(AUDIT_FEEDBACK, anomaly_id, verdict, note, actor)

    async def acknowledge(
        self,
        anomaly_id: str,
        verdict: str,
        note: str | None,
        at: datetime,
        actor: str | None = None,
    ) -> dict | None:
        """Record feedback (audited with its verified `actor`) and mark the anomaly
        acknowledged; its new body, or None if unknown."""
        row = await self.conn.fetchrow(
            "SELECT body, status FROM anomaly.anomalies WHERE anomaly_id = $1 FOR UPDATE",
            anomaly_id,
        )
        if row is None:
            return None
        await self.save_feedback(anomaly_id, verdict, note, at, actor)
        body = dict(row["body"])
        if row["status"] != "resolved":
            body["status"] = "acknowledged"
        await self.conn.execute(
            "UPDATE anomaly.anomalies SET status = $2, body = $3 WHERE anomaly_id = $1",
            anomaly_id,
            body["status"],
            body,
        )
        return body

    async def mark_pending(self, items: Sequence[tuple[str, str | None]]) -> None:
        """Flag saved anomalies as not yet on the topic (with their cause's traceparent)."""
        if items:
            await self.conn.executemany(
                "UPDATE anomaly.anomalies SET pending_publish = true, cause_traceparent = $2 WHERE anomaly_id = $1",
                items,
            )


class AnomalyStore:
    """Owns schema `anomaly`; `transaction()` yields a `Tx` inside one database transaction."""

    def __init__(self, runtime) -> None:
        self._runtime = runtime

    async def mark_published(self, ids: Sequence[str]) -> None:
        if ids:
            await self._runtime.pool.execute(
                "UPDATE anomaly.anomalies SET pending_publish = false WHERE anomaly_id = ANY($1::text[])",
                list(ids),
            )

    async def requeue_since(self, epoch: str, since: datetime | None) -> int | None:
        """After a broker loss (a new `epoch`): put the anomalies detected or updated since
        `since` back into the outbox, and record the epoch, in one transaction; None when the
        epoch is already recorded. Without `since` (a stack start) the epoch only."""
        async with self._runtime.pool.acquire() as conn, conn.transaction():
            if await conn.fetchval("SELECT epoch FROM anomaly.broker_epoch FOR UPDATE") == epoch:
                return None
            count = 0
            if since is not None:
                count = int(
                    (
                        await conn.execute(
                            "UPDATE anomaly.anomalies SET pending_publish = true WHERE detected_at >= $1",
                            since,
                        )
                    ).split()[-1]
                )
            await conn.execute(
                "INSERT INTO anomaly.broker_epoch (epoch) VALUES ($1) ON CONFLICT (only_row) "
                "DO UPDATE SET epoch = EXCLUDED.epoch, recorded_at = now()",
                epoch,
            )
            return count

    async def unpublished(self, older_than_s: float | None = 30.0) -> list[tuple[dict, str | None]]:
        """Anomalies saved but not confirmed on the topic for a while (a failed publish);
        `None`: all of them (the outbox relay, right after the batch committed)."""
        rows = await self._runtime.pool.fetch(
            """SELECT body, cause_traceparent FROM anomaly.anomalies
               WHERE pending_publish
                 AND ($1::float8 IS NULL OR detected_at < now() - make_interval(secs => $1))
               ORDER BY detected_at LIMIT 1000""",
            older_than_s,
        )
        return [(r["body"], r["cause_traceparent"]) for r in rows]

    def transaction(self):
        return _TxContext(self._runtime.pool)


class _TxContext:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def __aenter__(self) -> Tx:
        self._conn = await self._pool.acquire()
        self._tr = self._conn.transaction()
        await self._tr.start()
        return Tx(self._conn)

    async def __aexit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                await self._tr.commit()
            else:
                await self._tr.rollback()
        finally:
            await self._pool.release(self._conn)


# -- monitors (migration 0012): changed only by MonitorCommand v1, audited --------------------


async def monitor_specs(conn: asyncpg.Connection) -> dict[str, dict]:
    """The stored monitors: name -> spec (the YAML entry's fields but the name)."""
    rows = await conn.fetch("SELECT name, spec FROM anomaly.monitors ORDER BY name")
    return {
        r["name"]: json.loads(r["spec"]) if isinstance(r["spec"], str) else r["spec"] for r in rows
    }


async def monitors_imported(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM anomaly.monitor_setup)"))


async def import_monitors(conn: asyncpg.Connection, source: str, specs: dict[str, dict]) -> bool:
    """The one-time import of the monitors file (or the default monitor), audited as `file`;
    False when another process did it first."""
    done = await conn.fetchval(
        "INSERT INTO anomaly.monitor_setup (source) VALUES ($1) ON CONFLICT DO NOTHING RETURNING true",
        source,
    )
    if not done:
        return False
    for name, spec in specs.items():
        await set_monitor(conn, name, spec, "file")
        await audit_monitor(
            conn,
            f"import-{name}",
            name,
            "set",
            spec,
            "applied",
            f"imported from {source}",
            "file",
            None,
        )
    return True


async def monitor_audited(conn: asyncpg.Connection, command_id: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM anomaly.monitor_audit WHERE command_id = $1)", command_id
        )
    )


async def set_monitor(conn: asyncpg.Connection, name: str, spec: dict, actor: str) -> None:
    await conn.execute(
        """INSERT INTO anomaly.monitors (name, spec, version, updated_by) VALUES ($1, $2::jsonb, 1, $3)
           ON CONFLICT (name) DO UPDATE SET spec = EXCLUDED.spec, version = monitors.version + 1,
                                            updated_at = now(), updated_by = EXCLUDED.updated_by""",
        name,
        spec,
        actor,  # the pool's jsonb codec encodes the dict
    )


async def remove_monitor(conn: asyncpg.Connection, name: str) -> None:
    await conn.execute("DELETE FROM anomaly.monitors WHERE name = $1", name)


async def audit_monitor(
    conn: asyncpg.Connection,
    command_id: str,
    name: str,
    action: str,
    spec: dict | None,
    outcome: str,
    detail: str | None,
    actor: str,
    issued_at: datetime | None,
) -> None:
    await conn.execute(
        """INSERT INTO anomaly.monitor_audit (command_id, name, action, spec, outcome, detail, actor, issued_at)
           VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8) ON CONFLICT (command_id) DO NOTHING""",
        command_id,
        name,
        action,
        spec,
        outcome,
        detail,
        actor,
        issued_at,
    )
