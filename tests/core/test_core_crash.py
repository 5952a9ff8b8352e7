"""A writer killed with SIGKILL mid-append loses nothing it had acknowledged."""

import os
import signal
import subprocess
import sys
import time

import numpy as np

from machinima.take import read_manifest, recover_all

WRITER = r"""
import sys, time, numpy as np
from machinima.take import Take
from machinima.skeleton import rest_pose
t = Take.create(sys.argv[1], production="p", scene="1", shot="1", fps=120)
t.add_performer("ada")
pose = np.broadcast_to(rest_pose(), (12, 55, 7)).copy()
i = 0
while True:
    ts = t.store.origin_ns + (np.arange(i, i + 12) * 8_333_333)
    pose[:, 0, 0] = np.arange(i, i + 12)        # value = sample index, to check order and content
    t.store.append("mocap/ada", ts, pose)
    acked = t.store.flush()
    print(acked, flush=True)                    # acknowledged to the outside world
    i += 12
    time.sleep(0.002)
"""


def test_sigkill_writer_keeps_acknowledged_records(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    acked = 0
    deadline = time.time() + 30
    while acked < 600 and time.time() < deadline:
        line = proc.stdout.readline()
        if line.strip():
            acked = int(line)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert acked >= 600
    recovered = recover_all(tmp_path)
    assert len(recovered) == 1
    folder = tmp_path / recovered[0]
    m = read_manifest(folder)
    assert m.status == "recovered"
    from machinima.take import Take

    tr = Take.open(folder).store.read_mocap("ada")
    assert len(tr) >= acked
    assert np.array_equal(tr.values[:, 0, 0], np.arange(len(tr)))  # nothing lost, nothing reordered
    assert Take.open(folder).store.integrity_check() == "ok"
