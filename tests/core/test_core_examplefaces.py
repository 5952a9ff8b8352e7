"""`machinima examples faces DIR`: the face-swap and lip-sync guides' material from an empty
folder. The clips must show the demo's portraits frame for frame (the truth is the generator's
own frames), the releases must be the pip-shipped photographs themselves, and nothing of the
user's is overwritten."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from machinima.demo_plate import plate_frames, source_frames
from machinima.errors import MachinimaError
from machinima.examplefaces import CLIPS, write_faces
from machinima.imageseq import read_video


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_clips_show_the_portraits_frame_for_frame_and_the_releases_are_the_shipped_photos(tmp_path):
    from matplotlib import cbook

    written = write_faces(tmp_path, frames=6)
    assert {p.name for p in written} >= {"hopper.mp4", "collins.mp4", "grace-hopper.jpg", "eileen-collins.png", "public-domain.txt"}
    for clip, truth in ((tmp_path / "hopper.mp4", list(source_frames(6))), (tmp_path / "collins.mp4", list(plate_frames(6)))):
        frames = list(read_video(clip))
        assert len(frames) == 6 and frames[0].shape == truth[0].shape
        for i, frame in enumerate(frames):
            err = np.abs(frame.astype(float) - truth[i]).mean()
            off = np.abs(frame.astype(float) - truth[5 - i]).mean() if i != 5 - i else np.inf  # the trivial baseline: another frame
            assert err < 3.0 and err < off / 2, (clip.name, i, err, off)
    assert _sha(tmp_path / "releases" / "grace-hopper.jpg") == _sha(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    assert [c.subject for c in CLIPS] == ["grace-hopper", "eileen-collins"]


def test_nothing_is_overwritten_without_force(tmp_path):
    mine = tmp_path / "hopper.mp4"
    mine.write_bytes(b"my own footage")
    with pytest.raises(MachinimaError, match="hopper.mp4 already exists"):
        write_faces(tmp_path, frames=2)
    assert mine.read_bytes() == b"my own footage" and not (tmp_path / "collins.mp4").exists()
    write_faces(tmp_path, frames=2, force=True)
    assert len(list(read_video(mine))) == 2
    with pytest.raises(MachinimaError, match="--frames"):
        write_faces(tmp_path / "new", frames=0)


def test_the_command_names_the_rights_subjects_and_fails_in_one_line(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "machinima", "examples", "faces", *a], capture_output=True, text=True,
                                    cwd=tmp_path, timeout=120)
    ok = run("clips", "--frames", "2")
    assert ok.returncode == 0, ok.stderr
    out = " ".join(ok.stdout.split())
    assert "rights subject grace-hopper" in out and "rights subject eileen-collins" in out
    again = run("clips", "--frames", "2")
    assert again.returncode != 0 and "already exists" in again.stderr and "Traceback" not in again.stderr
