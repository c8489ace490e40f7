"""FastAPI adapter over :class:`inference.service.Service`: routes, OpenAPI, signal-driven reload.

Routes: ``POST /predict``, ``GET /health/live``, ``GET /health/ready``, ``POST /admin/reload``, ``GET /metrics``,
``GET /schema`` (request/response JSON Schemas) and FastAPI's ``/openapi.json`` / ``/docs``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPBearer

from common.auth import AdminAuth, check_bearer
from common.errors import TrendflowError
from inference.schemas import ErrorResponse, Live, PredictResponse, published_schemas, request_schema
from inference.service import Service

log = logging.getLogger("inference.app")


def _json(status: int, body: Any) -> Response:
    return Response(json.dumps(body, separators=(",", ":"), allow_nan=False), status_code=status,
                    media_type="application/json")


def _lifespan(service: Service, handle_signals: bool, recorder: Any | None):
    """Startup (recorder, models, SIGHUP reload) and shutdown (flush the recorder, close the service)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if recorder is not None:  # before the models load: their load times and failures are in the first window
            recorder.start()
        await service.start()
        if handle_signals:
            try:
                loop = asyncio.get_running_loop()
                loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(_reload_logged()))
            except (NotImplementedError, RuntimeError, ValueError):
                log.warning("SIGHUP reload unavailable here; use POST /admin/reload")
        yield
        if recorder is not None:
            await asyncio.to_thread(recorder.close)
        await service.close()

    async def _reload_logged() -> None:
        try:
            res = await service.reload()
            log.info("reloaded on SIGHUP: generation %s %s", res["generation"],
                     {k: v["version"] for k, v in res["models"].items()})
        except TrendflowError as exc:
            log.error("reload on SIGHUP failed: %s", exc)

    return lifespan


def create_app(service: Service, handle_signals: bool = False, recorder: Any | None = None) -> FastAPI:
    """The ASGI app; models load in its lifespan (Tier-0 preload) before it accepts requests.

    ``recorder``: an :class:`observability.spool.ServingRecorder` over ``service.metrics.registry``, started with
    the app and flushed when it stops (None: no observability windows)."""

    lifespan = _lifespan(service, handle_signals, recorder)
    app = FastAPI(title="TrendFlow inference", version="1.0.0", lifespan=lifespan,
                  description="Predicts views/likes at 7/14/21 days with pinned registered model versions. "
                              "Read prediction.values[target].p50 (a count) and its interval bounds.")
    req_schema = request_schema(service.contract.columns, service.contract.critical, list(service.cfg.request_modes),
                                roots=[str(r) for r in service.paths.roots],
                                max_abs=service.cfg.limits.max_abs_feature,
                                max_text=service.cfg.limits.max_text_chars, slots=list(service.cfg.models),
                                types=sorted({sc.type for sc in service.cfg.models.values()}))
    err = {"model": ErrorResponse}
    auth = service.cfg.admin.auth()
    limits = service.cfg.limits
    bearer = HTTPBearer(auto_error=False, description="the admin token (config `admin`: env var or secret file)")
    admin_scheme = Depends(bearer)  # declares the bearer scheme in OpenAPI; the check itself is _admin_denied
    any_json = {"content": {"application/json": {"schema": {"type": "object"}}}}

    @app.post("/predict", response_model=PredictResponse,
              responses={404: err, 413: err, 415: err, 422: err, 503: err},
              openapi_extra={"requestBody": {"required": True,
                                             "content": {"application/json": {"schema": req_schema}}}})
    async def predict(request: Request) -> Response:
        raw = await _read_body(request, limits.max_body_bytes)
        if isinstance(raw, Response):
            service.metrics.rejected.labels("body_too_large").inc()
            return raw
        ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if ctype != "application/json":
            service.metrics.rejected.labels("unsupported_media_type").inc()
            return _error(415, "unsupported_media_type", f"send application/json, not {ctype[:60]}")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            service.metrics.rejected.labels("invalid_json").inc()
            return _error(422, "invalid_json", f"body is not JSON: {exc}"[:200])
        status, payload = await service.predict(body)
        return _json(status, payload)

    @app.get("/health/live", response_model=Live)
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @app.get("/health/ready", responses={200: any_json, 503: any_json})
    async def ready() -> Response:
        ok, detail = await service.readiness()
        service.metrics.ready.set(1 if ok else 0)
        return _json(200 if ok else 503, detail)

    @app.post("/admin/reload", responses={200: any_json, 401: err, 403: err, 500: err})
    async def reload(request: Request, _: Any = admin_scheme) -> Response:
        denied = _admin_denied(request.headers.get("authorization"), auth)
        if denied is not None:
            return denied
        try:
            return _json(200, await service.reload())
        except TrendflowError as exc:
            return _error(500, exc.code, exc.message)

    @app.get("/metrics", response_class=PlainTextResponse,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                              "description": "Prometheus text exposition format 0.0.4"}})
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/schema", responses={200: any_json})
    async def schema() -> JSONResponse:
        return JSONResponse(published_schemas(req_schema))

    return app


async def _read_body(request: Request, cap: int) -> bytes | Response:
    """The body, or a 413 as soon as it exceeds ``cap`` (declared or streamed): never buffered whole."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        return _error(413, "body_too_large", f"the body is {declared} bytes, at most {cap}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            return _error(413, "body_too_large", f"the body exceeds {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, code: str, message: str) -> Response:
    return _json(status, {"error_code": code, "message": message, "request_id": None, "errors": [], "attempts": []})


def _admin_denied(authorization: str | None, auth: AdminAuth) -> Response | None:
    """None when the bearer token is right; else the 401 (none given / auth not configured) or 403 (wrong)."""
    status = check_bearer(authorization, auth)
    if status == 200:
        return None
    if status == 401:
        return _error(401, "unauthorized", "admin endpoints need `Authorization: Bearer <token>`"
                      + ("" if auth.configured else " (admin auth is not configured on this server: closed)"))
    return _error(403, "forbidden", "the bearer token is not the admin token")
