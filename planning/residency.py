"""Model residency under Triton's explicit model control: which models are loaded (tier-0 pinned, tier-1 evicted
least-recently-used when a device's count or memory bound requires it), and how many instances each has (a config
override at load time; the repository's ``config.pbtxt`` is not touched)."""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from common.errors import TrendflowError
from planning.checklist import Checklist
from planning.specs import DEFAULT_MAX_LOADED_MODELS_PER_DEVICE, BatchPlan


def loaded_models(provider: Any) -> set[str] | None:
    """Names of the models Triton reports READY (None when the provider cannot say)."""
    client = getattr(provider, "client", None)
    if client is None:
        return None
    try:
        index = client.get_model_repository_index(as_json=True).get("models", [])
    except Exception:
        return None
    return {m["name"] for m in index if m.get("state") == "READY"}


def _instance_groups(control: Any, model: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    cfg = control.get_model_config(model, as_json=True)["config"]
    return cfg, list(cfg.get("instance_group") or [{"kind": "KIND_CPU", "count": 1}])


def current_instances(control: Any, models: Mapping[str, str]) -> dict[str, int]:
    """component -> instances its model is loaded with now (from the server's model config)."""
    out = {}
    for comp, model in models.items():
        try:
            _, groups = _instance_groups(control, model)
        except Exception:
            continue
        out[comp] = sum(int(g.get("count", 1) or 1) for g in groups)
    return out


def placement_config(control: Any, model: str, instances: int, device: str) -> str:
    """The model's current config with one instance group: ``instances`` copies on ``device`` (``cpu`` or
    ``gpuN``), as JSON for ``load_model(config=...)`` (explicit model control)."""
    cfg, _ = _instance_groups(control, model)
    group: dict[str, Any] = {"kind": "KIND_GPU" if device.startswith("gpu") else "KIND_CPU", "count": int(instances)}
    if device.startswith("gpu"):
        group["gpus"] = [int(device[3:] or 0)]
    cfg["instance_group"] = [group]
    return json.dumps(cfg)


def apply_instances(control: Any, plan_: BatchPlan, models: Mapping[str, str],
                    only: Iterable[str] | None = None) -> list[tuple[str, int, int, float]]:
    """Reload the models whose planned instance count differs from the loaded one (config override; the
    repository's ``config.pbtxt`` is not touched). Returns (model, before, after, seconds) per reload."""
    now = current_instances(control, {c: m for c, m in models.items() if only is None or c in set(only)})
    done = []
    for comp, cur in now.items():
        cp = plan_.components.get(comp)
        if cp is None or cp.instances == cur:
            continue
        t0 = time.perf_counter()
        control.load_model(models[comp], config=placement_config(control, models[comp], cp.instances, cp.device))
        done.append((models[comp], cur, cp.instances, round(time.perf_counter() - t0, 3)))
    return done


class ModelControl(Protocol):
    """The part of ``tritonclient.grpc.InferenceServerClient`` residency uses."""

    def load_model(self, model_name: str, headers: Any = None, config: str | None = None) -> None: ...

    def unload_model(self, model_name: str, headers: Any = None, unload_dependents: bool = False) -> None: ...

    def is_model_ready(self, model_name: str, model_version: str = "") -> bool: ...


class ModelResidency:
    """Which Triton models are loaded, per device, under explicit model control.

    Pinned (tier-0) models are never unloaded. Loading a model when its device already holds
    ``max_loaded_per_device`` models, or when their fixed memory would exceed ``memory_limit`` for the device,
    first unloads the least recently used unpinned model that the caller does not need right now.
    """

    def __init__(self, control: ModelControl, device_of: Mapping[str, str], *, pinned: Iterable[str] = (),
                 max_loaded_per_device: int = DEFAULT_MAX_LOADED_MODELS_PER_DEVICE,
                 fixed_bytes: Mapping[str, int] | None = None, memory_limit: Mapping[str, int] | None = None,
                 loaded: Iterable[str] = (), wait_s: float = 60.0, released=None) -> None:
        self.control = control
        self.device_of = dict(device_of)
        self.pinned = set(pinned)
        self.max_loaded = max_loaded_per_device
        self.fixed = dict(fixed_bytes or {})
        self.limit = dict(memory_limit or {})
        self.lru: OrderedDict[str, None] = OrderedDict((m, None) for m in loaded if m in self.device_of)
        self.wait_s = wait_s
        self.released = released  # model -> bool: its memory is really given back (stub processes gone)
        self.configs: dict[str, Any] = {}  # model -> callable returning the config JSON to load it with
        self.events: list[tuple[str, str, float]] = []  # (load|unload, model, seconds)

    def loaded_on(self, device: str) -> list[str]:
        return [m for m in self.lru if self.device_of.get(m) == device]

    def touch(self, model: str) -> None:
        if model in self.lru:
            self.lru.move_to_end(model)

    def _fits(self, device: str, extra: str) -> bool:
        on = self.loaded_on(device)
        if len(on) + 1 > self.max_loaded:
            return False
        if device in self.limit:
            return sum(self.fixed.get(m, 0) for m in on) + self.fixed.get(extra, 0) <= self.limit[device]
        return True

    def unload(self, model: str) -> None:
        t0 = time.perf_counter()
        self.control.unload_model(model)
        deadline = time.monotonic() + self.wait_s
        while time.monotonic() < deadline:  # the unload completes asynchronously; wait for it to free memory
            try:
                if not self.control.is_model_ready(model):
                    break
            except Exception:
                break
            time.sleep(0.05)
        while self.released is not None and not self.released(model) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.lru.pop(model, None)
        self.events.append(("unload", model, time.perf_counter() - t0))

    def load(self, model: str, config: str | None = None) -> None:
        t0 = time.perf_counter()
        if config is None and model in self.configs:
            config = self.configs[model]()
        if config is None:
            self.control.load_model(model)
        else:
            self.control.load_model(model, config=config)
        self.lru[model] = None
        self.events.append(("load", model, time.perf_counter() - t0))

    def ensure(self, models: Sequence[str]) -> list[str]:
        """Make every model in ``models`` loaded (most recently used), evicting LRU unpinned models that are not
        in ``models`` when the count or memory bound requires it. Returns the models unloaded."""
        need = set(models)
        evicted: list[str] = []
        for m in models:
            if m in self.lru:
                self.touch(m)
                continue
            dev = self.device_of[m]
            while not self._fits(dev, m):
                victims = [v for v in self.lru if self.device_of.get(v) == dev and v not in self.pinned
                           and v not in need]
                if not victims:
                    raise TrendflowError(
                        f"cannot load {m} on {dev}: {len(self.loaded_on(dev))} models loaded "
                        f"(max {self.max_loaded}) and none of them may be unloaded", code="residency_exhausted")
                self.unload(victims[0])
                evicted.append(victims[0])
            self.load(m)
        return evicted


def residency_for(run: Any, plan_: BatchPlan, control: ModelControl, checklist: Checklist,
                  loaded: set[str] | None = None, server_pid: int | None = None) -> ModelResidency:
    """A :class:`ModelResidency` for ``plan_``: tier-0 models pinned, the plan's per-device bound and, as each
    device's memory limit, the largest fixed memory the plan keeps resident there in any pass."""
    names = {c: h.name for c, h in run.handles.items()}
    device_of = {names[c]: p.device for c, p in plan_.components.items() if c in names}
    comps = {c.name: c for c in run.components}
    pinned = {names[c] for c in names if c in comps and comps[c].tier == 0}
    inst = plan_.instances
    fixed = {names[c]: checklist.models[c].fixed_bytes * inst.get(c, 1) for c in names if c in checklist.models}
    limit: dict[str, int] = {}
    for res in plan_.resident:
        for dev, cs in res.items():
            limit[dev] = max(limit.get(dev, 0), sum(fixed.get(names[c], 0) for c in cs if c in names))
    now = set(device_of) if loaded is None else {m for m in loaded if m in device_of}
    released = None
    if server_pid is not None:
        from planning.probes import model_processes

        def released(model: str) -> bool:
            return not model_processes(server_pid, model)
    res = ModelResidency(control, device_of, pinned=pinned, max_loaded_per_device=plan_.max_loaded_models_per_device,
                         fixed_bytes=fixed, memory_limit=limit, loaded=sorted(now), released=released)
    for c, n in names.items():
        cp = plan_.components.get(c)
        if cp is not None and (cp.instances != 1 or cp.device.startswith("gpu")):
            res.configs[n] = lambda n=n, cp=cp: placement_config(control, n, cp.instances, cp.device)
    return res
