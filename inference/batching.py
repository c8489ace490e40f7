"""Opportunistic micro-batching: concurrent requests for one model are predicted as one DataFrame.

One consumer task per model takes the first queued request, adds whatever else is queued (up to
``max_batch``, optionally waiting ``max_wait_s`` for more), and runs one ``predict`` in the model's own thread.
With one client there is no added wait; with sixteen, one forward pass serves many requests. If a batch fails,
its rows are retried one by one so a single bad row cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

Row = dict[str, float]


class MicroBatcher:
    def __init__(self, predict: Callable[[list[Row]], list[dict[str, float]]], max_batch: int = 64,
                 max_wait_s: float = 0.0, name: str = "model",
                 on_batch: Callable[[int, float], None] | None = None) -> None:
        self._predict = predict
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.name = name
        self._on_batch = on_batch
        self._queue: asyncio.Queue[tuple[Row, asyncio.Future]] | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"predict-{name}")
        self._busy = 0

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"batcher-{self.name}")

    async def submit(self, row: Row) -> tuple[dict[str, float], float, int]:
        """Predict one row; returns (output row, seconds the model call took, batch size it ran in)."""
        if self._queue is None:
            raise RuntimeError(f"batcher {self.name} not started")
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((row, fut))
        return await fut

    async def _collect(self) -> list[tuple[Row, asyncio.Future]]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        deadline = time.perf_counter() + self.max_wait_s
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), left))
            except TimeoutError:
                break
        return batch

    async def _call(self, rows: list[Row]) -> tuple[list[dict[str, float]], float]:
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        out = await loop.run_in_executor(self._executor, self._predict, rows)
        return out, time.perf_counter() - t0

    async def _run(self) -> None:
        while True:
            batch = await self._collect()
            self._busy = len(batch)
            live = [(r, f) for r, f in batch if not f.done()]
            try:
                if live:
                    await self._serve(live)
            finally:
                self._busy = 0

    async def _serve(self, batch: list[tuple[Row, asyncio.Future]]) -> None:
        try:
            outs, secs = await self._call([r for r, _ in batch])
            if self._on_batch:
                self._on_batch(len(batch), secs)
            for (_, fut), out in zip(batch, outs, strict=True):
                if not fut.done():
                    fut.set_result((out, secs, len(batch)))
        except Exception as exc:
            if len(batch) == 1:
                if not batch[0][1].done():
                    batch[0][1].set_exception(exc)
                return
            for row, fut in batch:  # isolate: one bad row must not fail the others
                try:
                    (out,), secs = await self._call([row])
                    if not fut.done():
                        fut.set_result((out, secs, 1))
                except Exception as one_exc:
                    if not fut.done():
                        fut.set_exception(one_exc)

    @property
    def pending(self) -> int:
        return (self._queue.qsize() if self._queue else 0) + self._busy

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Wait until queued and running predictions finish, then stop (used after a reload swap)."""
        deadline = time.perf_counter() + timeout_s
        while self.pending and time.perf_counter() < deadline:
            await asyncio.sleep(0.005)
        await self.close()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        if self._queue is not None:
            while not self._queue.empty():
                _, fut = self._queue.get_nowait()
                if not fut.done():
                    fut.set_exception(RuntimeError(f"batcher {self.name} closed"))
        self._executor.shutdown(wait=False)

    def __repr__(self) -> str:  # pragma: no cover
        return f"MicroBatcher({self.name}, max_batch={self.max_batch})"


