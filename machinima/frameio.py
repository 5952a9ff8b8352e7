"""Frame I/O that keeps the cores busy: read ahead, write behind, memory bounded.

A 1080p PNG write costs ~150-230 ms on one core while a composite kernel computes a frame in
~16 ms: a step that decodes, computes and encodes in turn spends most of its time in codecs.
The codecs (OpenCV, the reference QOI coder, OpenEXR, PyAV) release the GIL, so a small
thread pool overlaps them with the kernel:

- ``ReadAhead(items, load, depth)`` yields ``(item, load(item))`` in order, with at most
  ``depth`` loads running or waiting ahead of the consumer;
- ``Prefetch(keys, load, depth)``: ``get(key)`` for kernels that read their own inputs (plates,
  passes), loading the next keys of the expected order in the background;
- ``WriteBehind(depth, workers)`` runs write jobs in the background; ``submit`` blocks while
  ``depth`` jobs are pending (each holds a frame), so memory stays bounded whatever the speed of
  the disk; ``drain()`` waits for all and re-raises the first failure.

``in_flight(frame_bytes)`` picks the depth from the frame size (a budget, 2..16 frames);
``summary_line`` is what every step prints at its end: frames/s disk to disk beside the
kernel's own.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MEMORY_BUDGET = 384 << 20  # bytes of frames in flight per queue (read-ahead, write-behind)


def in_flight(frame_bytes: int, *, budget: int = MEMORY_BUDGET, lo: int = 2, hi: int = 16) -> int:
    """How many frames a queue may hold: the budget over the frame size, at least ``lo``
    (overlap needs two), at most ``hi`` (more does not go faster, it only holds memory)."""
    return max(lo, min(hi, budget // max(1, int(frame_bytes))))


def usable_cores() -> int:
    """The cores this process may run on (its affinity: a container's or ``taskset``'s limit, which
    ``os.cpu_count`` ignores: 2 usable cores of a 64-core host must not start 64 codec threads)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


_IO_CAP: int | None = None  # set by limit_io_workers: a Ray task declaring N CPUs uses about N


def io_workers() -> int:
    """Codec threads per pool: the usable cores, at least 2 (one decodes while the kernel
    computes), at most 4 (the kernel itself wants the rest), or the cap a task set."""
    if _IO_CAP is not None:
        return _IO_CAP
    return max(2, min(4, usable_cores()))


def limit_io_workers(n: int | None) -> None:
    """Cap the codec threads of pools created from now on at ``n`` (None: the machine's default).
    ``machinima.distributed.limits.pin_threads`` calls it with a task's ``num_cpus``."""
    global _IO_CAP
    _IO_CAP = None if n is None else max(1, int(n))


