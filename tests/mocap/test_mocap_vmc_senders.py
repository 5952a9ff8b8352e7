"""VMC as real apps send it, over real loopback UDP, from python-osc (``SimpleUDPClient``,
``OscBundleBuilder``), never from machinima's encoder: every recorded frame is checked against
the truth the test built (vmc_senders.expected_pose)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from mocap.sources import VMCSource
from vmc_senders import (
    Pacer, blend_values, bundle, client, expected_pose, frame_messages, free_udp_port, message, record, root_values, split, BONE, ROOT,
)


def _check_frames(take, name: str, n: int, *, root_turns: bool = True, blend: bool = False) -> None:
    tr = take.store.read_mocap(name)
    assert len(tr) == n, f"{name}: {len(tr)} frames recorded of {n} sent"
    assert np.all(np.diff(tr.t_ns) > 0), "a recorded stamp went backwards"
    for k in range(n):
        want = expected_pose(k, root=root_values(k, turn=root_turns))
        np.testing.assert_allclose(tr.values[k], want, atol=2e-6, err_msg=f"{name} frame {k}: a bone from another frame")
    if blend:
        b = take.store.read("blend/" + name)
        assert b.meta["channels"] == ["A", "Blink_L"] and len(b) == n
        np.testing.assert_allclose(b.values, [[blend_values(k)["A"], blend_values(k)["Blink_L"]] for k in range(n)], atol=1e-6)


def test_single_messages_two_performers_60hz(tmp_path):
    """python-osc's SimpleUDPClient, one message per datagram (as SlimeVR's first VMC output and
    scripts send), 2 performers: T and OK last for one, no T or OK at all for the other."""
    port, n = free_udp_port(), 60

    def sender(name: str, with_time: bool) -> None:
        c, pace = client(port), Pacer()
        for k in range(n):
            for m in frame_messages(k, name=name, time_s=k / 60 if with_time else None, ok=with_time, markers="last"):
                c.send(m)
            pace.wait(1 / 60)

    take, summary, ingest = record(tmp_path, {port: VMCSource("vmc")}, [lambda: sender("ana", True), lambda: sender("bo", False)])
    for name in ("ana", "bo"):
        _check_frames(take, name, n)  # every frame, the last one too; root translation exact
        assert ingest.timing["vmc"][name].counts["late"] == 0
    assert summary[0]["loss_pct"] == 0.0 and not summary[0]["rejects"]


def test_root_without_hips_does_not_drift(tmp_path):
    """Bundles whose Root/Pos comes without a Hips bone: Root and Hips stay apart, so the root
    is composed into each frame once (it used to pile up: x = -1, -2, -3 ...)."""
    port, n = free_udp_port(), 30

    def sender() -> None:
        c, pace = client(port), Pacer()
        for k in range(n):
            c.send(bundle([message(ROOT, "root", 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0), message(BONE, "Spine", 0.0, 0.1, 0.0, 0.0, 0.0, 0.0, 1.0),
                           message("/VMC/Ext/T", k / 60)]))
            pace.wait(1 / 60)

    take, _, _ = record(tmp_path, {port: VMCSource("vmc")}, [sender])
    from machinima.skeleton import rest_pose

    hips = take.store.read_mocap("vmc-1").values[:, 0, :3]
    assert len(hips) == n
    np.testing.assert_allclose(hips, np.broadcast_to(rest_pose()[0, :3] + [-1.0, 0.0, 0.0], hips.shape), atol=1e-6)


@pytest.mark.parametrize("pacing", ["even", "uneven"])
@pytest.mark.parametrize("with_time", [True, False])
@pytest.mark.parametrize("parts", [2, 3])
def test_bundles_split_over_datagrams(tmp_path, parts, with_time, pacing):
    """A 55-bone frame with blendshapes split over 2 or 3 bundles (OscBundleBuilder), T and OK
    leading (2 parts) or trailing (3 parts) or absent, paced evenly (120 Hz) or unevenly:
    one frame per frame, stamped once, none late, no stale bone, no backward jump."""
    port, n, fps = free_udp_port(), 40, 120
    rng = random.Random(parts * 10 + with_time)

    def sender() -> None:
        c, pace = client(port), Pacer()
        for k in range(n):
            msgs = frame_messages(k, name="ana", blend=True, time_s=k / fps if with_time else None, ok=with_time, markers="first" if parts == 2 else "last")
            for chunk in split(msgs, parts):
                c.send(bundle(chunk))
            pace.wait(1 / fps if pacing == "even" else rng.choice([0.0005, 0.002, 0.006, 0.015, 0.04]))

    take, summary, ingest = record(tmp_path, {port: VMCSource("vmc")}, [sender])
    _check_frames(take, "ana", n, blend=True)
    counts = ingest.timing["vmc"]["ana"].counts
    assert counts["late"] == 0 and counts["received"] == n, counts
    if with_time:
        assert summary[0]["loss_pct"] == 0.0
    else:
        assert summary[0]["loss_pct"] is None  # no sender clock: a lost frame cannot be told from a pause


def test_a_held_up_listener_never_cuts_a_split_frame(tmp_path):
    """The flake of test_bundles_split_over_datagrams under load (41 frames of 40), made
    deterministic: the listener reads the first part of a frame split over 3 bundles, the rest
    arrives a moment later, and the listener is held up (a loaded machine, a slow consumer)
    past ``idle_ms`` before it judges which senders went quiet. The sender was never quiet: the
    rest waiting in the socket belongs to the frame, which comes out whole, once."""
    import time

    from machinima.take import Take
    from machinima.takewriter import TakeWriter
    from mocap.ingest import Ingest
    from mocap.listener import open_endpoints, poll_quiet

    port, n, fps = free_udp_port(), 6, 120
    take = Take.create(tmp_path / "takes", production="p", scene="1", shot="a", fps=60)
    ingest = Ingest(writer=TakeWriter(take))
    src = ingest.add_source(VMCSource("vmc"))
    (rx,) = open_endpoints(ingest, [("vmc", "127.0.0.1", port)]).values()
    c = client(port)
    try:
        for k in range(n):
            first, *rest = split(frame_messages(k, name="ana", blend=True, time_s=k / fps, markers="last"), 3)
            c.send(bundle(first))
            deadline = time.monotonic() + 5
            while rx.drain() == 0 and time.monotonic() < deadline:  # the listener has read the first part
                time.sleep(0.0005)
            for part in rest:
                c.send(bundle(part))  # sent right after: the sender is not quiet
            time.sleep(src.idle_ms * 1.2 / 1000)  # the listener is held up past idle_ms
            poll_quiet(ingest, {"vmc": rx})
    finally:
        rx.close()
    ingest.finish()
    ingest.end_take()
    _check_frames(Take.open(take.path), "ana", n, blend=True)
    counts = ingest.timing["vmc"]["ana"].counts
    assert counts["late"] == 0 and counts["received"] == n, counts
