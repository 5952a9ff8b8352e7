"""The per-chunk ledger: ``<step>/chunks.jsonl``, one line when a chunk starts, one when it ends.

The step's own ledger (``ledger.jsonl``) says which frames are finished; this one says which
task did them, where, in which attempt, and where the time went. A worker killed mid-chunk
leaves a ``start`` with no ``end``; Ray runs the chunk again (attempt 2), which skips the frames
the first attempt finished. So "only that chunk was redone" is a fact one can read here::

    {"event": "start", "job": "1f3a..", "chunk": 2, "frames": [8, 11], "pid": 4121, "node": "10.0.0.5", "node_id": "9c..", "t": ...}
    {"event": "end", "job": "1f3a..", "chunk": 2, "done": [10, 11], "skipped": [8, 9], "node_id": "9c..", "t_end": .., "queue_s": .., ...}

``node_id`` is Ray's id of the raylet (two raylets on one host share the IP); ``t`` and ``t_end``
are wall-clock seconds, so a plan's chunks can be laid on one time line.

Lines are appended with one ``write`` on an ``O_APPEND`` file, so workers on one filesystem
do not interleave them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

NAME = "chunks.jsonl"


def append(step_dir: str | Path, rec: dict[str, Any]) -> None:
    line = (json.dumps(rec, separators=(",", ":")) + "\n").encode()
    fd = os.open(Path(step_dir) / NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read(step_dir: str | Path, job: str | None = None) -> list[dict[str, Any]]:
    """Every line (of one job when ``job`` is given); a line cut by a crash is skipped."""
    p = Path(step_dir) / NAME
    if not p.exists():
        return []
    out = []
    for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if job is None or rec.get("job") == job:
            out.append(rec)
    return out


def attempts(step_dir: str | Path, job: str | None = None) -> dict[int, dict[str, int]]:
    """chunk -> {"starts": n, "ends": n}: a chunk started twice and ended once was redone."""
    out: dict[int, dict[str, int]] = {}
    for rec in read(step_dir, job):
        c = out.setdefault(int(rec["chunk"]), {"starts": 0, "ends": 0})
        c["starts" if rec.get("event") == "start" else "ends"] += 1
    return out
