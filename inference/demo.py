"""The serving part of the main job: promote the demo models through the gates, serve the pinned versions,
predict one demo video given by path.

    from inference.demo import run_demo
    result = run_demo("data/demo/videos/<id>.mp4")   # metadata: the video's sidecar .json by default
    print(json.dumps(result["response"], indent=2))

or ``python -m inference demo --video data/demo/videos/<id>.mp4``. Triton must be running (``make demo`` starts
it); the service runs in this process on a free port (real uvicorn, real HTTP) and stops before returning.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from common.errors import TrendflowError


def promote_latest(reason: str = "make demo: newest trained version", actor: str = "make-demo",
                   tracking_uri: str | None = None, config_path: str | Path | None = None,
                   echo: bool = True) -> dict[str, Any]:
    """For each model type: if its newest version is not ``stable``, run the gates and promote it.

    Returns per type ``{"version", "promoted", "gates": [...], "stable"}``; a refusal is reported, not raised
    (the service then serves the previous stable or falls back).
    """
    from registry import ops
    from registry.config import load_config
    from registry.store import connect

    cfg = load_config(config_path, tracking_uri=tracking_uri)
    client = connect(cfg)
    out: dict[str, Any] = {}
    for t, rows in ops.list_versions(client, cfg, metrics=[]).items():
        if not rows:
            out[t] = {"version": None, "promoted": False, "stable": None, "gates": [], "note": "not registered"}
            if echo:
                print(f"registry: {t}: no registered version")
            continue
        newest = rows[0]
        stable = ops.alias_version(client, cfg.name_of(t), cfg.aliases.stable)
        if stable is not None and str(stable.version) == newest["version"]:
            out[t] = {"version": newest["version"], "promoted": False, "stable": newest["version"], "gates": [],
                      "note": "already stable"}
            if echo:
                print(f"registry: {t}: v{newest['version']} already stable")
            continue
        res = ops.promote(client, cfg, t, newest["version"], reason, actor)
        after = res.aliases_after.get(cfg.aliases.stable)
        out[t] = {"version": newest["version"], "promoted": res.ok, "stable": after,
                  "gates": [g.to_dict() for g in res.gates]}
        if echo:
            mark = "promoted" if res.ok else "REFUSED"
            print(f"registry: {t}: v{newest['version']} {mark}; stable={after} "
                  + " ".join(f"[{'PASS' if g.passed else 'FAIL'} {g.name}]" for g in res.gates))
            for g in res.failed:
                print(f"    {g.name}: {g.reason}")
    return out


def _drop_unresolvable(cfg: Any, echo: bool) -> None:
    """Serve only slots whose alias exists (a type whose first promotion was refused has no ``stable``)."""
    from registry import ops
    from registry.config import load_config as load_registry_config
    from registry.store import connect

    reg = load_registry_config(cfg.path(cfg.registry), tracking_uri=cfg.tracking_uri)
    client = connect(reg)
    gone = [s for s, sc in cfg.models.items()
            if sc.alias is not None and ops.alias_version(client, reg.name_of(sc.type), sc.alias) is None]
    for s in gone:
        if echo:
            print(f"service: slot {s} not served: {reg.name_of(cfg.models[s].type)} has no "
                  f"@{cfg.models[s].alias} version")
        del cfg.models[s]
    chain = [s for s in cfg.chain if s in cfg.models]
    if not chain:
        raise TrendflowError("no model type has a stable version to serve", code="nothing_to_serve")
    cfg.primary, cfg.fallback = chain[0], chain[1:]
    if cfg.shadow is not None and cfg.shadow.slot not in cfg.models:
        cfg.shadow = None
    if cfg.ab is not None and any(a.slot not in cfg.models for a in cfg.ab.arms):
        cfg.ab = None


def run_demo(video_path: str | Path, metadata: dict[str, Any] | None = None, *, promote: bool = True,
             config_path: str | Path | None = None, tracking_uri: str | None = None,
             echo: bool = True) -> dict[str, Any]:
    """Promote (optional), start the service on the pinned versions, POST the video, stop.

    Returns ``{"status", "response", "ready", "promotion", "seconds"}``.
    """
    import httpx

    from inference.config import load_config
    from inference.server import ServerThread

    video_path = Path(video_path).resolve()
    if metadata is None:
        side = video_path.with_suffix(".json")
        if not side.exists():
            raise TrendflowError(f"{side} not found: pass metadata", code="metadata_missing")
        metadata = json.loads(side.read_text())
    t0 = time.perf_counter()
    cfg = load_config(config_path, tracking_uri=tracking_uri)
    promotion = promote_latest(tracking_uri=cfg.tracking_uri, config_path=cfg.path(cfg.registry),
                               echo=echo) if promote else {}
    if "video" not in cfg.request_modes:
        cfg.request_modes = [*cfg.request_modes, "video"]
    _drop_unresolvable(cfg, echo)
    if str(video_path.parent) not in cfg.allowed_roots:  # the operator named this video: its folder is allowed
        cfg.allowed_roots = [*cfg.allowed_roots, str(video_path.parent)]
        if echo:
            print(f"allowed root added for this demo: {video_path.parent}")
    with ServerThread(cfg) as server:
        with httpx.Client(base_url=server.url, timeout=600) as http:
            ready = http.get("/health/ready").json()
            if echo:
                print("service ready:", ready["ready"], {s: f"{m['name']} v{m['version']}"
                                                          + (f" (@{m['alias']})" if m["alias"] else "")
                                                          for s, m in ready["models"].items()})
            r = http.post("/predict", json={"video_path": str(video_path), "metadata": metadata,
                                            "video_id": str(metadata.get("video_id", ""))})
    return {"status": r.status_code, "response": r.json(), "ready": ready, "promotion": promotion,
            "seconds": round(time.perf_counter() - t0, 2)}
