"""The console's page routes: each asks the REST API in-process, as the caller, and renders.

Going through `/api/v1` (not the stores) keeps one source of figures and one role check:
a page shows exactly what the API returns to that session, and a viewer's page has no
approve button because the API would refuse it anyway.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from finfocus.cli.output import to_json
from services.api.console import view

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.filters["money"] = view.money
templates.env.filters["pct"] = lambda v: "–" if v is None else f"{v}%"
templates.env.globals["group_label"] = view.group_label
ROLE_RANK = {"viewer": 0, "approver": 1, "admin": 2}
NAV = (
    ("/", "Overview"),
    ("/costs", "Cost explorer"),
    ("/anomalies", "Anomalies"),
    ("/forecasts", "Forecasts & budgets"),
    ("/recommendations", "Recommendations"),
    ("/remediation", "Remediation"),
    ("/data", "Data"),
    ("/ask", "Ask"),
)


class NotSignedIn(Exception):
    pass


class Api:
    """The caller's requests to this app's REST API, in-process (no socket), with the
    caller's cookie or bearer token: the same answers and the same 401/403 a browser gets."""

    def __init__(self, request: Request) -> None:
        headers = {
            k: v
            for k, v in (
                ("cookie", request.headers.get("cookie")),
                ("authorization", request.headers.get("authorization")),
            )
            if v
        }
        import httpx  # loaded with the first console page, not at every api start

        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=request.app),
            base_url="http://console.internal",
            headers=headers,
            timeout=30,
        )

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    async def get(self, path: str, params: Any = None) -> tuple[int, Any]:
        response = await self.client.get(path, params=params)
        if response.status_code == 401:
            raise NotSignedIn
        try:
            body = response.json()
        except ValueError:
            body = None
        return response.status_code, body

    async def ok(self, path: str, params: Any = None, default: Any = None) -> Any:
        """The body of a 200, else `default` (a part the API cannot answer yet)."""
        status, body = await self.get(path, params)
        return body if status == 200 else default


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _render(request: Request, name: str, session: dict, **context: Any) -> HTMLResponse:
    role = session.get("role") or "viewer"
    data = context.pop("data", {})
    return templates.TemplateResponse(
        request,
        name,
        {
            "nav": NAV,
            "path": request.url.path,
            "session": session,
            "may_decide": ROLE_RANK.get(role, 0) >= 1,
            "may_configure": ROLE_RANK.get(role, 0) >= 2,
            # </script> cannot occur in the embedded JSON: "<" is escaped
            "page_data": to_json(data).replace("<", "\\u003c"),
            **context,
        },
    )


def _page(handler):
    """Signs the caller in (or sends them to /login) and hands the handler an `Api`."""

    async def page(request: Request) -> Response:
        try:
            async with Api(request) as api:
                status, session = await api.get("/api/v1/session")
                if status != 200 or not isinstance(session, dict):
                    raise NotSignedIn
                return await handler(request, api, session)
        except NotSignedIn:
            return _login_redirect(request)

    page.__name__ = handler.__name__
    page.__doc__ = handler.__doc__
    return page


def _window(request: Request) -> tuple[str, str]:
    first, tomorrow = view.month_to_date()
    start = request.query_params.get("from") or first.isoformat()
    end = request.query_params.get("to") or tomorrow.isoformat()
    return start, end


TREND_DAYS = 30


def _trend_start(start: str, end: str) -> str | None:
    """The start of a 30-day chart when the window is shorter (early in a month)."""
    try:
        first, last = datetime.fromisoformat(start[:10]), datetime.fromisoformat(end[:10])
    except ValueError:
        return None
    if (last - first).days >= TREND_DAYS:
        return None
    return (last - timedelta(days=TREND_DAYS)).date().isoformat()


async def favicon(_request: Request) -> Response:
    return Response(FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})


FAVICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" '
    b'fill="#14213d"/><path d="M4 12V4h7v2H6v1.5h4v2H6V12z" fill="#fca311"/></svg>'
)


