"""Motion capture ingest: every source -> frames of the canonical skeleton, with honest timing.

Layout (each parser is sans-I/O: bytes in, frames out; ``listener`` only drives them)::

    errors.py     the MocapError family
    frames.py     Frame (one performer's canonical pose at one instant) and pose helpers
    retarget.py   global->local conversion, bone-name maps, T-pose calibration
    vmcsource.py  VMC over OSC (machinima.vmc fast path), several performers per port
    oscmap.py     generic OSC with TOML mapping profiles (profiles/*.toml), via python-osc
    xsens.py      Xsens MVN network stream (MXTP 01/02/03/12/13/25), encoder for tests
    timing.py     jitter buffer, drop/dup/out-of-order/late counters, slerp gap fill, One-Euro
    sources.py    the registry of sources by name (entry points ``machinima.mocap_sources``)
    synthetic.py  the procedural performer (idle / walk / wave), deterministic by seed
    bvhsource.py  BVH playback as a live source (real time, looping, start offset)
    listener.py   asyncio UDP listeners, per-source health, recording into a take
    sender.py     UDP senders (synthetic, BVH, Xsens) used by ``machinima mocap send``
    cli.py        ``machinima mocap send | listen | stats | calibrate | profiles``
"""
