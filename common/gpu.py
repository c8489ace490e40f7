"""GPU memory via NVML (``pynvml``), else ``torch.cuda``: what GPUs there are, their memory now, and peaks
sampled while work runs. Every probe answers "no GPU" (empty list / None) on a CPU-only host instead of raising,
and costs nothing there: without an NVIDIA driver neither library is imported. Nothing runs at import.

Used by the planner (devices and budgets), the extraction runner (peak GPU memory per component, in manifests)
and the observability alerts (free memory now).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class GpuInfo:
    """One GPU's memory now."""

    index: int
    name: str
    total_bytes: int
    free_bytes: int


def nvidia_driver_present() -> bool:
    """Whether an NVIDIA driver is loaded (its /proc entry or device nodes). Without one no GPU probe is worth
    its time: NVML is absent and ``import torch`` alone costs 1-2 s, on every run's planning path."""
    return Path("/proc/driver/nvidia").exists() or any(Path("/dev").glob("nvidia[0-9]*"))


def gpu_readers() -> tuple[int, Callable[[int], tuple[str, int, int]]] | None:
    """(GPU count, index -> (name, total bytes, free bytes)) via NVML when installed, else ``torch.cuda``; None
    without a driver or a working library. NVML stays initialised for the process (cheap, and GpuMemory samples
    it every few milliseconds)."""
    if not nvidia_driver_present():
        return None
    try:
        import pynvml

        pynvml.nvmlInit()

        def nvml(i: int) -> tuple[str, int, int]:
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(h)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            return (name.decode() if isinstance(name, bytes) else str(name)), int(mem.total), int(mem.free)

        return int(pynvml.nvmlDeviceGetCount()), nvml
    except Exception:
        pass
    try:
        import torch

        if not torch.cuda.is_available():
            return None

        def cuda(i: int) -> tuple[str, int, int]:
            free, total = torch.cuda.mem_get_info(i)
            return torch.cuda.get_device_name(i), int(total), int(free)

        return int(torch.cuda.device_count()), cuda
    except Exception:
        return None


def gpu_memory() -> list[GpuInfo]:
    """Every GPU's name, total and free memory now; empty on a CPU-only host."""
    readers = gpu_readers()
    if readers is None:
        return []
    count, read = readers
    try:
        return [GpuInfo(i, *read(i)) for i in range(count)]
    except Exception:
        return []


class GpuMemory:
    """Used memory of one GPU, sampled in a thread while a block runs (NVML, else ``torch.cuda``)."""

    def __init__(self, index: int, period_s: float = 0.002) -> None:
        self.index, self.period_s = index, period_s
        readers = gpu_readers()
        if readers is None:
            raise RuntimeError(f"no GPU {index} to measure: no NVIDIA driver, NVML or CUDA torch")
        self._info = readers[1]

    def used(self) -> int:
        _, total, free = self._info(self.index)
        return total - free

    def peak_during(self, fn) -> tuple[int, Any]:
        """Run ``fn`` while sampling; returns (peak used bytes, fn's result)."""

        peak = [self.used()]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], self.used())
                stop.wait(self.period_s)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        try:
            out = fn()
        finally:
            stop.set()
            t.join()
        return max(peak[0], self.used()), out


class PeakWindow:
    """The peak of one :meth:`GpuPeakSampler.window`: bytes in use (all GPUs summed) while it was open."""

    def __init__(self, start: int) -> None:
        self.peak = start


class GpuPeakSampler:
    """Memory in use on every GPU (summed), sampled every ``period_s`` on a daemon thread while started.

    GPU memory is device-wide (Triton's model instances, not this process, hold it), so a window's peak is what
    the device used while that window was open, whatever else ran then.
    """

    def __init__(self, read: Callable[[int], tuple[str, int, int]], count: int, period_s: float = 0.05) -> None:
        self._read, self._count, self.period_s = read, count, period_s
        self.total_bytes = sum(read(i)[1] for i in range(count))
        self._open: list[PeakWindow] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def used(self) -> int:
        total = 0
        for i in range(self._count):
            _, t, free = self._read(i)
            total += t - free
        return total

    def _sample(self) -> None:
        try:
            used = self.used()
        except Exception:  # a GPU that stops answering must not end the run: its peak stays what was seen
            return
        with self._lock:
            for w in self._open:
                w.peak = max(w.peak, used)

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            self._sample()

    def start(self) -> GpuPeakSampler:
        self._thread = threading.Thread(target=self._loop, name="gpu-peak-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @contextmanager
    def window(self) -> Iterator[PeakWindow]:
        """Track the peak while the block runs (sampled at its start and end too, so short blocks count)."""
        w = PeakWindow(self.used())
        with self._lock:
            self._open.append(w)
        try:
            yield w
        finally:
            self._sample()
            with self._lock:
                self._open.remove(w)


def gpu_peak_sampler(period_s: float = 0.05) -> GpuPeakSampler | None:
    """A sampler over every GPU, or None on a host without one (the manifests then record NULL, not 0)."""
    readers = gpu_readers()
    if readers is None or readers[0] == 0:
        return None
    try:
        return GpuPeakSampler(readers[1], readers[0], period_s)
    except Exception:
        return None