async def overview(request: Request, api: Api, session: dict) -> Response:
    """Month to date against the period before, forecast, budgets, anomalies, savings."""
    start, end = _window(request)
    params = {"from": start, "to": end}
    status, summary = await api.get("/api/v1/insights/summary", params)
    error = None
    if status != 200 or not isinstance(summary, dict):
        error = (summary or {}).get("detail") if isinstance(summary, dict) else f"HTTP {status}"
        summary = {}
    trend = summary.get("trend") or []
    context_start = _trend_start(start, end)
    if context_start is not None:  # a short window: the chart shows the 30 days up to its end
        doc = (
            await api.ok(
                "/api/v1/costs", {"from": context_start, "to": end, "group_by": "daily"}, {}
            )
            or {}
        )
        trend = [
            {"date": r["group"]["daily"], "cost": r["cost"], "currency": r["currency"]}
            for r in doc.get("results") or []
        ]
    anomalies = (
        await api.ok("/api/v1/anomalies", {"since": context_start or start}, {}) or {}
    ).get("anomalies") or []
    in_window = [a for a in anomalies if str(a.get("window_start") or "")[:10] < end[:10]]
    totals = view.totals_of(summary.get("summary"))
    previous = {t["currency"]: t["totalCost"] for t in view.totals_of(summary.get("previous"))}
    rows = [
        {
            "currency": t["currency"],
            "total": t["totalCost"],
            "previous": previous.get(t["currency"]),
            "change": view.change_pct(t["totalCost"], previous.get(t["currency"])),
        }
        for t in totals
    ]
    for b in summary.get("budgets") or []:
        b["actual_pct"] = view.share_pct(b.get("actual_to_date"), b.get("amount"))
    marks = [
        {
            "date": str(a.get("window_start") or "")[:10],
            "severity": a.get("severity"),
            "id": a.get("anomaly_id"),
            "impact": a.get("impact"),
        }
        for a in in_window
    ]
    return _render(
        request,
        "overview.html",
        session,
        title="Overview",
        start=start,
        end=end,
        summary=summary,
        totals_text=view.totals_text(summary.get("summary")),
        rows=rows,
        error=error,
        anomalies=in_window[:8],
        trend_from=(context_start or start)[:10],
        data={"trend": trend, "marks": marks},
    )


def _explorer(request: Request) -> view.ExplorerQuery:
    return view.ExplorerQuery.from_params(
        dict(request.query_params), request.query_params.getlist("filter")
    )


async def _cost_document(api: Api, query: view.ExplorerQuery) -> tuple[dict, str | None]:
    status, doc = await api.get("/api/v1/costs", query.api_params())
    if status != 200 or not isinstance(doc, dict):
        detail = doc.get("detail") if isinstance(doc, dict) else None
        return {"summary": {}, "results": []}, str(detail or f"the API answered {status}")
    return doc, None


async def costs(request: Request, api: Api, session: dict) -> Response:
    """The cost explorer: `cost actual` for the query in the URL."""
    query = _explorer(request)
    doc, error = await _cost_document(api, query)
    totals = view.totals_of(doc.get("summary"))
    table = view.explorer_table(doc.get("results") or [], query, totals)
    saved = (await api.ok("/api/v1/views", None, {}) or {}).get("views")
    return _render(
        request,
        "costs.html",
        session,
        title="Cost explorer",
        query=query,
        doc=doc,
        totals_text=view.totals_text(doc.get("summary")),
        table=table,
        error=error,
        dimensions=view.DIMENSIONS,
        metrics=view.METRICS,
        saved=saved,
        csv_url=query.url("/costs.csv"),
        share_url=query.url(),
        data={"chart": view.chart_series(doc.get("results") or [], query), "bucket": query.bucket},
    )


