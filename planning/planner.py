"""The batching planner: from a measured checklist and the memory free now, decide how to run a batch of videos.

Inputs (all plain data, so the planner is a pure function tested on synthetic checklists):

* the videos (:class:`VideoSpec`: size class, units per component after sampling, frames to decode, audio);
* the component DAG (:class:`ComponentSpec`, built from ``extraction.components``);
* the devices (:class:`Device`: CPU RAM and every GPU, with the bytes free right now);
* a safety margin and optional explicit memory budgets, the :class:`~planning.checklist.Checklist`.

The data types are in :mod:`planning.specs`, the cost model in :mod:`planning.costs`, the makespan simulation in
:mod:`planning.simulate` and the batch-size knapsack in :mod:`planning.knapsack`; all of it pure (import-linter
keeps ``extraction``, ``tritonclient`` and the executor out).

Output: a :class:`BatchPlan` -- per component a batch size (units per Triton request) and a device; how many
videos run at once; which models are resident in which pass (tier-0 models stay loaded, tier-1 models rotate
when memory or ``max_loaded_models_per_device`` forces it); the predicted peak memory per device and the
predicted makespan.

How it decides:

1. Fail fast: every model component must fit at batch 1, for one video, next to the tier-0 models, on some
   device it can run on; otherwise :class:`~common.errors.InsufficientMemory` (``insufficient_gpu_memory``
   on a GPU) names the component, the bytes it needs and the bytes usable.
2. Residency: if all models fit together (count and memory) there is one pass; otherwise tier-1 models are
   packed, in dependency order, into passes that each fit.
3. For each candidate (videos in parallel ``P`` x device assignment x pass packing), batch sizes are chosen per
   device by an exact multiple-choice knapsack: minimise the summed server time (from the measured batching
   curve, interpolated) under ``P x sum(working memory) + resident models + decode memory <= budget``. Memory is
   counted as if every component of every in-flight video held its largest request at once: conservative, no
   out-of-memory probing at run time.
4. Each feasible candidate's makespan is predicted by a small discrete-event simulation: ``P`` lanes take the
   videos in order; a video's stages (decode, client preparation, one stage per model component) run in
   dependency order; a model's single instance serves one stage at a time; stages sharing a device share its
   capacity (CPU cores, or one GPU) in proportion to their demand. The fastest candidate wins; ties go to fewer
   requests, then lower peak memory, then fewer videos in parallel. More videos in parallel must be predicted at
   least :data:`PARALLEL_MIN_GAIN` faster than the best plan with fewer (contention is not modelled). Components
   reused from the cache cost the checklist's ``reuse_s_per_component`` on the client's interpreter (one lane at
   a time); ``time_factors`` measured by a pilot on the corpus (``planning.executor``) multiply each component's
   stages.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any

from common.errors import ConfigError, InsufficientMemory
from common.graph import topo_order
from planning.checklist import Checklist, ModelEntry
from planning.costs import batch_options, client_bytes, decode_bytes, server_time, working_bytes
from planning.knapsack import knapsack
from planning.simulate import CLIENT_GIL, Stage, simulate, stage_rate
from planning.specs import (
    DEFAULT_MAX_LOADED_MODELS_PER_DEVICE,
    DEFAULT_MAX_VIDEOS_IN_PARALLEL,
    DEFAULT_SAFETY_MARGIN,
    BatchPlan,
    ComponentPlan,
    ComponentSpec,
    Device,
    VideoSpec,
    _gib,
)

PARALLEL_OPTIONS: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 12, 16)
# A candidate with more videos in parallel wins only if it is predicted this much faster than the best with fewer.
# Measured (docs/scaleout.md): on a one-core Ray node, four lanes predicted 0.8% faster than one ran 73% slower
# (Triton's server process spent 13 s of CPU instead of 0.5 s serving four client processes on one core).
PARALLEL_MIN_GAIN = 0.02
_MAX_ASSIGNMENTS = 64


@dataclass
class _Candidate:
    parallel: int
    assign: dict[str, str]
    passes: list[list[str]]
    batches: dict[str, int]
    peak: dict[str, int]
    makespan: float
    requests: int
    server_s: dict[str, float]
    reqs: dict[str, int]
    instances: dict[str, int] = field(default_factory=dict)

    def key(self) -> tuple:
        return (round(self.makespan, 6), self.requests, max(self.peak.values(), default=0), self.parallel)

    def summary(self) -> dict[str, Any]:
        return {"videos_in_parallel": self.parallel, "batch_sizes": dict(self.batches),
                "instances": dict(self.instances), "devices": dict(self.assign),
                "passes": len(self.passes), "predicted_makespan_s": round(self.makespan, 3),
                "predicted_peak_bytes": dict(self.peak), "requests": self.requests}


class _Planner:
    def __init__(self, videos: Sequence[VideoSpec], components: Sequence[ComponentSpec], devices: Sequence[Device],
                 checklist: Checklist, safety_margin: float, memory_budget: int | Mapping[str, int] | None,
                 max_videos_in_parallel: int, max_loaded_models_per_device: int,
                 loaded: set[str] | None, parallel_options: Sequence[int],
                 max_instances: int | Mapping[str, int] | None = None,
                 current_instances: Mapping[str, int] | None = None,
                 time_factors: Mapping[str, float] | None = None,
                 video_overhead_s: float | None = None, estimate_margin: float = 0.0) -> None:
        if not devices:
            raise ConfigError("the planner needs at least one device")
        if not 0 <= safety_margin < 1:
            raise ConfigError(f"safety_margin must be in [0, 1), got {safety_margin}")
        if not 0 <= estimate_margin < 1:
            raise ConfigError(f"estimate_margin must be in [0, 1), got {estimate_margin}")
        self.estimate_margin = estimate_margin
        self.videos = list(videos)
        self.comps = topo_order(components)
        self.by_name = {c.name: c for c in self.comps}
        self.devices = {d.name: d for d in devices}
        self.cl = checklist
        self.margin = safety_margin
        self.max_loaded = max_loaded_models_per_device
        self.loaded = loaded
        self.model_comps = [c for c in self.comps if c.uses_model]
        for c in self.model_comps:
            if c.name not in checklist.models:
                raise ConfigError(f"checklist ({checklist.hardware.id}, {checklist.profile}) has no measurements "
                                  f"for component {c.name!r}; re-profile")
        self.cpu = next((d for d in devices if d.kind == "cpu"), None)
        self.classes = sorted({v.size_class for v in self.videos})
        self.given: dict[str, int] = {}  # the budget: free memory less the safety margin, capped by memory_budget
        self.budget: dict[str, int] = {}  # what predictions may fill: the budget less the estimate margin
        for d in devices:
            usable = int((d.free_bytes + d.loaded_bytes) * (1 - safety_margin))
            cap = memory_budget.get(d.name) if isinstance(memory_budget, Mapping) else memory_budget
            self.given[d.name] = min(usable, int(cap)) if cap is not None else usable
            self.budget[d.name] = int(self.given[d.name] * (1 - estimate_margin))
        n = max(1, len(self.videos))
        self.parallel_options = sorted({p for p in parallel_options if 1 <= p <= min(n, max_videos_in_parallel)}
                                       or {1})
        self.max_units = {c.name: max((int(v.units.get(c.name, 0)) for v in self.videos), default=0)
                          for c in self.model_comps}
        self.options = {c.name: batch_options(self.entry(c.name), self.max_units[c.name]) for c in self.model_comps}
        self.decode_max = max((decode_bytes(checklist, v) for v in self.videos), default=0)
        self.current_instances = dict(current_instances or {})
        self.max_instances: dict[str, int] = {}
        for c in self.model_comps:
            if isinstance(max_instances, Mapping):
                self.max_instances[c.name] = int(max_instances.get(c.name, 1))
            elif max_instances is not None:
                self.max_instances[c.name] = int(max_instances)
            elif self.entry(c.name).device_kind == "cpu" and self.cpu is not None:
                self.max_instances[c.name] = max(1, round(self.cpu.concurrency))  # one busy instance per core
            else:
                self.max_instances[c.name] = 1
        self._time_cache: dict[tuple[str, int], tuple[float, int]] = {}
        # measured on the corpus itself (executor.run_pilot): each component's time / this model's prediction
        self.factors = {str(c): float(f) for c, f in (time_factors or {}).items()}
        self.video_overhead_s = video_overhead_s
        # measured (shared machine) -> idle-machine CPU seconds, on this machine's speed now
        self.cpu_scale = checklist.cpu_time_scale() * (self.cpu.speed_ratio if self.cpu else 1.0)

    def entry(self, comp: str) -> ModelEntry:
        return self.cl.models[comp]

    def label(self, comp: str) -> str:
        e = self.entry(comp)
        return f"{e.model}:{e.version}"

    def time(self, comp: str, b: int) -> tuple[float, int]:
        key = (comp, b)
        if key not in self._time_cache:
            t, r = server_time(self.entry(comp), self.videos, comp, b)
            self._time_cache[key] = (t * self.scale(comp) * self.factor(comp), r)
        return self._time_cache[key]

    def scale(self, comp: str | None) -> float:
        """CPU-side seconds are normalised to an idle machine; GPU seconds are used as measured. A model's
        server seconds also carry the checklist's ``request_time_factor`` (requests inside whole-video runs)."""
        device = self.cpu_scale if comp is None or self.entry(comp).device_kind == "cpu" else 1.0
        return device if comp is None else device * self.cl.request_time_factor

    def factor(self, comp: str) -> float:
        return self.factors.get(comp, 1.0)

    def allowed(self, comp: str) -> list[str]:
        kind = self.entry(comp).device_kind
        names = [d.name for d in self.devices.values() if d.kind == kind]
        if not names:
            raise ConfigError(f"component {comp!r}: the checklist measured it on {kind}, and no {kind} device is "
                              f"available; re-profile on this machine")
        return names

    # memory ----------------------------------------------------------------------------------------

    def cpu_extra(self, parallel: int, computing: Sequence[str], batches: Mapping[str, int]) -> int:
        """CPU RAM the client holds: decoded videos plus request copies (all devices' components)."""
        return parallel * (self.decode_max + sum(
            client_bytes(self.entry(c), self.classes, batches.get(c, 1)) for c in computing))

    def need(self, device: str, resident: Iterable[str], computing: Sequence[str], parallel: int,
             batches: Mapping[str, int], assign: Mapping[str, str], inst: Mapping[str, int] | None = None) -> int:
        inst = inst or {}
        fixed = sum(self.entry(c).fixed_bytes * inst.get(c, 1) for c in resident if assign[c] == device)
        work = parallel * sum(working_bytes(self.entry(c), self.classes, batches.get(c, 1))
                              for c in computing if assign[c] == device)
        if self.devices[device].kind == "cpu":
            work += self.cpu_extra(parallel, computing, batches)
        return fixed + work

    def insufficient(self, comp: str, device: str, need: int) -> InsufficientMemory:
        d = self.devices[device]
        code = "insufficient_gpu_memory" if d.kind == "gpu" else "insufficient_memory"
        model = self.entry(comp).fixed_bytes if self.entry(comp).device_kind == d.kind else 0
        return InsufficientMemory(
            f"component {comp!r} ({self.label(comp)}) needs {_gib(need)} on {device} at batch 1 for one video "
            f"(its model {_gib(model)}; working memory, decoded video and tier-0 models {_gib(need - model)}), "
            f"but only {_gib(self.budget[device])} is usable there ({_gib(d.free_bytes)} free"
            + (f" + {_gib(d.loaded_bytes)} held by loaded models" if d.loaded_bytes else "")
            + f", {self.margin:.0%} safety margin)",
            code=code, component=comp, device=device, need_bytes=need, free_bytes=d.free_bytes,
            budget_bytes=self.budget[device])

    # residency ------------------------------------------------------------------------------------

    def check_batch1(self, assign: Mapping[str, str]) -> None:
        """Fail fast when some component cannot run even alone at batch 1 next to the tier-0 models."""
        pinned = [c.name for c in self.model_comps if c.tier == 0]
        for c in self.model_comps:
            dev = assign[c.name]
            resident = [p for p in pinned if p == c.name or assign[p] == dev]
            resident = sorted(set(resident) | {c.name})
            computing = [c.name]
            need = self.need(dev, resident, computing, 1, {}, assign)
            if need > self.budget[dev]:
                raise self.insufficient(c.name, dev, need)
            if self.cpu is not None and dev != self.cpu.name:  # its decoded video and request copies in RAM
                need = self.cpu_extra(1, computing, {})
                if need > self.budget[self.cpu.name]:
                    raise self.insufficient(c.name, self.cpu.name, need)
        for dev in self.devices:  # all tier-0 models together, each computing at batch 1
            on_dev = [p for p in pinned if assign[p] == dev]
            if not on_dev:
                continue
            if len(on_dev) > self.max_loaded:
                raise ConfigError(f"{len(on_dev)} tier-0 models are pinned on {dev}, above "
                                  f"max_loaded_models_per_device={self.max_loaded}")
            need = self.need(dev, on_dev, on_dev, 1, {}, assign)
            if need > self.budget[dev]:
                worst = max(on_dev, key=lambda p: self.entry(p).fixed_bytes)
                raise self.insufficient(worst, dev, need)

    def pack(self, assign: Mapping[str, str], group_cap: int) -> list[list[str]] | None:
        """Passes of model components: tier-0 (pinned) in pass 1 with the first tier-1 group; tier-1 models packed
        per device, in dependency order, into groups that fit at batch 1 (count and memory)."""
        pinned = [c.name for c in self.model_comps if c.tier == 0]
        groups_by_dev: dict[str, list[list[str]]] = {}
        for dev in self.devices:
            tier1 = [c.name for c in self.model_comps if c.tier != 0 and assign[c.name] == dev]
            pin_dev = [p for p in pinned if assign[p] == dev]
            slots = self.max_loaded - len(pin_dev)
            if tier1 and slots < 1:
                raise ConfigError(f"max_loaded_models_per_device={self.max_loaded} leaves no slot for tier-1 models "
                                  f"on {dev} beside {len(pin_dev)} pinned tier-0 models")
            groups: list[list[str]] = []
            for c in tier1:
                if groups:
                    trial = [*groups[-1], c]
                    first = len(groups) == 1
                    computing = [*(pin_dev if first else []), *trial]
                    if (len(trial) <= min(slots, group_cap)
                            and self.need(dev, [*pin_dev, *trial], computing, 1, {}, assign) <= self.budget[dev]):
                        groups[-1] = trial
                        continue
                groups.append([c])
            groups_by_dev[dev] = groups
        n = max((len(g) for g in groups_by_dev.values()), default=0)
        passes: list[list[str]] = [list(pinned)] + [[] for _ in range(max(0, n - 1))]
        for groups in groups_by_dev.values():
            for i, g in enumerate(groups):
                passes[i].extend(g)
        # model-free components and modules: the earliest pass after all their dependencies
        where: dict[str, int] = {}
        for i, p in enumerate(passes):
            for c in p:
                where[c] = i
        for c in self.comps:
            dep_pass = max((where.get(d, 0) for d in c.dependencies), default=0)
            if c.name in where:
                if where[c.name] < dep_pass:
                    return None  # a model component would run before a dependency's pass: not a valid packing
                continue
            where[c.name] = dep_pass
        out = [[c.name for c in self.comps if where[c.name] == i] for i in range(len(passes))]
        return [p for p in out if p]

    def resident_sets(self, passes: list[list[str]]) -> list[list[str]]:
        pinned = [c.name for c in self.model_comps if c.tier == 0]
        res = []
        for p in passes:
            res.append(sorted(set(pinned) | {c for c in p if self.by_name[c].uses_model}))
        return res

    # batch sizes ----------------------------------------------------------------------------------

    def choose_batches(self, parallel: int, assign: Mapping[str, str], passes: list[list[str]],
                       inst: Mapping[str, int] | None = None) -> tuple[dict[str, int], dict[str, int]] | None:
        """Per pass and device, the batch sizes minimising summed server time within the budget (exact
        multiple-choice knapsack on a 1000-bucket grid, rounding memory up). None when P does not fit."""
        batches: dict[str, int] = {}
        peak: dict[str, int] = dict.fromkeys(self.devices, 0)
        resident = self.resident_sets(passes)
        for p, res in zip(passes, resident, strict=False):
            computing = [c for c in p if self.by_name[c].uses_model]
            for dev in self.devices:
                items = [c for c in computing if assign[c] == dev]
                fixed = sum(self.entry(c).fixed_bytes * (inst or {}).get(c, 1) for c in res if assign[c] == dev)
                extra = 0
                if self.devices[dev].kind == "cpu":
                    extra = parallel * self.decode_max
                    # client copies of components on other devices: reserved at their largest option
                    extra += parallel * sum(client_bytes(self.entry(c), self.classes, self.options[c][-1])
                                            for c in computing if assign[c] != dev)
                room = self.budget[dev] - fixed - extra
                if room < 0:
                    return None
                if not items:
                    peak[dev] = max(peak[dev], fixed + extra)
                    continue

                memo: dict[tuple[str, int], int] = {}  # the knapsack asks for the same (component, batch) often

                def mem(c: str, b: int, dev: str = dev, memo: dict[tuple[str, int], int] = memo) -> int:
                    if (c, b) not in memo:
                        m = working_bytes(self.entry(c), self.classes, b)
                        if self.devices[dev].kind == "cpu":
                            m += client_bytes(self.entry(c), self.classes, b)
                        memo[(c, b)] = parallel * m
                    return memo[(c, b)]

                chosen = knapsack(items, self.options, mem, self.time, room)
                if chosen is None:
                    return None
                batches.update(chosen)
                used = sum(mem(c, b) for c, b in chosen.items())
                peak[dev] = max(peak[dev], fixed + extra + used)
        return batches, peak

    # makespan -------------------------------------------------------------------------------------

    def jobs(self, pass_comps: Sequence[str], assign: Mapping[str, str], batches: Mapping[str, int],
             share: float) -> list[list[Stage]]:
        cpu = self.cpu.name if self.cpu else "cpu"
        k = self.cpu_scale
        out = []
        for v in self.videos:
            stages: list[Stage] = []
            decoded = False
            dec = self.cl.decode_for(v.size_class)
            for name in pass_comps:
                c = self.by_name[name]
                f = self.factor(name)
                if c.uses_frames and not decoded:
                    wall = v.decoded_frames * dec.seconds_per_decoded_frame * k * f
                    stages.append(Stage(wall, ((cpu, dec.cpu_ratio),), component=name))
                    decoded = True
                if c.uses_audio and v.audio_s > 0:
                    stages.append(Stage(v.audio_s * dec.audio_seconds_per_s * k * f, ((cpu, 1.0),), component=name))
                if not c.uses_model:
                    continue
                u = int(v.units.get(name, 0))
                if u <= 0:
                    continue
                e = self.entry(name)
                curve = e.curve(v.size_class)
                stages.append(Stage(u * curve.client_seconds_per_unit * k * f, ((cpu, 1.0),), component=name))
                b = batches[name]
                q, r = divmod(u, b)
                server = (q * curve.seconds(b) + (curve.seconds(r) if r else 0.0)) * self.scale(name) * f
                dev = assign[name]
                # a CPU request keeps curve.cpu_ratio(b) cores busy (OpenCV/torch threads): it runs at its idle
                # speed alone and slows by fair share beside other work
                demand = ((dev, curve.cpu_ratio(b)),) if dev == cpu else ((dev, 1.0), (cpu, 0.1))
                stages.append(Stage(server, demand, instance=f"{e.model}@{dev}", component=name))
            overhead = (self.video_overhead_s if self.video_overhead_s is not None
                        else self.cl.client_overhead_s_per_video * k)
            stages.append(Stage(overhead * share, ((cpu, 1.0),)))
            if v.reused:
                stages.append(Stage(v.reused * self.cl.reuse_s_per_component * share * k,
                                    ((cpu, 1.0), (CLIENT_GIL, 1.0))))
            out.append(stages)
        return out

    def component_seconds(self, batches: Mapping[str, int]) -> list[dict[str, float]]:
        """Per video, each component's predicted seconds when it runs alone (one video at a time, one pass), on
        these devices: a stage that asks more of a device than it has (a request that kept 1.6 cores busy where
        the checklist was measured, on a one-core node) runs slower by ``capacity / (background + demand)``, as
        :func:`planning.simulate.simulate` runs it. Pilots divide measured seconds by these, so a factor holds
        the corpus and the machine's speed, not the device's size: were it left out here, a one-core node's
        pilot factors would carry the slowdown once and the simulation would apply it again (measured: a
        one-core Ray node's plan predicted 36.6 s for 26.5 s whose stages summed to 28.3 s)."""
        assign = {c.name: self.allowed(c.name)[0] for c in self.model_comps}
        capacity = {d.name: d.concurrency for d in self.devices.values()}
        background = {d.name: d.background for d in self.devices.values()}
        out = []
        for stages in self.jobs([c.name for c in self.comps], assign, batches, 1.0):
            per: dict[str, float] = {}
            for st in stages:
                if st.component:
                    alone = {r: background.get(r, 0.0) + d for r, d in st.demand}
                    per[st.component] = per.get(st.component, 0.0) + st.work / stage_rate(st, capacity, alone)
            out.append(per)
        return out

    def makespan(self, parallel: int, assign: Mapping[str, str], passes: list[list[str]],
                 batches: Mapping[str, int], inst: Mapping[str, int] | None = None) -> float:
        inst = inst or {}
        capacity = {d.name: d.concurrency for d in self.devices.values()} | {CLIENT_GIL: 1.0}
        slots = {f"{self.entry(c).model}@{assign[c]}": inst.get(c, 1) for c in assign}
        total_comps = max(1, len(self.comps))
        t = 0.0
        resident = self.resident_sets(passes)
        loaded = set(self.loaded) if self.loaded is not None else set(resident[0])
        for p, res in zip(passes, resident, strict=False):
            for c in res:  # (re)load: not loaded now, or loaded with another instance count
                if c not in loaded or inst.get(c, 1) != self.current_instances.get(c, 1):
                    t += self.entry(c).load_seconds
            loaded = set(res) | {c for c in loaded if self.entry(c).tier == 0}
            t += simulate(self.jobs(p, assign, batches, len(p) / total_comps), parallel, capacity, slots,
                          {d.name: d.background for d in self.devices.values() if d.background})
        return t

    def with_instances(self, parallel: int, assign: Mapping[str, str], passes: list[list[str]],
                       batches: dict[str, int], peak: dict[str, int]):
        """Greedy: give the model with the most server time one more instance while the predicted makespan drops
        by at least 2% and memory fits (batch sizes re-chosen for the memory the extra instance takes)."""
        inst = dict.fromkeys(batches, 1)
        best = self.makespan(parallel, assign, passes, batches, inst)
        while True:
            order = sorted((c for c in batches if inst[c] < self.max_instances[c]),
                           key=lambda c: -self.time(c, batches[c])[0])
            for c in order:
                trial = {**inst, c: inst[c] + 1}
                chosen = self.choose_batches(parallel, assign, passes, trial)
                if chosen is None:
                    continue
                ms = self.makespan(parallel, assign, passes, chosen[0], trial)
                if ms < best * 0.98:
                    inst, best, (batches, peak) = trial, ms, chosen
                    break
            else:
                return inst, batches, peak, best

    # search ----------------------------------------------------------------------------------------

    def assignments(self) -> list[dict[str, str]]:
        names = [c.name for c in self.model_comps]
        choices = [self.allowed(c) for c in names]
        total = math.prod(len(ch) for ch in choices) if choices else 1
        if total <= _MAX_ASSIGNMENTS:
            return [dict(zip(names, combo, strict=False)) for combo in product(*choices)] or [{}]
        # longest-processing-time first onto the least loaded allowed device with room for batch 1
        work = {c: self.time(c, self.options[c][-1])[0] for c in names}
        load = dict.fromkeys(self.devices, 0.0)
        assign: dict[str, str] = {}
        for c in sorted(names, key=lambda c: -work[c]):
            dev = min(self.allowed(c), key=lambda d: (load[d], -self.budget[d]))
            assign[c] = dev
            load[dev] += work[c]
        return [assign]

    def run(self) -> BatchPlan:
        candidates: list[_Candidate] = []
        first_error: InsufficientMemory | None = None
        feasible_assignments = 0
        for assign in self.assignments():
            try:
                self.check_batch1(assign)
            except InsufficientMemory as exc:
                first_error = first_error or exc
                continue
            feasible_assignments += 1
            packings: list[list[list[str]]] = []
            n_tier1 = sum(1 for c in self.model_comps if c.tier != 0)
            for cap in range(max(1, n_tier1), 0, -1):
                packing = self.pack(assign, cap)
                if packing is not None and packing not in packings:
                    packings.append(packing)
                if len(packings) == 1 and len(packings[0]) == 1:
                    break  # everything fits in one pass: splitting only adds reloads and decoding
            for passes in packings:
                for parallel in self.parallel_options:
                    chosen = self.choose_batches(parallel, assign, passes)
                    if chosen is None:
                        continue
                    inst, batches, peak, ms = self.with_instances(parallel, assign, passes, *chosen)
                    times = {c: self.time(c, b) for c, b in batches.items()}
                    candidates.append(_Candidate(parallel, dict(assign), passes, batches, peak, ms,
                                                 sum(r for _, r in times.values()),
                                                 {c: t for c, (t, _) in times.items()},
                                                 {c: r for c, (_, r) in times.items()}, inst))
        if not candidates:
            if first_error is not None and feasible_assignments == 0:
                raise first_error
            raise InsufficientMemory("no plan fits the memory budget even with one video at batch 1",
                                     budgets=self.budget)
        candidates.sort(key=_Candidate.key)
        # more videos in parallel must buy a real gain: what they cost beyond the model (processes and server
        # threads contending for the cores) is not simulated
        fastest = candidates[0].makespan
        best = min((c for c in candidates if c.makespan * (1 - PARALLEL_MIN_GAIN) <= fastest),
                   key=lambda c: (c.parallel, c.key()))
        return self.to_plan(best, candidates)

    def to_plan(self, best: _Candidate, all_: list[_Candidate]) -> BatchPlan:
        where = {c: i for i, p in enumerate(best.passes) for c in p}
        comps: dict[str, ComponentPlan] = {}
        cpu = self.cpu.name if self.cpu else next(iter(self.devices))
        for c in self.comps:
            if c.uses_model:
                b = best.batches[c.name]
                comps[c.name] = ComponentPlan(
                    c.name, self.label(c.name), best.assign[c.name], b, best.reqs[c.name],
                    round(best.server_s[c.name], 3), working_bytes(self.entry(c.name), self.classes, b),
                    where[c.name], best.instances.get(c.name, 1))
            else:
                comps[c.name] = ComponentPlan(c.name, None, cpu, 0, 0, 0.0, 0, where[c.name])
        resident = []
        for res in self.resident_sets(best.passes):
            by_dev: dict[str, list[str]] = {}
            for c in res:
                by_dev.setdefault(best.assign[c], []).append(c)
            resident.append(by_dev)
        devices = {d.name: {"kind": d.kind, "free_bytes": d.free_bytes, "loaded_bytes": d.loaded_bytes,
                            "budget_bytes": self.given[d.name], "plannable_bytes": self.budget[d.name],
                            "estimate_margin": self.estimate_margin, "predicted_peak_bytes": best.peak[d.name],
                            "concurrency": d.concurrency, "background": d.background,
                            "speed_ratio": round(d.speed_ratio, 3)}
                   for d in self.devices.values()}
        alternatives = [c.summary() for c in all_ if c is not best][:5]
        return BatchPlan(videos=len(self.videos), videos_in_parallel=best.parallel, components=comps,
                         passes=best.passes, resident=resident, devices=devices, safety_margin=self.margin,
                         predicted_makespan_s=best.makespan, candidates=len(all_), alternatives=alternatives,
                         checklist=self.cl.summary(), max_loaded_models_per_device=self.max_loaded)


