"""T-pose calibration capture: listen briefly, average the chosen performer's pose."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from .errors import CalibrationError
from .listener import Ingest, serve
from .retarget import Calibration
from .sources import get_source


def capture_calibration(*, vmc: int | None = None, xsens: int | None = None, osc: int | None = None, profile: str = "plain",
                        host: str = "0.0.0.0", performer: str | None = None, seconds: float = 1.0, wait: float = 10.0) -> Calibration:
    if not any(p is not None for p in (vmc, xsens, osc)):
        raise CalibrationError("nothing to listen to", hint="give --vmc, --xsens or --osc")
    ingest = Ingest()
    bindings = []
    for kind, port, kw in (("vmc", vmc, {}), ("xsens", xsens, {}), ("osc", osc, {"profile": profile})):
        if port is not None:
            ingest.add_source(get_source(kind)(kind, **kw))
            bindings.append((kind, host, port))
    frames: dict[str, list[np.ndarray]] = {}
    first: dict[str, float] = {}

    def on_frame(f) -> None:
        if f.pose is None:  # a face-only sender has no pose to calibrate
            return
        frames.setdefault(f.performer, []).append(f.pose)
        first.setdefault(f.performer, time.monotonic())

    ingest.on_frame = on_frame

    async def run() -> None:
        stop = asyncio.Event()
        t0 = time.monotonic()

        def check() -> None:
            who = performer or (min(first, key=first.get) if first else None)
            if who in first and time.monotonic() - first[who] >= seconds:
                stop.set()
            elif who not in first and time.monotonic() - t0 > wait:
                stop.set()

        await serve(ingest, bindings, stop=stop, on_interval=check, interval_s=0.05)

    asyncio.run(run())
    who = performer or (min(first, key=first.get) if first else None)
    if who is None or who not in frames:
        heard = ", ".join(sorted(frames)) or "nobody"
        raise CalibrationError(f"no frames from {performer or 'any performer'} within {wait:g} s (heard: {heard})", hint="is the sender running and pointed at this port?")
    return Calibration.capture(who, np.stack(frames[who]))