async def costs_csv(request: Request, api: Api, session: dict) -> Response:
    """The explorer's table as CSV, for the same query."""
    query = _explorer(request)
    doc, error = await _cost_document(api, query)
    if error:
        return Response(error + "\n", status_code=400, media_type="text/plain")
    table = view.explorer_table(doc.get("results") or [], query, view.totals_of(doc.get("summary")))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(view.csv_rows(table, query))
    name = f"finfocus-costs-{query.start[:10]}-{query.end[:10]}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def anomalies(request: Request, api: Api, session: dict) -> Response:
    """Anomalies with severity, impact and status."""
    params = [
        (k, v)
        for k, v in request.query_params.multi_items()
        if k in ("since", "severity", "status") and v
    ]
    status, body = await api.get("/api/v1/anomalies", params)
    rows = (body or {}).get("anomalies") or [] if status == 200 else []
    error = (
        None
        if status == 200
        else ((body or {}).get("detail") if isinstance(body, dict) else f"HTTP {status}")
    )
    return _render(
        request,
        "anomalies.html",
        session,
        title="Anomalies",
        anomalies=rows,
        error=error,
        selected={k: request.query_params.getlist(k) for k in ("severity", "status")},
        since=request.query_params.get("since", ""),
    )


async def anomaly(request: Request, api: Api, session: dict) -> Response:
    """One anomaly: its series against the expected band, root causes, monitor, feedback."""
    anomaly_id = request.path_params["anomaly_id"]
    status, found = await api.get(f"/api/v1/anomalies/{quote(anomaly_id, safe='')}")
    if status != 200 or not isinstance(found, dict):
        listing = (await api.ok("/api/v1/anomalies", None, {}) or {}).get("anomalies") or []
        found = next((a for a in listing if a.get("anomaly_id") == anomaly_id), None)
    if not found:
        return _render(
            request,
            "missing.html",
            session,
            title="Anomaly not found",
            what=f"anomaly {anomaly_id}",
            back="/anomalies",
        )
    record = found.get("anomaly") if isinstance(found.get("anomaly"), dict) else found
    causes = record.get("root_causes") or []
    cause_sum = sum((view.decimal(c.get("contribution")) or Decimal(0) for c in causes), Decimal(0))
    dimension = record.get("dimension") or {}
    filters = [f"{_cost_key(k)}={v}" for k, v in dimension.items() if _cost_key(k)]
    day, until = (
        str(record.get("window_start") or "")[:10],
        str(record.get("window_end") or "")[:10],
    )
    explore, series = None, record.get("series") or []
    if day:
        first = (datetime.fromisoformat(day) - timedelta(days=21)).date().isoformat()
        last = (datetime.fromisoformat(until or day) + timedelta(days=3)).date().isoformat()
        query = view.ExplorerQuery(first, last, [], "daily", filters)
        explore = query.url()
        if not series:
            doc = await api.ok("/api/v1/costs", query.api_params(), {}) or {}
            series = [
                {"date": r["group"]["daily"], "actual": r["cost"]}
                for r in doc.get("results") or []
                if r.get("currency") == record.get("currency")
            ]
    return _render(
        request,
        "anomaly.html",
        session,
        title="Anomaly",
        a=record,
        causes=causes,
        cause_sum=cause_sum,
        feedback=found.get("feedback") or record.get("feedback"),
        explore=explore,
        data={"anomaly": record, "series": series},
    )


def pipeline_from_health_files(home: Path) -> list[dict]:
    """Lag per service, group and topic from the health files the services write under
    FINFOCUS_HOME/run/health (what `finfocus status` reads), where the api shares that home
    (the embedded stack); live processes only."""
    import psutil

    out: dict[tuple, dict] = {}
    for path in sorted((home / "run" / "health").glob("*.json")):
        try:
            doc = json.loads(path.read_text())
            if not psutil.pid_exists(int(doc["pid"])):
                continue
        except (OSError, ValueError, KeyError, TypeError):
            continue
        for c in doc.get("consumers") or []:
            row = out.setdefault(
                (doc.get("service"), c.get("group"), c.get("topic")),
                {
                    "service": doc.get("service"),
                    "group": c.get("group"),
                    "topic": c.get("topic"),
                    "lag": 0,
                    "partitions": 0,
                    "state": doc.get("state"),
                    "reason": doc.get("reason"),
                    "updated_at": doc.get("updated_at"),
                    "last_error": None,
                },
            )
            row["partitions"] += 1
            row["lag"] += c.get("lag") or 0
            row["last_error"] = c.get("last_error") or row["last_error"]
    return [out[k] for k in sorted(out, key=lambda k: tuple(str(x) for x in k))]