def plan(videos: Sequence[VideoSpec], components: Sequence[ComponentSpec], devices: Sequence[Device],
         checklist: Checklist, *, safety_margin: float = DEFAULT_SAFETY_MARGIN,
         memory_budget: int | Mapping[str, int] | None = None,
         max_videos_in_parallel: int = DEFAULT_MAX_VIDEOS_IN_PARALLEL,
         max_loaded_models_per_device: int = DEFAULT_MAX_LOADED_MODELS_PER_DEVICE,
         loaded: set[str] | None = None, parallel_options: Sequence[int] = PARALLEL_OPTIONS,
         max_instances: int | Mapping[str, int] | None = None,
         current_instances: Mapping[str, int] | None = None,
         time_factors: Mapping[str, float] | None = None,
         video_overhead_s: float | None = None, estimate_margin: float = 0.0) -> BatchPlan:
    """Choose the fastest plan that fits (see the module docstring).

    Args:
        videos: what to process.
        components: the component DAG (any order; dependencies are respected).
        devices: the devices and their free memory now.
        checklist: measurements, already checked against the server's model signatures.
        safety_margin: fraction of the free memory the plan leaves untouched.
        memory_budget: optional cap in bytes (one number for every device, or per device name).
        max_videos_in_parallel: upper bound on the videos processed at once.
        max_loaded_models_per_device: residency bound (tier-0 models count toward it).
        loaded: components whose models are loaded now (None: all of them).
        parallel_options: the numbers of videos in parallel to consider.
        max_instances: most Triton instances per model (default: CPU models one per available core, GPU 1).
        current_instances: component -> instances loaded now (changing it costs a reload).
        time_factors: component -> measured / predicted seconds on this corpus (a pilot, see
            ``planning.executor.run_pilot``): multiplies all of that component's stages (decode, preparation,
            requests). Missing components: 1.
        video_overhead_s: measured per-video seconds outside the modelled stages (modules, manifests), replacing
            the checklist's ``client_overhead_s_per_video``.
        estimate_margin: fraction of the budget the predicted peak must leave free for the memory model's own
            error (the executor passes :data:`planning.executor.ESTIMATE_MARGIN`, sized by the benchmark).

    Raises:
        InsufficientMemory: a component does not fit even at batch 1 for one video (names it, need, free).
    """
    p = _Planner(videos, components, devices, checklist, safety_margin, memory_budget, max_videos_in_parallel,
                 max_loaded_models_per_device, loaded, parallel_options, max_instances, current_instances,
                 time_factors, video_overhead_s, estimate_margin).run()
    if time_factors or video_overhead_s is not None:
        p.calibration.update(time_factors={c: round(f, 3) for c, f in (time_factors or {}).items()},
                             video_overhead_s=None if video_overhead_s is None else round(video_overhead_s, 4))
    return p


def predicted_component_seconds(videos: Sequence[VideoSpec], components: Sequence[ComponentSpec],
                                devices: Sequence[Device], checklist: Checklist, batches: Mapping[str, int],
                                time_factors: Mapping[str, float] | None = None) -> list[dict[str, float]]:
    """Per video, each component's predicted seconds alone (no other video, no contention) at ``batches``:
    the stage model the plan's makespan is simulated with, for comparing with a measured serial run."""
    return _Planner(videos, components, devices, checklist, 0.0, None, 1, DEFAULT_MAX_LOADED_MODELS_PER_DEVICE,
                    None, (1,), time_factors=time_factors).component_seconds(batches)
