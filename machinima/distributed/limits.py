"""A task that declares N CPUs uses about N cores: the worker's thread pools sized to match.

Ray's ``num_cpus`` is bookkeeping: it decides how many tasks a node runs side by side, not how
many cores a task's process may use. OpenCV, torch and the step's frame-I/O threads (read-ahead,
write-behind: PNG/QOI encoding releases the GIL) each size themselves from the machine's core
count, so on 2 cores one "1-CPU" worker already keeps more than one core busy, two of them
fight, and "2 workers against 1" measures the fight. ``pin_threads(n)`` caps all three at ``n``
in this process; the scheduler calls it on every chunk with the task's ``num_cpus`` (``n >= 1``,
a fractional share counts as 1), and the benchmark calls it in-process too, so every variant
runs under the same limits.
"""

from __future__ import annotations

import os
import sys


def pin_threads(n: float | int) -> int:
    """Cap OpenCV, torch (if imported), BLAS/OpenMP (for libraries loaded later) and the frame-I/O
    pools at ``n`` threads; returns the cap. Cheap to call again (each chunk does)."""
    k = max(1, int(n))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(k)
    try:
        import cv2

        cv2.setNumThreads(k)
    except ImportError:
        pass
    torch = sys.modules.get("torch")  # never imported for this: a composite worker has no torch
    if torch is not None:
        try:
            if torch.get_num_threads() != k:
                torch.set_num_threads(k)
        except RuntimeError:
            pass
    from ..frameio import limit_io_workers

    limit_io_workers(k)  # read-ahead / write-behind pools created from now on
    return k


def unpin() -> None:
    """Back to the machine's defaults for the frame-I/O pools (tests; the in-process CLI)."""
    from ..frameio import limit_io_workers

    limit_io_workers(None)