_COST_KEYS = {
    "ProviderName": "provider",
    "ServiceName": "service",
    "SubAccountId": "account",
    "BillingAccountId": "billing-account",
    "RegionId": "region",
    "ResourceId": "resource",
    "ResourceType": "type",
    "SkuId": "sku",
    "ServiceCategory": "service-category",
}


def _cost_key(name: str) -> str | None:
    if name.startswith("tag:"):
        return name
    return _COST_KEYS.get(name)


async def forecasts(request: Request, api: Api, session: dict) -> Response:
    """Per scope history + forecast with 80/95 % bands, month-end projections, budgets."""
    group_by = request.query_params.get("group_by", "")
    start = (datetime.now(UTC) - timedelta(days=45)).date().isoformat()
    fc_task = api.get("/api/v1/forecasts", {"group_by": group_by, "horizon": 45})
    history_task = api.ok("/api/v1/costs", {"from": start, "group_by": "daily"}, {})
    budgets_task = api.ok("/api/v1/budgets", None, {})
    summary_task = api.ok("/api/v1/insights/summary", None, {})
    (status, fc), history, budgets, summary = await asyncio.gather(
        fc_task, history_task, budgets_task, summary_task
    )
    forecasts_ = (fc or {}).get("forecasts") or [] if status == 200 else []
    error = (
        None
        if status == 200
        else ((fc or {}).get("detail") if isinstance(fc, dict) else f"HTTP {status}")
    )
    return _render(
        request,
        "forecasts.html",
        session,
        title="Forecasts & budgets",
        forecasts=forecasts_,
        group_by=group_by,
        error=error,
        budgets=(budgets or {}).get("budgets") or [],
        month_end=((summary or {}).get("forecast") or {}).get("monthEnd") or [],
        data={"forecasts": forecasts_[:6], "history": (history or {}).get("results") or []},
    )


async def recommendations(request: Request, api: Api, session: dict) -> Response:
    """Recommendations with expected savings; savings realised against expected."""
    state = request.query_params.get("state", "open")
    recs, savings = await asyncio.gather(
        api.ok("/api/v1/recommendations", {"state": state}, {}), api.ok("/api/v1/savings", None, {})
    )
    return _render(
        request,
        "recommendations.html",
        session,
        title="Recommendations",
        state=state,
        recs=(recs or {}).get("recommendations") or [],
        rec_totals=(recs or {}).get("totals") or [],
        savings=savings or {},
        data={"savings": (savings or {}).get("actions") or []},
    )


def _expected_saving(command: dict) -> str:
    reason = command.get("reason") or {}
    for source in (command, reason):
        for key in (
            "expected_monthly_savings",
            "expected_monthly",
            "estimated_monthly_savings",
            "expectedMonthlySavings",
        ):
            if source.get(key) is not None:
                return (
                    view.money(
                        source[key], source.get("currency") or command.get("currency") or "USD"
                    )
                    + "/month"
                )
    return "not stated"


