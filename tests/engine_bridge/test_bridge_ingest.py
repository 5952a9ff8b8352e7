"""Cameras and events over OSC (documented addresses) into a take; garbage is counted, dropped."""

from __future__ import annotations

import json
import socket
import time

import numpy as np
import pytest

from machinima import osc, quat
from machinima.take import Take

from engine_bridge.errors import BridgeError
from engine_bridge.ingest import ADDR_CAMERA, ADDR_EVENT, OSCIngest, OSCIngestListener, TakeSink, camera_from_osc


def test_camera_message_forms():
    q = quat.from_axis_angle(np.array([1.0, 0, 0]), 0.2)
    name, v = camera_from_osc(("A", 1.0, 2.0, 3.0, *map(float, q)))
    assert name == "A" and v[:3].tolist() == [-1.0, 2.0, 3.0] and v[7:11].tolist() == [35, 36, 24, 0]
    _, v = camera_from_osc(("A", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 50.0, 24.0, 18.0, 2.5))
    assert v[7:11].tolist() == [50, 24, 18, 2.5]
    for bad in [("A", 1.0), (5, *[0.0] * 7), ("A", *[0.0] * 7), ("A/B", *[0.0] * 6, 1.0), ("A", *[0.0] * 6, 1.0, -1.0), ("A", *[0.0] * 6, float("nan"))]:
        with pytest.raises(BridgeError):
            camera_from_osc(bad)


def test_ingest_counts_garbage_and_never_raises():
    ing = OSCIngest()
    good = osc.encode_message(ADDR_CAMERA, ["cam", 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    ev = osc.encode_message(ADDR_EVENT, ["cue", json.dumps({"n": 1})])
    out = ing.feed(osc.encode_bundle([good, ev, osc.encode_message("/VMC/Ext/OK", [1])]))
    assert [o[0] for o in out] == ["camera", "event"] and out[1][2] == {"n": 1} and ing.ignored == 1
    rng = np.random.default_rng(0)
    for i in range(300):
        data = bytes(rng.integers(0, 256, size=int(rng.integers(0, 80)), dtype=np.uint8))
        if i % 3 == 0:
            data = good[: int(rng.integers(0, len(good)))]
        ing.feed(data)
    ing.feed(osc.encode_message(ADDR_EVENT, ["cue", "[1, 2]"]))
    ing.feed(osc.encode_message(ADDR_EVENT, ["cue", "{not json"]))
    ing.feed(osc.encode_message(ADDR_CAMERA, ["cam", 1.0]))
    assert ing.rejects["bad_event"] == 2 and ing.rejects["bad_camera"] >= 1 and ing.rejects["not_osc"] > 100


def test_osc_cameras_and_events_land_in_the_take(tmp_path):
    sink = TakeSink(tmp_path, fps=24)
    lis = OSCIngestListener(sink, host="127.0.0.1", port=0).start()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for i in range(10):
            tx.sendto(osc.encode_message(ADDR_CAMERA, ["dolly", float(i), 1.6, -2.0, 0.0, 0.0, 0.0, 1.0, 24.0 + i, 36.0, 24.0, 4.0]), ("127.0.0.1", lis.port))
            time.sleep(0.002)
        tx.sendto(b"\x00garbage!", ("127.0.0.1", lis.port))  # an engine that sends garbage
        tx.sendto(osc.encode_message(ADDR_EVENT, ["explosion", json.dumps({"power": 3})]), ("127.0.0.1", lis.port))
        end = time.monotonic() + 5
        while (sink.counts["camera"] < 10 or sink.counts["event"] < 1) and time.monotonic() < end:
            time.sleep(0.01)
    finally:
        lis.stop()
        tx.close()
    assert lis.ingest.rejects["not_osc"] == 1
    take_id = sink.close()
    take = Take.open(tmp_path / take_id)
    cam = take.store.read("camera/dolly")
    assert len(cam) == 10 and cam.values[:, 0].tolist() == [-float(i) for i in range(10)]
    assert cam.values[:, 7].tolist() == [24.0 + i for i in range(10)]
    assert np.all(np.diff(cam.t_ns) > 0) and take.store.stream("camera/dolly").meta["source"] == "engine"
    (ev,) = take.store.events(kind="event")
    assert ev["payload"] == {"name": "explosion", "payload": {"power": 3}, "source": "osc"}
    assert take.verify() == []


def test_listener_port_in_use(tmp_path):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    try:
        with pytest.raises(BridgeError, match="cannot listen"):
            OSCIngestListener(None, host="127.0.0.1", port=s.getsockname()[1])
    finally:
        s.close()
