"""The makespan model: a small discrete-event simulation of videos' stages on lanes that share devices (processor
sharing) and models' Triton instances (FIFO). Pure."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# The extraction process's interpreter: lanes are threads, so pure-Python work (reusing cached artifacts) runs one
# lane at a time, whatever the cores (measured: 4,000 cached demo videos took 57 s with 1 lane, 96 s with 2).
CLIENT_GIL = "client-interpreter"


@dataclass(frozen=True)
class Stage:
    """One piece of one video's work: ``work`` seconds at full speed, holding ``instance`` (a model's single
    Triton instance) if set, using ``demand`` units of each resource (device name -> cores / GPU share)."""

    work: float
    demand: tuple[tuple[str, float], ...]
    instance: str | None = None
    component: str = ""  # whose work it is (decode counts for the first component that needs frames)


def stage_rate(stage: Stage, capacity: Mapping[str, float], load: Mapping[str, float]) -> float:
    """The speed (fraction of full speed) of ``stage`` while its resources carry ``load`` in all (its own demand
    included): each resource over its capacity slows every stage on it by ``capacity / load``; the stage runs at
    its slowest resource's pace."""
    return min((min(1.0, capacity.get(r, 1.0) / load[r]) if load[r] > 0 else 1.0 for r, _ in stage.demand),
               default=1.0)


def simulate(jobs: Sequence[Sequence[Stage]], lanes: int, capacity: Mapping[str, float],
             instances: Mapping[str, int] | None = None, background: Mapping[str, float] | None = None) -> float:
    """Makespan of ``jobs`` (one stage list per video) on ``lanes`` parallel workers.

    Lanes take jobs in order; a lane runs its job's stages one after another. A stage waits (FIFO) for one of
    its model's ``instances`` (default 1) when all are held by other lanes. Running stages share each resource:
    when their summed demand (plus the resource's constant ``background`` demand) exceeds its capacity, every
    stage on it slows by ``capacity / demand`` (processor sharing, i.e. the OS's fair share)."""
    queue = deque(range(len(jobs)))
    lane_job: list[int | None] = [None] * max(1, lanes)
    lane_pos = [0] * len(lane_job)
    running: dict[int, float] = {}  # lane -> remaining work
    waiting: dict[str, deque[int]] = {}
    held: dict[str, int] = {}
    slots = dict(instances or {})
    t = 0.0

    def stage_of(lane: int) -> Stage:
        return jobs[lane_job[lane]][lane_pos[lane]]  # type: ignore[index]

    def start_next(lane: int) -> None:
        """Advance ``lane`` to its next runnable stage (taking a new job when its job is done)."""
        while True:
            if lane_job[lane] is None or lane_pos[lane] >= len(jobs[lane_job[lane]]):
                if not queue:
                    lane_job[lane] = None
                    return
                lane_job[lane], lane_pos[lane] = queue.popleft(), 0
                continue
            st = stage_of(lane)
            if st.work <= 0:
                lane_pos[lane] += 1
                continue
            if st.instance is not None:
                if held.get(st.instance, 0) >= slots.get(st.instance, 1):
                    waiting.setdefault(st.instance, deque()).append(lane)
                    return
                held[st.instance] = held.get(st.instance, 0) + 1
            running[lane] = st.work
            return

    for lane in range(len(lane_job)):
        start_next(lane)
    while running:
        load: dict[str, float] = dict(background or {})
        for lane in running:
            for res, d in stage_of(lane).demand:
                load[res] = load.get(res, 0.0) + d
        rate = {lane: stage_rate(stage_of(lane), capacity, load) for lane in running}
        dt = min(running[lane] / rate[lane] for lane in running)
        t += dt
        done = []
        for lane in running:
            running[lane] -= rate[lane] * dt
            if running[lane] <= 1e-9:
                done.append(lane)
        for lane in done:
            del running[lane]
            st = stage_of(lane)
            lane_pos[lane] += 1
            if st.instance is not None:
                q = waiting.get(st.instance)
                if q:  # the freed instance goes straight to the next waiting lane
                    nxt = q.popleft()
                    running[nxt] = stage_of(nxt).work
                else:
                    held[st.instance] -= 1
            start_next(lane)
    return t
