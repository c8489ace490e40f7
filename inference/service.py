"""The serving core, independent of HTTP: model set, fallback chain, A/B assignment, shadow traffic, reload.

``Service.predict(body)`` returns ``(http_status, json_dict)``. The FastAPI app (``inference.app``) only adapts.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from common.errors import TrendflowError
from contract.output import TARGETS
from inference.access import LimitExceeded, PathNotAllowed, PathPolicy, check_text
from inference.batching import MicroBatcher
from inference.config import InferenceConfig
from inference.contract import FeatureContract
from inference.extract import vector_from_run
from inference.metrics import ServiceMetrics
from inference.models import InjectedFault, LoadedModel, load_slot
from inference.ood import DistributionCache, annotate
from inference.schemas import quantile_block

log = logging.getLogger("inference.service")
MODES = ("features", "artifacts_dir", "video_path")
MODE_OF = {"features": "features", "artifacts_dir": "artifacts", "video_path": "video"}
ALLOWED_KEYS = {"features", "artifacts_dir", "video_path", "metadata", "user_id", "video_id", "request_id", "model"}


def unit_hash(key: str, salt: str) -> float:
    """A stable number in [0, 1) for ``key`` (same on every process and machine)."""
    h = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def assign_bucket(key: str | None, arms: list[tuple[str, str, float]], salt: str) -> tuple[str, str]:
    """(bucket, slot) for ``key`` under ``arms`` = [(bucket, slot, weight)]; no key -> the first arm."""
    if key is None:
        return arms[0][0], arms[0][1]
    total = sum(w for _, _, w in arms)
    u, acc = unit_hash(key, salt) * total, 0.0
    for bucket, slot, w in arms:
        acc += w
        if u < acc:
            return bucket, slot
    return arms[-1][0], arms[-1][1]


@dataclass
class ModelSet:
    """Everything loaded for one generation; swapped whole on reload."""

    generation: int
    models: dict[str, LoadedModel]
    batchers: dict[str, MicroBatcher] = field(default_factory=dict)
    loaded_at: float = field(default_factory=time.time)
    in_flight: int = 0
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    chain: list[str] = field(default_factory=list)  # primary first; measured order when primary_by is set
    chain_reason: str = "configured order"

    def describe(self) -> dict[str, Any]:
        return {slot: m.describe() for slot, m in self.models.items()}


class ServiceError(TrendflowError):
    code = "service_error"


@dataclass
class RowBuilt:
    """A request's model-input row, its warnings, stage timings (seconds) and where the features came from."""

    row: dict[str, float]
    warnings: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)


@dataclass
class Rejected:
    """Why a request cannot be answered. ``kind`` is what the HTTP adapter's status reflects: ``invalid`` (422),
    ``not_found`` (404: no such file or run folder under an allowed root), ``too_large`` (413), ``unavailable``
    (503)."""

    code: str
    message: str
    kind: Literal["invalid", "not_found", "too_large", "unavailable"] = "invalid"
    errors: list[dict[str, str]] = field(default_factory=list)


REJECTION_STATUS = {"invalid": 422, "not_found": 404, "too_large": 413, "unavailable": 503}


