"""Probes of the machine as it is now: process memory (RSS and exact peaks), CPU load of other processes, GPU
memory, and the speed of a core. The profiler measures a checklist with them and the executor reads the devices
with them before planning; each probe exists once.

Memory on CPU is the resident set of the Triton server's process tree (python backend stubs are child processes,
one per model instance) read from /proc: ``clear_refs`` = 5 resets each process's peak (VmHWM), so the peak during
a measured window is exact, not sampled. On a GPU it is the device memory in use (NVML, else
``torch.cuda.mem_get_info``), sampled while requests run. Nothing here runs at import.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

# The GPU probes live in common.gpu (extraction samples GPU memory per component and may not import the planner);
# re-exported under their old names for the planner's callers.
from common.gpu import GpuInfo as GpuInfo
from common.gpu import GpuMemory as GpuMemory
from common.gpu import gpu_memory as gpu_memory
from common.gpu import nvidia_driver_present as nvidia_driver_present

# ----------------------------------------------------------------------------------------------- processes


def process_tree(pid: int) -> list[Any]:
    """``pid``'s process and all its descendants (psutil processes; empty when it is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def status_bytes(pid: int, key: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``) in bytes; 0 when unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def rss_bytes(pids: Iterable[int]) -> int:
    return sum(status_bytes(p, "VmRSS") for p in pids)


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds the processes ``pids`` have spent so far, all threads (gone ones count 0)."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def reset_peaks(pids: Iterable[int]) -> None:
    """Reset the peak RSS (VmHWM) of each process to its current RSS (Linux ``clear_refs`` = 5)."""
    for p in pids:
        try:
            Path(f"/proc/{p}/clear_refs").write_text("5")
        except OSError:
            pass


def peak_delta(pids: Iterable[int], before: Mapping[int, int]) -> int:
    """Sum over processes of (peak RSS since the reset - RSS at the reset)."""
    return sum(max(0, status_bytes(p, "VmHWM") - before.get(p, 0)) for p in pids)


def model_processes(server_pid: int, model: str) -> list[int]:
    """Pids of the python backend stubs serving ``model`` (their command line names its ``model.py``)."""
    return [p.pid for p in process_tree(server_pid)[1:] if any(f"/{model}/" in a for a in _cmdline(p))]


def _cmdline(p: Any) -> list[str]:
    try:
        return list(p.cmdline())
    except Exception:
        return []


# ----------------------------------------------------------------------------------------------- CPU load


class BackgroundMeter:
    """Cores kept busy by *other* processes over an interval: system busy CPU time minus that of ``own`` pids
    (this process, the Triton tree), divided by wall time."""

    def __init__(self, own: Callable[[], Iterable[int]]) -> None:
        self.own = own
        self._t = self._sys = self._mine = 0.0

    @staticmethod
    def _busy() -> float:
        import psutil

        t = psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)

    def _mine_now(self) -> float:
        import psutil

        total = 0.0
        for pid in self.own():
            try:
                c = psutil.Process(pid).cpu_times()
                total += c.user + c.system + getattr(c, "children_user", 0.0) + getattr(c, "children_system", 0.0)
            except psutil.Error:
                pass
        return total

    def start(self) -> BackgroundMeter:
        import time

        self._t, self._sys, self._mine = time.perf_counter(), self._busy(), self._mine_now()
        return self

    def busy_cores(self) -> float:
        """Since :meth:`start` (processes that exited in between are counted as background: a lower bound on
        our own use, so an upper bound on the background)."""
        import time

        wall = max(time.perf_counter() - self._t, 1e-6)
        other = (self._busy() - self._sys) - max(0.0, self._mine_now() - self._mine)
        return round(max(0.0, other / wall), 3)


def background_busy_cores(sample_s: float = 1.0, own: Iterable[int] = ()) -> float:
    """Cores other processes keep busy now, sampled over ``sample_s`` (this process and ``own`` excluded)."""
    import time

    pids = [os.getpid(), *own]
    m = BackgroundMeter(lambda: pids).start()
    time.sleep(sample_s)
    return m.busy_cores()


# ----------------------------------------------------------------------------------------------- GPUs


# GpuInfo, gpu_memory, GpuMemory and the NVML/torch readers: common.gpu (re-exported at the top of this module).


# ----------------------------------------------------------------------------------------------- speed




def speed_probe(repeats: int = 7) -> float:
    """Seconds of a fixed single-threaded CPU workload (best of ``repeats``; ~5 ms each on a 2-core EPYC VM).

    OpenCV image pyramid work (grayscale, resize, integral image, blur: what Haar detection and decoding do) and
    small float32 matrix products (what the CPU models do). The best of several runs measures the core's speed,
    not momentary contention (the planner measures that separately, as background busy cores). The checklist
    records it (``speed_probe_s``); the planner measures it again before planning and scales CPU times by the
    ratio when it is outside :data:`planning.checklist.SPEED_RATIO_DEADBAND` (:func:`planning.checklist.speed_ratio`).
    """
    import time

    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    a = rng.standard_normal((192, 192)).astype(np.float32)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        best = math.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
            for f in (1.0, 0.8, 0.64, 0.5, 0.4):
                r = cv2.resize(g, None, fx=f, fy=f, interpolation=cv2.INTER_LINEAR)
                cv2.integral(r)
                cv2.GaussianBlur(r, (5, 5), 0)
            b = a
            for _ in range(8):
                b = np.tanh(b @ a)
            best = min(best, time.perf_counter() - t0)
        return best
    finally:
        cv2.setNumThreads(threads)
