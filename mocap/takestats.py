"""Figures of a recorded take's mocap: frames, rate, gaps per performer, and the per-source
health the listener stored in take.json (``extra.mocap``)."""

from __future__ import annotations

import numpy as np


def take_stats(take) -> dict:
    store = take.store
    perfs = []
    for name in store.performers():
        tr = store.read_mocap(name)
        n = len(tr)
        secs = (tr.t_ns[-1] - tr.t_ns[0]) / 1e9 if n > 1 else 0.0
        dt = np.diff(tr.t_ns) / 1e6 if n > 1 else np.zeros(0)
        med = float(np.median(dt)) if dt.size else 0.0
        gaps = int(np.sum(dt > 1.5 * med)) if med > 0 else 0
        blend = 0
        if any(s.name == f"blend/{name}" for s in store.streams()):
            blend = len(store.read(f"blend/{name}"))
        perfs.append({"name": name, "frames": n, "seconds": round(secs, 4), "rate_hz": round((n - 1) / secs, 3) if secs > 0 else 0.0,
                      "gaps": gaps, "longest_gap_ms": round(float(dt.max()), 3) if dt.size else 0.0, "blend_frames": blend})
    extra = take.manifest.extra.get("mocap", {}) if isinstance(take.manifest.extra, dict) else {}
    return {"take": take.id, "fps": take.manifest.fps, "status": take.manifest.status, "performers": perfs, "sources": extra.get("sources", [])}