class Service:
    def __init__(self, cfg: InferenceConfig, reg_cfg: Any, spec: Any, metrics: ServiceMetrics | None = None,
                 featurizer: Any | None = None) -> None:
        self.cfg = cfg
        self.reg_cfg = reg_cfg
        self.spec = spec
        self.contract = FeatureContract.from_spec(spec)
        self.metrics = metrics or ServiceMetrics()
        self.featurizer = featurizer
        self.current: ModelSet | None = None
        self._generation = 0
        self._reload_lock = asyncio.Lock()
        self._shadow_tasks: set[asyncio.Task] = set()
        self.client = None
        self.paths = PathPolicy.from_config(cfg.allowed_roots, cfg.path)
        self.distributions = DistributionCache()

    # ---- loading -----------------------------------------------------------------------------------------
    def _connect(self) -> Any:
        if self.client is None:
            from registry.store import connect

            self.client = connect(self.reg_cfg)
        return self.client

    def load_set(self) -> ModelSet:
        """Resolve every slot (aliases ONCE) and load it (blocking; call in a thread)."""
        client = self._connect()
        self._generation += 1
        models = {}
        for slot, sc in self.cfg.models.items():
            if not sc.preload:
                continue
            lm = load_slot(client, self.reg_cfg, self.cfg, slot, spec=self.spec)
            models[slot] = lm
            self.metrics.model_load_seconds.labels(lm.type, lm.version, slot).set(lm.load_s)
            if lm.error:
                self.metrics.load_failures.labels(lm.type, slot).inc()
        ms = ModelSet(self._generation, models)
        ms.chain, ms.chain_reason = self._order_chain(models)
        return ms

    def _order_chain(self, models: dict[str, LoadedModel]) -> tuple[list[str], str]:
        """The fallback chain, by ``primary_by`` (lowest first) when every loaded slot of it carries that metric
        and one ``split_hash``; else as configured. Returns ``(chain, why)``."""
        chain, key = self.cfg.chain, self.cfg.primary_by
        if key is None:
            return chain, "configured order (primary_by: null)"
        ranked = [s for s in chain if s in models and models[s].ready]
        vals = {s: models[s].tags.get(key) for s in ranked}
        splits = {models[s].tags.get("split_hash") for s in ranked}
        if len(ranked) < 2 or any(v is None for v in vals.values()) or len(splits) != 1 or None in splits:
            return chain, f"configured order ({key} not comparable: needs every loaded slot tagged, one split_hash)"
        try:
            order = sorted(ranked, key=lambda s: (float(vals[s]), chain.index(s)))
        except ValueError:
            return chain, f"configured order ({key} not numeric)"
        rest = [s for s in chain if s not in order]
        return [*order, *rest], f"by {key} on split {next(iter(splits))}: " + ", ".join(
            f"{s} {float(vals[s]):.4f}" for s in order)

    def _start_batchers(self, ms: ModelSet) -> None:
        for slot, lm in ms.models.items():
            if lm.pyfunc is None or slot in ms.batchers:
                continue
            mt = lm.type

            def on_batch(n: int, secs: float, mt: str = mt) -> None:
                self.metrics.batch_size.labels(mt).observe(n)

            b = MicroBatcher(lm.predict_rows, self.cfg.batching.max_batch, self.cfg.batching.max_wait_ms / 1000,
                             name=slot, on_batch=on_batch)
            b.start()
            ms.batchers[slot] = b

    async def _lazy(self, ms: ModelSet, slot: str) -> LoadedModel | None:
        """Load a non-Tier-0 slot on first use (once per model set; concurrent first requests wait together)."""
        if slot in ms.models or self.cfg.models[slot].preload:
            return ms.models.get(slot)
        lock = ms.locks.setdefault(slot, asyncio.Lock())
        async with lock:
            if slot not in ms.models:
                lm = await asyncio.to_thread(load_slot, self._connect(), self.reg_cfg, self.cfg, slot)
                self.metrics.model_load_seconds.labels(lm.type, lm.version, slot).set(lm.load_s)
                if lm.error:
                    self.metrics.load_failures.labels(lm.type, slot).inc()
                ms.models[slot] = lm
                self._start_batchers(ms)
        return ms.models[slot]

    async def start(self) -> ModelSet:
        ms = await asyncio.to_thread(self.load_set)
        self._start_batchers(ms)
        self.current = ms
        self.metrics.ready.set(1 if (await self.readiness())[0] else 0)
        for slot, m in ms.models.items():
            log.info("serving slot %s = %s v%s (%s)%s", slot, m.name, m.version,
                     f"from alias @{m.alias}" if m.alias else "pinned", f" ERROR {m.error}" if m.error else "")
        return ms

    async def reload(self) -> dict[str, Any]:
        """Load a new set (re-resolving aliases) beside the old one, swap, then drain the old one: requests in
        flight finish on the models they started with; none is dropped."""
        async with self._reload_lock:
            try:
                new = await asyncio.to_thread(self.load_set)
            except Exception as exc:
                self.metrics.reloads.labels("failed").inc()
                raise ServiceError(f"reload failed: {exc}", code="reload_failed") from None
            self._start_batchers(new)
            old, self.current = self.current, new
            self.metrics.reloads.labels("ok").inc()
            if old is not None:
                deadline = time.perf_counter() + 60
                while old.in_flight and time.perf_counter() < deadline:
                    await asyncio.sleep(0.01)
                for b in old.batchers.values():
                    await b.drain()
            self.metrics.ready.set(1 if (await self.readiness())[0] else 0)
            return {"generation": new.generation, "models": new.describe(),
                    "previous": old.describe() if old else None}

    async def close(self) -> None:
        for t in list(self._shadow_tasks):
            t.cancel()
        if self.current is not None:
            for b in self.current.batchers.values():
                await b.close()

    # ---- health ------------------------------------------------------------------------------------------
    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        ms = self.current
        models = ms.describe() if ms else {}

        def loaded(slot: str) -> bool:
            return bool(ms) and ms.models.get(slot) is not None and ms.models[slot].ready

        chain = ms.chain if ms and ms.chain else self.cfg.chain
        required = self.cfg.required_slots(chain[0])
        chain_ok = bool(ms) and all(loaded(s) for s in required)
        # A lazily loaded slot (preload: false) not used yet is not missing; one that failed to load is.
        degraded = [s for s in self.cfg.models if s not in required and not loaded(s)
                    and (self.cfg.models[s].preload or (bool(ms) and s in ms.models))]
        self.metrics.degraded.set(len(degraded))
        triton: dict[str, Any] = {"needed": self.cfg.needs_triton}
        triton_ok = True
        if self.cfg.needs_triton:
            if self.featurizer is None:
                triton_ok, detail = False, "no featurizer configured"
            else:
                triton_ok, detail = await asyncio.to_thread(self.featurizer.reachable, self.cfg.triton.timeout_s)
            triton.update(reachable=triton_ok, detail=detail)
        ready = chain_ok and triton_ok
        status = "not_ready" if not ready else ("degraded" if degraded else "ok")
        return ready, {"ready": ready, "status": status, "required": required, "degraded": degraded,
                       "generation": ms.generation if ms else None, "models": models,
                       "triton": triton, "request_modes": list(self.cfg.request_modes),
                       "feature_schema_version": self.contract.schema_version,
                       "primary": chain[0], "fallback": chain[1:],
                       "chain_order": ms.chain_reason if ms else None}

    # ---- predict -----------------------------------------------------------------------------------------
    def _chain_from(self, slot: str, ms: ModelSet | None = None) -> list[str]:
        chain = ms.chain if ms is not None and ms.chain else self.cfg.chain
        return chain[chain.index(slot):] if slot in chain else [slot, *chain]

    @staticmethod
    def _err(status: int, code: str, message: str, request_id: str | None = None,
             errors: list[dict[str, str]] | None = None, attempts: list[dict[str, Any]] | None = None
             ) -> tuple[int, dict[str, Any]]:
        return status, {"error_code": code, "message": message, "request_id": request_id,
                        "errors": errors or [], "attempts": attempts or []}

    def _reject(self, status: int, code: str, message: str, rid: str | None,
                errors: list[dict[str, str]] | None = None) -> tuple[int, dict[str, Any]]:
        self.metrics.rejected.labels(code).inc()
        return self._err(status, code, message, rid, errors)

    async def _build_row(self, body: dict[str, Any]) -> RowBuilt | Rejected:
        """The model-input row of a request in any mode, or why it is refused (no HTTP types here)."""
        from features.errors import MissingCriticalFeature
        from inference.extract import RequestInvalid

        if "features" in body:
            return self._row_from_features(body["features"])
        try:
            if "artifacts_dir" in body:
                run_dir = self.paths.check(body["artifacts_dir"], "artifacts_dir")
                built = await asyncio.to_thread(vector_from_run, run_dir, self.spec)
            else:
                refused = self._check_video_request(body)
                if isinstance(refused, Rejected):
                    return refused
                built = await asyncio.to_thread(self.featurizer.build, refused, body["metadata"], self.spec,
                                                self.cfg.limits)
        except MissingCriticalFeature as exc:
            names = exc.details.get("missing") or []
            return Rejected(exc.code, exc.message, errors=[
                {"field": f"features.{n}", "code": exc.code, "message": "critical feature could not be computed"}
                for n in names])
        except (RequestInvalid, PathNotAllowed) as exc:
            kind = "not_found" if exc.code in ("not_found", "not_a_run_folder") else "invalid"
            return Rejected(exc.code, exc.message, kind, exc.details.get("errors") or [])
        except LimitExceeded as exc:
            return Rejected(exc.code, exc.message, "too_large" if exc.details.get("status") == 413 else "invalid",
                            [{"field": "video_path", "code": exc.code, "message": exc.message}])
        except OSError as exc:  # under an allowed root but unreadable (permissions, a vanished file)
            return Rejected("path_unreadable", f"the path cannot be read ({exc.strerror})", "not_found")
        except TrendflowError as exc:
            unavailable = exc.code in ("triton_unavailable", "model_not_found")
            return Rejected(exc.code, exc.message, "unavailable" if unavailable else "invalid")
        warnings = []
        if built.warnings:
            warnings.append({"code": "feature_warnings", "fields": [], "message": "; ".join(built.warnings)[:1000]})
        return RowBuilt(built.row, warnings, dict(built.timings), dict(built.keys))

    def _row_from_features(self, payload: Any) -> RowBuilt | Rejected:
        row, errors = self.contract.validate(payload, max_abs=self.cfg.limits.max_abs_feature)
        if errors:
            code = ("missing_critical_feature" if any(e.code == "missing_critical_feature" for e in errors)
                    else "invalid_features")
            return Rejected(code, f"{len(errors)} invalid or missing field(s)", errors=[e.to_dict() for e in errors])
        assert row is not None
        warnings = []
        if row.imputed:
            warnings.append({"code": "imputed_optional_features", "fields": row.imputed,
                             "message": f"{len(row.imputed)} optional feature(s) absent: imputed by the "
                                        "model's fitted policy"})
        return RowBuilt(row.values, warnings)

    def _check_video_request(self, body: dict[str, Any]) -> Path | Rejected:
        """The allowed video path, or why the request is refused (path first: it reveals nothing)."""
        from inference.extract import check_metadata

        path = self.paths.check(body["video_path"], "video_path")
        problems = check_metadata(body.get("metadata"))
        if problems:
            return Rejected("invalid_request", "metadata incomplete", errors=problems)
        too_long = check_text(body["metadata"], self.cfg.limits)
        if too_long:
            return Rejected("field_too_long", f"{len(too_long)} metadata field(s) too long", errors=too_long)
        if self.featurizer is None:
            return Rejected("triton_unavailable", "no extractor configured", "unavailable")
        return path

    async def predict(self, body: Any) -> tuple[int, dict[str, Any]]:
        t_start = time.perf_counter()
        given_rid = body.get("request_id") if isinstance(body, dict) else None
        rid = given_rid if isinstance(given_rid, str) and given_rid else uuid.uuid4().hex[:16]
        if not isinstance(body, dict):
            return self._reject(422, "invalid_request", "the body must be a JSON object", rid,
                                [{"field": "body", "code": "invalid_type", "message": "expected an object"}])
        unknown = [k for k in body if k not in ALLOWED_KEYS]
        given = [k for k in MODES if k in body]
        errors = [{"field": k, "code": "unknown_field", "message": "not a request field"} for k in unknown]
        if len(given) != 1:
            errors.append({"field": "features|artifacts_dir|video_path", "code": "exactly_one_input",
                           "message": f"give exactly one input, got {given or 'none'}"})
        if "metadata" in body and "video_path" not in body:
            errors.append({"field": "metadata", "code": "unknown_field", "message": "metadata goes with video_path"})
        if "request_id" in body and not isinstance(given_rid, str):
            errors.append({"field": "request_id", "code": "invalid_type", "message": "expected a string"})
        for k in ("user_id", "video_id"):
            if k in body and (not isinstance(body[k], str | int) or isinstance(body[k], bool)):
                errors.append({"field": k, "code": "invalid_type", "message": "expected a string"})
        if errors:
            return self._reject(422, "invalid_request", "malformed request", rid, errors)
        if "model" in body and self.cfg.find_slot(body["model"]) is None:
            served = sorted({*self.cfg.models, *(sc.type for sc in self.cfg.models.values())})
            return self._reject(422, "model_not_served", f"model {json.dumps(body['model'])} is not served "
                                f"(slots and types: {served})", rid,
                                [{"field": "model", "code": "model_not_served",
                                  "message": f"{json.dumps(body['model'])} is not one of {served}"}])
        mode = MODE_OF[given[0]]
        if mode not in self.cfg.request_modes:
            return self._reject(422, "mode_disabled", f"request mode {mode!r} is not enabled "
                                f"(enabled: {list(self.cfg.request_modes)})", rid,
                                [{"field": given[0], "code": "mode_disabled", "message": "not enabled"}])
        built = await self._build_row(body)
        if isinstance(built, Rejected):
            return self._reject(REJECTION_STATUS[built.kind], built.code, built.message, rid, built.errors)
        row, warnings, timings = built.row, built.warnings, {**built.timings, "source": built.source}
        ms = self.current
        if ms is None:
            return self._reject(503, "not_ready", "models are not loaded yet", rid)
        ms.in_flight += 1
        try:
            status, payload = await self._answer(ms, body, row, warnings, timings, rid, mode, t_start)
        finally:
            ms.in_flight -= 1
        if status == 200:
            await self._check_distribution(ms, row, payload)
        return status, payload

    async def _check_distribution(self, ms: ModelSet, row: dict[str, float], payload: dict[str, Any]) -> None:
        """Flag inputs outside the answering version's training distribution (rule: :mod:`inference.ood`)."""
        lm = ms.models.get(payload["prediction"]["model"]["slot"])
        if lm is None or not self.cfg.ood.enabled:
            return
        dist = await asyncio.to_thread(self.distributions.get, self._connect(), lm)
        flagged = annotate(payload, dist, row, self.cfg.ood)
        if flagged:
            self.metrics.out_of_distribution.labels(lm.type).inc()
            for feature in flagged:
                self.metrics.ood_features.labels(feature).inc()

    async def _answer(self, ms: ModelSet, body: dict[str, Any], row: dict[str, float], warnings: list[dict],
                      timings: dict[str, float], rid: str, mode: str, t_start: float) -> tuple[int, dict[str, Any]]:
        bucket = None
        start_slot = ms.chain[0] if ms.chain else self.cfg.primary
        requested = self.cfg.find_slot(body["model"]) if "model" in body else None
        if requested is not None:
            return await self._answer_requested(ms, body, row, warnings, timings, rid, mode, t_start, requested)
        if self.cfg.ab is not None:
            key = body.get(self.cfg.ab.key)
            arms = [(a.bucket, a.slot, a.weight) for a in self.cfg.ab.arms]
            bucket, start_slot = assign_bucket(None if key is None else str(key), arms, self.cfg.ab.salt)
        source = {"mode": mode, **timings.pop("source", {})}
        attempts: list[dict[str, Any]] = []
        answer: tuple[LoadedModel, dict[str, float]] | None = None
        for slot in self._chain_from(start_slot, ms):
            lm = await self._lazy(ms, slot)
            if lm is None or lm.pyfunc is None or slot not in ms.batchers:
                attempts.append({"slot": slot, "type": lm.type if lm else self.cfg.models[slot].type,
                                 "version": lm.version if lm else None, "error_code": "model_not_loaded",
                                 "message": (lm.error if lm else None) or "not loaded"})
                continue
            try:
                out, secs, _ = await ms.batchers[slot].submit(row)
                if not all(math.isfinite(v) for v in out.values()):
                    raise ValueError("model returned non-finite values")
            except Exception as exc:
                code = "fault_injected" if isinstance(exc, InjectedFault) else "model_error"
                self.metrics.errors.labels(lm.type, lm.version, code).inc()
                attempts.append({"slot": slot, "type": lm.type, "version": lm.version, "error_code": code,
                                 "message": f"{type(exc).__name__}: {exc}"[:300]})
                log.warning("request %s: slot %s v%s failed: %s", rid, slot, lm.version, exc)
                continue
            self.metrics.inference_seconds.labels(lm.type, lm.version).observe(secs)
            timings["model_s"] = secs
            answer = (lm, out)
            break
        if answer is None:
            self.metrics.errors.labels("all", "-", "all_models_failed").inc()
            return self._err(503, "all_models_failed", "every model of the fallback chain failed for this request",
                             rid, attempts=attempts)
        return self._respond(ms, body, row, warnings, timings, rid, mode, t_start, answer, attempts, bucket, source)

    async def _answer_requested(self, ms: ModelSet, body: dict[str, Any], row: dict[str, float],
                                warnings: list[dict], timings: dict[str, float], rid: str, mode: str,
                                t_start: float, slot: str) -> tuple[int, dict[str, Any]]:
        """A request that names its model ("re-run with another model"): that slot only, no fallback."""
        source = {"mode": mode, **timings.pop("source", {})}
        lm = await self._lazy(ms, slot)
        if lm is None or lm.pyfunc is None or slot not in ms.batchers or not lm.ready:
            why = (lm.error if lm else None) or "not loaded"
            return self._reject(422, "model_not_served", f"model {json.dumps(body['model'])} (slot {slot}) is "
                                f"not served: {why}", rid,
                                [{"field": "model", "code": "model_not_served", "message": f"slot {slot}: {why}"}])
        try:
            out, secs, _ = await ms.batchers[slot].submit(row)
            if not all(math.isfinite(v) for v in out.values()):
                raise ValueError("model returned non-finite values")
        except Exception as exc:
            code = "fault_injected" if isinstance(exc, InjectedFault) else "model_error"
            self.metrics.errors.labels(lm.type, lm.version, code).inc()
            attempt = {"slot": slot, "type": lm.type, "version": lm.version, "error_code": code,
                       "message": f"{type(exc).__name__}: {exc}"[:300]}
            return self._err(503, "requested_model_failed", f"the requested model (slot {slot}) failed", rid,
                             attempts=[attempt])
        self.metrics.inference_seconds.labels(lm.type, lm.version).observe(secs)
        timings["model_s"] = secs
        status, resp = self._respond(ms, body, row, warnings, timings, rid, mode, t_start, (lm, out), [], None,
                                     source)
        resp["prediction"]["model"]["requested"] = body["model"]
        return status, resp

    def _respond(self, ms: ModelSet, body: dict[str, Any], row: dict[str, float], warnings: list[dict],
                 timings: dict[str, float], rid: str, mode: str, t_start: float,
                 answer: tuple[LoadedModel, dict[str, float]], attempts: list[dict[str, Any]], bucket: str | None,
                 source: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The 200 response for the model that answered (and the metrics, shadow and timings that go with it)."""
        lm, out = answer
        status = "degraded" if attempts else "ok"
        if attempts:
            self.metrics.fallbacks.labels(attempts[0]["type"], lm.type).inc()
            warnings.append({"code": "fallback", "fields": [],
                             "message": f"answered by {lm.type} v{lm.version} after "
                                        + ", ".join(f"{a['slot']}: {a['error_code']}" for a in attempts)})
        self.metrics.requests.labels(lm.type, lm.version, status).inc()
        self._maybe_shadow(ms, body, row, lm, out, rid)
        prediction: dict[str, Any] = {
            "values": {t: quantile_block(out, t) for t in TARGETS}, "scale": "count",
            "model": {"type": lm.type, "slot": lm.slot, "name": lm.name, "version": lm.version, "alias": lm.alias,
                      "run_id": lm.run_id, "semver": lm.semver,
                      "features_schema_version": lm.features_schema_version}}
        if bucket is not None:
            prediction["experiment_bucket"] = bucket
            self.metrics.ab_buckets.labels(bucket).inc()
        for t in TARGETS:
            self.metrics.prediction_p50.labels(t).observe(out[f"{t}_p50"])
            self.metrics.prediction_width.labels(t).observe(out[f"{t}_p90"] - out[f"{t}_p10"])
        total = time.perf_counter() - t_start
        timings["total_s"] = total
        self.metrics.request_seconds.labels(mode).observe(total)
        for stage in ("extraction_s", "features_s", "model_s"):
            if stage in timings:
                self.metrics.stage_seconds.labels(stage[:-2], lm.type, lm.version).observe(timings[stage])
        return 200, {"request_id": rid, "prediction_status": status, "prediction": prediction,
                     "warnings": warnings, "fallback": attempts, "source": source,
                     "timings_ms": {k[:-2]: round(v * 1000, 3) for k, v in timings.items()}}

    # ---- shadow ------------------------------------------------------------------------------------------
    def _maybe_shadow(self, ms: ModelSet, body: dict[str, Any], row: dict[str, float], served: LoadedModel,
                      out: dict[str, float], rid: str) -> None:
        sh = self.cfg.shadow
        if sh is None or sh.fraction <= 0 or sh.slot == served.slot or sh.slot not in ms.batchers:
            return
        key = body.get("user_id") or body.get("video_id") or rid
        if unit_hash(str(key), "shadow") >= sh.fraction:
            return
        shadow = ms.models[sh.slot]

        async def run() -> None:
            ms.in_flight += 1
            try:
                other, _, _ = await ms.batchers[sh.slot].submit(row)
                diffs = {t: abs(other[f"{t}_p50"] - out[f"{t}_p50"]) for t in TARGETS}
                mean = sum(diffs.values()) / len(diffs)
                self.metrics.shadow_divergence.labels(served.type, shadow.type).observe(mean)
                log.info("shadow %s", json.dumps({"request_id": rid, "served": f"{served.type}:{served.version}",
                                                  "shadow": f"{shadow.type}:{shadow.version}",
                                                  "mean_abs_p50_log1p": round(mean, 5),
                                                  "per_target": {k: round(v, 5) for k, v in diffs.items()}}))
            except Exception as exc:
                self.metrics.shadow_errors.labels(shadow.type).inc()
                log.warning("shadow %s failed for %s: %s", sh.slot, rid, exc)
            finally:
                ms.in_flight -= 1

        task = asyncio.get_running_loop().create_task(run())
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_tasks.discard)
