"""A minimal engine plugin, in Python, speaking the bridge's plugin protocol (version 1).

    machinima bridge play TAKE --plugin 127.0.0.1:8770 --record-into takes &
    python plugin_client.py ws://127.0.0.1:8770

It subscribes to every performer (Unity space), prints the playback state and the timecode of
each second of frames, and publishes a "follow" camera 3 m behind the first performer's hips,
which the bridge records into the take it opened (or forwards to the stage). The same messages
work from any websocket library in Unity (C#), Unreal (C++/Blueprint) or Godot.
"""

from __future__ import annotations

import json
import sys

from websockets.sync.client import connect


def main(url: str = "ws://127.0.0.1:8770") -> None:
    with connect(url) as ws:
        ws.send(json.dumps({"type": "hello", "protocol": "machinima.bridge", "version": 1, "client": "example-plugin"}))
        welcome = json.loads(ws.recv())
        print("welcome:", welcome)
        ws.send(json.dumps({"type": "subscribe", "performers": "*", "space": "unity"}))
        n = 0
        for raw in ws:
            msg = json.loads(raw)
            if msg["type"] == "playback":
                print("playback:", msg["state"], msg["timecode"], "x", msg["speed"])
            elif msg["type"] == "frame" and msg["performers"]:
                n += 1
                name, perf = next(iter(msg["performers"].items()))
                hips = perf["bones"]["Hips"]
                if n % 30 == 0:
                    print(msg["timecode"], name, "hips at", hips[:3])
                ws.send(json.dumps({"type": "camera", "name": "follow", "position": [hips[0], 1.6, hips[2] - 3.0],
                                    "rotation": [0, 0, 0, 1], "focal_mm": 35, "sensor_mm": [36, 24], "focus_m": 3.0}))
            elif msg["type"] == "error":
                print("error:", msg["code"], msg["message"])


if __name__ == "__main__":
    main(*sys.argv[1:])
