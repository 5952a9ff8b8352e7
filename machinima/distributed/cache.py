"""Models loaded once per worker: a process-wide cache keyed by what was loaded.

Ray keeps a worker process alive between tasks of the same function, so a face-swap network
or a diffusion pipeline put here on the first chunk serves every later chunk on that worker.
``cached`` says how long the load took (0.0 when it was already there), so a job reports load
time apart from run time.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, TypeVar

T = TypeVar("T")

_CACHE: dict[str, Any] = {}
_LOCK = threading.Lock()
MAX_ENTRIES = 4  # a worker serving many jobs keeps the last few (models are large)


def cached(key: str | None, load: Callable[[], T]) -> tuple[T, float]:
    """``(value, seconds spent loading)``; ``key=None`` loads every time."""
    if key is None:
        t0 = time.perf_counter()
        return load(), time.perf_counter() - t0
    with _LOCK:
        if key in _CACHE:
            _CACHE[key] = _CACHE.pop(key)  # most recently used last
            return _CACHE[key], 0.0
    t0 = time.perf_counter()
    value = load()
    dt = time.perf_counter() - t0
    with _LOCK:
        _CACHE[key] = value
        while len(_CACHE) > MAX_ENTRIES:
            old = _CACHE.pop(next(iter(_CACHE)))
            close = getattr(old, "close", None)
            if callable(close):
                close()
    return value, dt


def clear() -> None:
    """Forget every cached value (tests; a worker told to free memory)."""
    with _LOCK:
        _CACHE.clear()
