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

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from common.errors import TrendflowError
from inference.schemas import ErrorResponse, PredictResponse, request_schema
from inference.service import Service

log = logging.getLogger("inference.app")


def _json(status: int, body: Any) -> Response:
    return Response(json.dumps(body, separators=(",", ":"), allow_nan=False), status_code=status,
                    media_type="application/json")


def create_app(service: Service, handle_signals: bool = False, recorder: Any | None = None) -> FastAPI:
    """The ASGI app; models load in its lifespan (Tier-0 preload) before it accepts requests.

    ``recorder``: an :class:`observability.spool.ServingRecorder` over ``service.metrics.registry``, started with
    the app and flushed when it stops (None: no observability windows)."""

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

    app = FastAPI(title="TrendFlow inference", version="1.0.0", lifespan=lifespan,
                  description="Predicts views/likes at 7/14/21 days with pinned registered model versions. "
                              "Read prediction.values[target].p50 (a count) and its interval bounds.")
    req_schema = request_schema(service.contract.columns, service.contract.critical, list(service.cfg.request_modes))
    err = {"model": ErrorResponse}

    @app.post("/predict", response_model=PredictResponse, responses={422: err, 503: err},
              openapi_extra={"requestBody": {"required": True,
                                             "content": {"application/json": {"schema": req_schema}}}})
    async def predict(request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            service.metrics.rejected.labels("invalid_json").inc()
            return _json(422, {"error_code": "invalid_json", "message": f"body is not JSON: {exc}"[:200],
                               "request_id": None, "errors": [], "attempts": []})
        status, payload = await service.predict(body)
        return _json(status, payload)

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @app.get("/health/ready")
    async def ready() -> Response:
        ok, detail = await service.readiness()
        service.metrics.ready.set(1 if ok else 0)
        return _json(200 if ok else 503, detail)

    @app.post("/admin/reload")
    async def reload() -> Response:
        try:
            return _json(200, await service.reload())
        except TrendflowError as exc:
            return _json(500, {"error_code": exc.code, "message": exc.message})

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/schema")
    async def schema() -> JSONResponse:
        return JSONResponse({"request": req_schema, "response": PredictResponse.model_json_schema(),
                             "error": ErrorResponse.model_json_schema()})

    return app