def _describe(command: dict) -> dict:
    """What the remediation templates show of a command: target, saving, guardrail state."""
    target = command.get("target") or {}
    if isinstance(target, dict):
        where = ", ".join(
            f"{k.replace('_id', '')} {target[k]}" for k in ("account_id", "region") if target.get(k)
        )
        text = str(target.get("resource_id") or "?") + (f" ({where})" if where else "")
    else:
        text = str(target)
    guards = []
    if command.get("requires_approval"):
        guards.append("needs approval")
    if command.get("expires_at") and command.get("status") == "pending-approval":
        guards.append(f"expires {str(command['expires_at'])[:16].replace('T', ' ')}")
    result = command.get("result") or {}
    if isinstance(result, dict):
        for key in ("guardrail", "guardrails", "blocked_by", "refused"):
            if result.get(key):
                guards.append(f"{key.replace('_', ' ')}: {result[key]}")
        if command.get("status") in ("failed", "expired", "rejected") and result.get("detail"):
            guards.append(str(result["detail"])[:200])
    return {**command, "_target": text, "_saving": _expected_saving(command), "_guards": guards}


async def remediation(request: Request, api: Api, session: dict) -> Response:
    """Commands with their guardrail state and the decisions a role may take."""
    status_filter = request.query_params.get("status") or None
    status, body = await api.get(
        "/api/v1/remediation/commands", {"status": status_filter} if status_filter else None
    )
    commands = (body or {}).get("commands") or [] if status == 200 else []
    commands = [_describe(c) for c in commands]
    return _render(
        request,
        "remediation.html",
        session,
        title="Remediation",
        commands=commands,
        status_filter=status_filter or "",
    )


async def command(request: Request, api: Api, session: dict) -> Response:
    """One command: what it does, its guardrails, its audit trail."""
    command_id = request.path_params["command_id"]
    listing = (await api.ok("/api/v1/remediation/commands", None, {}) or {}).get("commands") or []
    found = next((c for c in listing if c.get("command_id") == command_id), None)
    if not found:
        return _render(
            request,
            "missing.html",
            session,
            title="Command not found",
            what=f"command {command_id}",
            back="/remediation",
        )
    found = _describe(found)
    audit = (
        await api.ok(f"/api/v1/remediation/commands/{quote(command_id, safe='')}/audit", None, {})
        or {}
    )
    return _render(
        request, "command.html", session, title="Command", c=found, audit=audit.get("audit") or []
    )


async def data(request: Request, api: Api, session: dict) -> Response:
    """Ingest jobs, plugin health and the pipeline's lag per service."""
    jobs, plugins, pipeline = await asyncio.gather(
        api.ok("/api/v1/ingest/jobs", {"limit": 50}, {}),
        api.ok("/api/v1/plugins/health", None, {}),
        api.ok("/api/v1/pipeline/health", None, None),
    )
    if not pipeline:
        pipeline = {
            "services": pipeline_from_health_files(Path(request.app.state.ctx.settings.home))
        }
    return _render(
        request,
        "data.html",
        session,
        title="Data",
        jobs=(jobs or {}).get("jobs") or [],
        plugins=(plugins or {}).get("plugins") or [],
        pipeline=pipeline,
    )


async def ask(request: Request, api: Api, session: dict) -> Response:
    """A question in words: the page's script posts it to `/api/v1/ai/query` with the session's
    CSRF token (the API logs it as this user); `?q=` (the overview's box) asks it on load."""
    return _render(
        request,
        "ask.html",
        session,
        title="Ask",
        question=request.query_params.get("q", "")[:2000],
    )


def register(app: FastAPI) -> None:
    """Mounts the pages and /static on `app` (called by `services.api.app` after its routers)."""
    app.add_api_route("/favicon.ico", favicon, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="console-static")
    for path, handler in (
        ("/", overview),
        ("/costs", costs),
        ("/costs.csv", costs_csv),
        ("/anomalies", anomalies),
        ("/anomalies/{anomaly_id}", anomaly),
        ("/forecasts", forecasts),
        ("/budgets", forecasts),
        ("/recommendations", recommendations),
        ("/remediation", remediation),
        ("/remediation/{command_id}", command),
        ("/data", data),
        ("/ask", ask),
    ):
        app.add_api_route(
            path,
            _page(handler),
            methods=["GET"],
            include_in_schema=False,
            response_class=HTMLResponse,
        )