def _openblas_controls() -> list[tuple[Callable[[], int], Callable[[int], None]]]:
    """(get, set) of the thread count of each OpenBLAS this process has loaded (numpy's, scipy's):
    found in /proc/self/maps, called through ctypes (no threadpoolctl in the environment)."""
    import ctypes

    paths = set()
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                path = line.rstrip().split(" ")[-1]
                if "openblas" in os.path.basename(path).lower() and ".so" in path:
                    paths.add(path)
    except OSError:  # not Linux
        return []
    out = []
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for suffix in ("64_", ""):  # numpy's wheels: openblas64_ symbols; a system OpenBLAS: plain ones
            get, put = getattr(lib, f"openblas_get_num_threads{suffix}", None), getattr(lib, f"openblas_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                put.argtypes = [ctypes.c_int]
                out.append((get, put))
                break
    return out


class blas_threads:
    """``with blas_threads(1):`` the BLAS of numpy/scipy on ``n`` threads, restored after.

    Why: a post step runs frames side by side on its own threads, and the small matrix products
    inside a frame (a watermark's basis, a weighted mean) wake OpenBLAS's threads, which spin
    while they wait, on cores the frames need: whole composites on the loaded 2-core machine
    took 152-153 ms of CPU a frame with ``OPENBLAS_NUM_THREADS=1`` against 166-169 without (2
    pairs, load ~6; a second set of 3 pairs was within its noise). That variable only works
    before numpy loads, hence the library's own call."""

    def __init__(self, n: int = 1) -> None:
        self.n = max(1, int(n))
        self._saved: list[tuple[Callable[[int], None], int]] = []

    def __enter__(self) -> "blas_threads":
        for get, put in _openblas_controls():
            self._saved.append((put, int(get())))
            put(self.n)
        return self

    def __exit__(self, *exc: object) -> None:
        for put, n in self._saved:
            put(n)
        self._saved.clear()


class ReadAhead(Iterator[tuple[T, R]]):
    """Iterate ``(item, load(item))`` in order with up to ``depth`` loads ahead.

    A failed load re-raises when its item is reached (not before: the frames before it are
    still processed and written)."""

    def __init__(self, items: Iterable[T], load: Callable[[T], R], depth: int = 4, workers: int | None = None) -> None:
        self._items = iter(items)
        self._load = load
        self._depth = max(1, depth)
        self._pool = ThreadPoolExecutor(max_workers=workers or min(self._depth, io_workers()), thread_name_prefix="read-ahead")
        self._queue: deque[tuple[T, Future]] = deque()
        self.wait_s = 0.0  # time the consumer waited for a frame (I/O not hidden by compute)
        self._fill()

    def _fill(self) -> None:
        while len(self._queue) < self._depth:
            try:
                item = next(self._items)
            except StopIteration:
                return
            self._queue.append((item, self._pool.submit(self._load, item)))

    def __next__(self) -> tuple[T, R]:
        if not self._queue:
            self.close()
            raise StopIteration
        item, fut = self._queue.popleft()
        t0 = time.perf_counter()
        try:
            value = fut.result()
        finally:
            self.wait_s += time.perf_counter() - t0
        self._fill()
        return item, value

    def close(self) -> None:
        for _, fut in self._queue:
            fut.cancel()
        self._queue.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "ReadAhead[T, R]":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Prefetch:
    """``get(key)`` for a kernel that reads its inputs itself: the next ``depth`` keys of the
    expected order are loaded in the background; a key out of order is loaded when asked.
    Bounded: at most ``depth + 1`` loads ahead of the last key asked for."""

    def __init__(self, keys: Iterable[Any], load: Callable[[Any], Any], depth: int = 4, workers: int | None = None) -> None:
        self._keys = list(keys)
        self._index = {k: i for i, k in enumerate(self._keys)}
        self._load = load
        self.depth = max(1, depth)
        self._pool = ThreadPoolExecutor(max_workers=workers or min(self.depth, io_workers()), thread_name_prefix="prefetch")
        self._futures: dict[Any, Future] = {}
        self._lock = threading.Lock()
        self.wait_s = 0.0

    def get(self, key: Any) -> Any:
        i = self._index.get(key)
        if i is None:
            return self._load(key)
        with self._lock:
            for k in list(self._futures):  # keys far behind this one were skipped: drop them
                if self._index[k] < i - self.depth:
                    self._futures.pop(k).cancel()
            fut = self._futures.pop(key, None)
            for k in self._keys[i + 1:i + 1 + self.depth]:
                if k not in self._futures:
                    self._futures[k] = self._pool.submit(self._load, k)
        t0 = time.perf_counter()
        try:
            # in place, but on the pool: with one worker every load stays on one thread (a video decoder)
            return (fut if fut is not None else self._pool.submit(self._load, key)).result()
        finally:
            self.wait_s += time.perf_counter() - t0

    def warm(self) -> None:
        """Start loading the first ``depth + 1`` keys now, before the first ``get``: a step whose
        set-up leaves a core idle (single-threaded measurement) reads its first frames meanwhile."""
        with self._lock:
            for k in self._keys[:self.depth + 1]:
                if k not in self._futures:
                    self._futures[k] = self._pool.submit(self._load, k)

    def close(self) -> None:
        with self._lock:
            for f in self._futures.values():
                f.cancel()
            self._futures.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


class WriteBehind:
    """Background write jobs, at most ``depth`` pending (each one holds its frame in memory)."""

    def __init__(self, depth: int = 4, workers: int | None = None) -> None:
        self.depth = max(1, depth)
        self._pool = ThreadPoolExecutor(max_workers=workers or min(self.depth, io_workers()), thread_name_prefix="write-behind")
        self._slots = threading.Semaphore(self.depth)
        self._pending: set[Future] = set()
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self.wait_s = 0.0  # time ``submit`` blocked on a full queue (the disk/codec is the bottleneck)
        self.peak = 0

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Queue ``fn(*args)``; blocks while ``depth`` jobs are pending; raises an earlier job's error."""
        self.raise_error()
        t0 = time.perf_counter()
        self._slots.acquire()
        self.wait_s += time.perf_counter() - t0
        try:
            fut = self._pool.submit(fn, *args)
        except BaseException:
            self._slots.release()
            raise
        with self._lock:
            self._pending.add(fut)
            self.peak = max(self.peak, len(self._pending))
        fut.add_done_callback(self._done)
        return fut

    def _done(self, fut: Future) -> None:
        with self._lock:
            self._pending.discard(fut)
            if fut.exception() is not None and self._error is None:
                self._error = fut.exception()
        self._slots.release()

    def raise_error(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def drain(self) -> None:
        """Wait until every queued job has finished (written), then re-raise the first failure."""
        t0 = time.perf_counter()
        while True:
            with self._lock:
                pending = list(self._pending)
            if not pending:
                break
            for f in pending:
                try:
                    f.result()
                except BaseException:  # noqa: BLE001 - kept in _error, raised below
                    pass
        self.wait_s += time.perf_counter() - t0
        self.raise_error()

    def close(self) -> None:
        """Finish what was queued (finished frames are kept), then stop the threads."""
        try:
            self.drain()
        finally:
            self._pool.shutdown(wait=True)


def summary_line(what: str, frames: int, wall_s: float, kernel_s: float, *, read_wait_s: float = 0.0,
                 write_wait_s: float = 0.0, bytes_written: int = 0) -> str:
    """One line for the end of a step: disk-to-disk frames/s beside the kernel's frames/s and
    where the rest went (waits on reads and on writes the pool could not hide)."""
    if frames <= 0:
        return f"{what}: no new frames"
    d2d = frames / wall_s if wall_s > 0 else 0.0
    k = f"{frames / kernel_s:.1f} fps" if kernel_s > 0 else "n/a"
    mb = f", {bytes_written / frames / 1e6:.2f} MB/frame" if bytes_written else ""
    return (f"{what}: {frames} frames in {wall_s:.1f} s = {d2d:.1f} fps disk to disk; kernel {kernel_s:.1f} s ({k}); "
            f"waited {read_wait_s:.1f} s on reads, {write_wait_s:.1f} s on writes{mb}")
