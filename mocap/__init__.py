"""Motion capture ingest: every source -> frames of the canonical skeleton, with honest timing.

Layout (each parser is sans-I/O: bytes in, frames out; ``listener`` only drives them)::

    errors.py     the MocapError family
    frames.py     Frame (one performer's canonical pose at one instant) and pose helpers
    retarget.py   global->local conversion, bone-name maps, T-pose calibration
    sources.py    the source registry and the VMC source (machinima.vmc: decode, assemble frames per sender)
    oscmap.py     generic OSC with TOML mapping profiles (profiles/*.toml), via python-osc
    xsens.py      Xsens MVN network stream (MXTP 01/02/03/12/13/25), encoder for tests
    timing.py     jitter buffer, drop/dup/out-of-order/late counters, slerp gap fill, One-Euro
    synthetic.py  the procedural performer (idle / walk / wave), deterministic by seed
    bvhsource.py  BVH playback as a live source (real time, looping, start offset)
    ingest.py     Ingest: sources -> timing -> the take writer and the live outputs (no sockets)
    listener.py   UDP sockets (machinima.udprecv, kernel stamps) driving Ingest; timer ticks
    sender.py     UDP senders (synthetic, BVH, Xsens) used by ``machinima mocap send``
    cli.py        ``machinima mocap send | listen | stats | calibrate | profiles``
"""
