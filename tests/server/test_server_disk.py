"""A real full disk under a running stage (a small tmpfs): directors are warned, the take is
``failed`` with a note and unlocked at once, ``record`` with no room creates nothing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import numpy as np
import pytest

from fs_helpers import fill, tmpfs
from server_helpers import client, perform, run, server_env, stage, synthetic_pose
from machinima import protocol as P
from machinima.fsutil import FileLock
from machinima.take import LOCK, Take, iter_take_folders, read_manifest


def test_a_full_disk_fails_the_take_cleanly_and_record_then_creates_nothing(tmp_path):
    with tmpfs(tmp_path / "disk", "3m") as root:
        async def main():
            async with stage(root) as srv:
                d = await client(srv, "director", "dana")
                perf = await client(srv, "performer", "alice")
                await perform(perf, 1)
                take_id = (await d.record())["take"]
                rng = np.random.default_rng(19)
                i = 0
                while srv.recorder.recording and i < 20_000:  # noise compresses badly: the disk fills
                    await perf.send_pose(synthetic_pose(i / 60) + rng.normal(0, 0.1, (55, 7)).astype(np.float32))
                    i += 1
                    await asyncio.sleep(0.001)
                assert not srv.recorder.recording, "the disk never filled"
                warning = await d.next_message({"warning"}, timeout=5)
                assert warning["code"] == "disk_full" and warning["take"] == take_id and "disk full" in warning["message"]
                # on disk now, while the server runs: failed, with its note, and not locked
                m = read_manifest(root / take_id)
                assert m.status == "failed" and any("recording stopped: disk full" in n for n in m.notes), m.notes
                assert not FileLock(root / take_id / LOCK).is_held_elsewhere()
                r = subprocess.run([sys.executable, "-m", "machinima", "takes", "recover", take_id, "--root", str(root)],
                                   capture_output=True, text=True, env=server_env(), timeout=60)
                assert r.returncode == 0 and r.stdout.strip() == f"{take_id}: failed", r.stderr
                # not a byte left: record answers disk_full in words and leaves no folder
                fill(root)
                with pytest.raises(P.ProtocolError) as err:
                    await d.record()
                assert err.value.code == "disk_full" and "no room to start take" in str(err.value)
                assert [p.name for p in iter_take_folders(root)] == [take_id]
                with pytest.raises(P.ProtocolError) as err:
                    await d.stop()
                assert err.value.code == "not_recording"
                assert await d.ping() < 5
                await d.close(), await perf.close()
                return take_id, i

        take_id, sent = run(main(), timeout=120)
        (root / "filler").unlink()
        # the catalog could not be written when the take failed: `takes list` still shows it failed
        r = subprocess.run([sys.executable, "-m", "machinima", "takes", "list", "--root", str(root), "--status", "failed", "--json"],
                           capture_output=True, text=True, env=server_env(), timeout=60)
        assert r.returncode == 0 and [t["id"] for t in json.loads(r.stdout)] == [take_id], (r.stdout, r.stderr)
        take = Take.open(root / take_id)
        n = len(take.store.read_mocap("alice"))
        assert 0 < n <= sent and take.verify() == []  # what was committed stays readable
