"""The admin page: FastAPI + Jinja2, server-rendered, behind :mod:`common.auth`'s bearer token.

Pages: runs (filters: kind, status, time range, model version), one run (components, plan, predicted vs measured
makespan), components (stats and trend plots as inline SVG), serving windows, registry (stable versions over time,
model loads), alerts. ``/api/runs`` is the same list as JSON; ``/metrics`` exposes store counters for Prometheus.

Auth: every page needs ``Authorization: Bearer <token>`` (401 without, 403 with a wrong one). For a browser,
``/login`` takes the token in a form and sets it as an HttpOnly, SameSite=Strict cookie that is checked the same
way (constant-time compare of the same token).
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from common.auth import AdminAuth, check_bearer, require_loopback_unless_configured
from common.errors import ConfigError
from observability import plots, queries
from observability.config import ObservabilityConfig
from observability.store import Store, open_store

log = logging.getLogger("observability.web")
TEMPLATES = Path(__file__).resolve().parent / "templates"
COOKIE = "trendflow_admin_token"
OPEN_PATHS = {"/login", "/health"}
SINCE_CHOICES = ("1h", "24h", "7d", "30d", "365d")


def _status_for(request: Request, auth: AdminAuth) -> int:
    header = request.headers.get("authorization")
    if not header and request.cookies.get(COOKIE):
        header = f"Bearer {request.cookies[COOKIE]}"
    return check_bearer(header, auth)


def _fmt_dt(v: datetime | None) -> str:
    return f"{v:%Y-%m-%d %H:%M:%S}" if v else "-"


def _pct(v: float | None) -> str:
    return f"{v:.1%}" if v is not None else "-"


def _ms(v: float | None) -> str:
    return f"{v * 1000:.1f} ms" if v is not None else "-"


def _bytes(v: int | None) -> str:
    return f"{v / 2**20:.0f} MiB" if v else "-"


def _since(value: str | None, default: str) -> tuple[str, datetime]:
    text = value or default
    try:
        return text, queries.utcnow() - queries.parse_duration(text)
    except ConfigError:
        return default, queries.utcnow() - queries.parse_duration(default)


def create_app(cfg: ObservabilityConfig, url: str | None = None, store: Store | None = None) -> FastAPI:
    """The admin app over the store at ``url`` (opened and migrated here unless ``store`` is given)."""
    store = store or open_store(url or cfg.store_url())
    auth = cfg.admin.auth()
    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.filters.update(dt=_fmt_dt, pct=_pct, ms=_ms, mib=_bytes)
    app = FastAPI(title="TrendFlow observability", version="1.0.0", docs_url=None, redoc_url=None)

    def page(request: Request, name: str, **ctx: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"active": name.removesuffix(".html"), **ctx})

    _add_auth(app, templates, auth, store)
    _add_run_pages(app, store, page)
    _add_overview_pages(app, store, page)
    app.state.store = store
    return app


def _add_auth(app: FastAPI, templates: Jinja2Templates, auth: AdminAuth, store: Store) -> None:
    """The bearer-token middleware (cookie for browsers), /health, /login, /logout."""

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        if request.url.path not in OPEN_PATHS:
            status = _status_for(request, auth)
            if status != 200:
                if "text/html" in request.headers.get("accept", ""):
                    ctx = {"status": status, "next": request.url.path}
                    return templates.TemplateResponse(request, "login.html", ctx, status_code=status)
                return JSONResponse({"error_code": "unauthorized" if status == 401 else "forbidden",
                                     "message": "admin token required (Authorization: Bearer ...)"},
                                    status_code=status)
        return await call_next(request)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "dialect": store.dialect}

    @app.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request, next: str = "/") -> HTMLResponse:
        return templates.TemplateResponse(request, "login.html", {"status": None, "next": next})

    @app.post("/login")
    async def login(request: Request, token: str = Form(...), next: str = Form("/")) -> Response:
        if check_bearer(f"Bearer {token}", auth) != 200:
            return templates.TemplateResponse(request, "login.html", {"status": 403, "next": next}, status_code=403)
        resp = RedirectResponse(next if next.startswith("/") and not next.startswith("//") else "/", status_code=303)
        resp.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
        return resp

    @app.get("/logout")
    async def logout() -> Response:
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/")
        return resp


def _add_run_pages(app: FastAPI, store: Store, page: Any) -> None:
    """The runs list (HTML and JSON) and the run page."""

    def _filter(kind, status, since, model_version, page_no) -> tuple[queries.RunFilter, str]:
        since_text, since_dt = _since(since, "30d")
        f = queries.RunFilter(kind=kind or None, status=status or None, since=since_dt,
                              model_version=model_version or None, limit=50, offset=max(page_no - 1, 0) * 50)
        return f, since_text

    @app.get("/", response_class=HTMLResponse)
    async def runs(request: Request, kind: str = "", status: str = "", since: str = "30d", model_version: str = "",
                   page_no: int = 1) -> HTMLResponse:
        f, since_text = _filter(kind if kind in queries.KINDS else "", status, since, model_version, page_no)
        rows, total = queries.list_runs(store, f)
        return page(request, "runs.html", rows=rows, total=total, kind=kind, status=status, since=since_text,
                    model_version=model_version, page_no=page_no, kinds=queries.KINDS, since_choices=SINCE_CHOICES,
                    count_cap=queries.COUNT_CAP,
                    pages=max((total + 49) // 50, 1))

    @app.get("/api/runs")
    async def api_runs(kind: str = "", status: str = "", since: str = "30d", model_version: str = "",
                       page_no: int = 1) -> JSONResponse:
        f, _ = _filter(kind if kind in queries.KINDS else "", status, since, model_version, page_no)
        rows, total = queries.list_runs(store, f)
        return JSONResponse({"total": total, "runs": [r.to_dict() for r in rows]})

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    async def run_page(request: Request, run_id: int) -> HTMLResponse:
        detail = queries.get_run(store, run_id)
        if detail is None:
            return HTMLResponse(f"run {run_id} not found", status_code=404)
        plan = detail.plan or {}
        return page(request, "run.html", d=detail, r=detail.run, plan=plan,
                    plan_components=plan.get("components") or {}, devices=plan.get("devices") or {})


def _add_overview_pages(app: FastAPI, store: Store, page: Any) -> None:
    """Components (stats and trends), serving windows, registry history, alerts, /metrics."""

    @app.get("/components", response_class=HTMLResponse)
    async def components(request: Request, since: str = "7d") -> HTMLResponse:
        since_text, since_dt = _since(since, "7d")
        stats, trends = queries.component_overview(store, since_dt, buckets=24)
        charts = {}
        for s in stats:
            pts = trends[s.component]
            xs = [p.start for p in pts]
            charts[s.component] = [
                plots.line_chart(xs, [p.p95_s for p in pts], f"{s.component} p95 latency", " ms", scale=1000),
                plots.line_chart(xs, [p.error_rate for p in pts], f"{s.component} error rate", "", scale=1),
                plots.line_chart(xs, [p.cache_hit_rate for p in pts], f"{s.component} cache hit rate"),
                plots.line_chart(xs, [p.throughput_per_h for p in pts], f"{s.component} throughput", " /h")]
        return page(request, "components.html", stats=stats, charts=charts, since=since_text,
                    since_choices=SINCE_CHOICES)

    @app.get("/serving", response_class=HTMLResponse)
    async def serving(request: Request, since: str = "24h") -> HTMLResponse:
        since_text, since_dt = _since(since, "24h")
        ws = queries.serving_windows(store, since_dt)
        chrono = list(reversed(ws))
        xs = [w.window_start for w in chrono]
        charts = [plots.line_chart(xs, [float(w.requests) for w in chrono], "requests per window"),
                  plots.line_chart(xs, [w.latency_p95_s for w in chrono], "request p95", " ms", scale=1000),
                  plots.line_chart(xs, [w.fallbacks / w.requests if w.requests else None for w in chrono],
                                   "fallback rate"),
                  plots.line_chart(xs, [w.shadow_divergence_mean for w in chrono], "shadow divergence")]
        return page(request, "serving.html", windows=ws, charts=charts, since=since_text,
                    since_choices=SINCE_CHOICES)

    @app.get("/registry", response_class=HTMLResponse)
    async def registry(request: Request) -> HTMLResponse:
        return page(request, "registry.html", history=queries.stable_history(store),
                    loads=queries.model_loads(store), gc_runs=queries.gc_runs(store))

    @app.get("/alerts", response_class=HTMLResponse)
    async def alerts_page(request: Request) -> HTMLResponse:
        rows = queries.alerts(store, ("firing", "resolved"), limit=200)
        return page(request, "alerts.html", firing=[a for a in rows if a.state == "firing"],
                    resolved=[a for a in rows if a.state == "resolved"][:100])

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(prometheus_text(store), media_type="text/plain; version=0.0.4")


def prometheus_text(store: Store) -> str:
    """Store totals as Prometheus counters and the component latency histogram (what conf/alerts.yaml's extraction
    rules read)."""
    from sqlalchemy import func, select

    from observability.schema import Run, RunComponent

    with store.session() as s:
        comps = s.execute(select(RunComponent.component, func.sum(RunComponent.n), func.sum(RunComponent.errors))
                          .join(Run, Run.id == RunComponent.run_id).where(Run.kind == "extraction")
                          .group_by(RunComponent.component)).all()
        runs = s.scalar(select(func.count(Run.id)).where(Run.kind == "extraction")) or 0
        ooms = s.scalar(select(func.count(Run.id)).where(Run.kind == "extraction", Run.oom_count > 0)) or 0
    out = ["# HELP trendflow_component_videos_total Component executions per status (from manifests)",
           "# TYPE trendflow_component_videos_total counter"]
    for c, n, e in comps:
        out.append(f'trendflow_component_videos_total{{component="{c}",status="error"}} {int(e or 0)}')
        out.append(f'trendflow_component_videos_total{{component="{c}",status="ok"}} {int((n or 0) - (e or 0))}')
    out += ["# HELP trendflow_extraction_runs_total Extraction runs in the store",
            "# TYPE trendflow_extraction_runs_total counter", f"trendflow_extraction_runs_total {runs}",
            "# HELP trendflow_extraction_oom_total Extraction runs with at least one out-of-memory",
            "# TYPE trendflow_extraction_oom_total counter", f"trendflow_extraction_oom_total {ooms}"]
    out += component_latency_histogram(store)
    return "\n".join(out) + "\n"


def component_latency_histogram(store: Store) -> list[str]:
    """``trendflow_component_latency_seconds`` per component, cumulative over every extraction run in the store,
    on :data:`observability.histogram.LATENCY_BUCKETS` (the hourly rollups hold per-bucket counts: one row per
    component and hour is read, not one per run)."""
    from sqlalchemy import select

    from observability.histogram import LATENCY_BUCKETS, merge
    from observability.schema import ComponentHour

    with store.session() as s:
        rows = s.execute(select(ComponentHour.component, ComponentHour.latency_buckets,
                                ComponentHour.latency_sum_s).order_by(ComponentHour.component)).all()
    per: dict[str, tuple[list[int], float]] = {}
    for component, buckets, total in rows:
        counts, seconds = per.get(component, (None, 0.0))
        merged = merge([b for b in (counts, buckets) if b])
        per[component] = (merged, seconds + float(total or 0.0))
    name = "trendflow_component_latency_seconds"
    out = [f"# HELP {name} Extraction component latency per video (from manifests)", f"# TYPE {name} histogram"]
    bounds = [*(f"{b:g}" for b in LATENCY_BUCKETS), "+Inf"]
    for component, (counts, seconds) in per.items():
        cumulative = 0
        for le, c in zip(bounds, counts, strict=True):
            cumulative += c
            out.append(f'{name}_bucket{{component="{component}",le="{le}"}} {cumulative}')
        out.append(f'{name}_sum{{component="{component}"}} {seconds:.6f}')
        out.append(f'{name}_count{{component="{component}"}} {cumulative}')
    return out


def serve(cfg: ObservabilityConfig, url: str, host: str = "127.0.0.1", port: int = 8200) -> None:
    """Run the admin page (refuses a non-loopback host while no admin token is configured)."""
    import uvicorn

    auth = cfg.admin.auth()
    require_loopback_unless_configured(host, auth)
    if not auth.configured:
        log.warning("no admin token configured ($%s): every page answers 401 until one is set", auth.token_env)
    app = create_app(cfg, url)
    print(f"observability admin page: http://{host}:{port}/ (store {app.state.store.dialect})", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
