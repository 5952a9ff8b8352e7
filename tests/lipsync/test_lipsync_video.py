"""`lipsync video` as a take post step: the plate's mouth re-synced into <take>/post/<step-id>/,
the dialogue from the take's own audio/, provenance and resume from PostStep, and a face that is
not there is an error, never "re-synced"."""

import json
import subprocess
import sys

import numpy as np
import pytest
from lipsync_helpers import make_take, write_wav
from machinima.imageseq import list_frames

OVERRIDE = ["--rights-override", "public-domain NASA portrait, test"]


def _plate(folder, face, n=8):
    from machinima.imageseq import write_image

    folder.mkdir()
    for i in range(n):  # the portrait drifting right, numbered from 1 like a camera's frames
        write_image(folder / f"{i + 1:06d}.png", np.roll(face, 2 * i, axis=1))
    return folder


def _video(*args, cwd):
    return subprocess.run([sys.executable, "-m", "machinima", "lipsync", "video", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_video_step_in_the_take_with_its_audio(tmp_path, face, speech):
    import av

    samples, _ = speech
    take = make_take(tmp_path / "takes", ("eileen",), fps=25)
    from machinima.provenance import record_decision  # pixel-exact checks below: no watermark, a recorded decision

    record_decision(take, False, "pixel-exact lip re-sync test")
    plate = _plate(tmp_path / "plate", face)
    write_wav(tmp_path / "line.wav", samples[:16000])
    base = [take, "--plate", plate, "--subject", "eileen", "--production", "film"]
    r = _video(*base, "--audio", tmp_path / "line.wav", cwd=tmp_path)
    assert r.returncode == 1 and "lip_sync not cleared" in r.stderr and "Traceback" not in r.stderr
    r = _video(*base, "--audio", tmp_path / "line.wav", *OVERRIDE, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "8 frames re-synced" in r.stdout
    step = take / "post" / "lipsync"
    assert min(list_frames(step / "frames")) == 1  # the plate's numbering
    assert (take / "audio" / "line.wav").read_bytes() == (tmp_path / "line.wav").read_bytes()
    params = json.loads((step / "params.json").read_text())
    assert params["step"] == "lipsync-video" and params["inputs"]["audio"] == "audio/line.wav"
    assert "public-domain" in json.dumps(params["rights"]) and params["no_face"] == []
    with av.open(str(step / "lipsync.mp4")) as c:  # PyAV reads what we wrote: frames and the dialogue
        assert c.streams.video[0].frames == 8 and c.streams.audio
    before, after = np.asarray(face), _read(list_frames(step / "frames")[1])
    assert np.abs(after.astype(int) - before.astype(int))[:100].max() == 0  # only the mouth region changes
    # the take's own audio is the input when --audio is not given; a rerun redoes nothing
    r = _video(*base, *OVERRIDE, cwd=tmp_path)
    assert r.returncode == 0 and "0 frames re-synced, 8 already done" in r.stdout, r.stderr


def _read(path):
    from machinima.imageseq import read_image

    return read_image(path)


def test_no_face_is_an_error_not_a_resync(tmp_path, speech):
    samples, _ = speech
    take = make_take(tmp_path / "takes", ("eileen",), fps=25)
    plate = _plate(tmp_path / "plate", np.full((256, 256, 3), 90, np.uint8), n=4)
    write_wav(tmp_path / "line.wav", samples[:8000])
    base = [take, "--plate", plate, "--audio", tmp_path / "line.wav", *OVERRIDE, "--step-id", "sync"]
    r = _video(*base, cwd=tmp_path)
    assert r.returncode == 1 and "no face found on frame 1 of" in r.stderr and "Traceback" not in r.stderr
    assert "re-synced" not in r.stdout
    r = _video(*base, "--allow-no-face", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "0 frames re-synced" in r.stdout and "no face on 4 frame(s)" in r.stdout
    assert json.loads((take / "post" / "sync" / "params.json").read_text())["no_face"] == [1, 2, 3, 4]


def test_take_audio_choices(tmp_path):
    from machinima.errors import TakeError
    from machinima.takeaudio import import_audio, resolve_audio, take_audio

    take = make_take(tmp_path / "takes")
    with pytest.raises(TakeError, match="has no audio in audio/"):
        take_audio(take)
    write_wav(tmp_path / "a.wav", np.zeros(1600))
    write_wav(tmp_path / "b.wav", np.ones(1600) * 0.1)
    assert resolve_audio(take, tmp_path / "a.wav") == take / "audio" / "a.wav" == take_audio(take)
    assert import_audio(take, tmp_path / "a.wav") == take / "audio" / "a.wav"  # same content: not copied twice
    import_audio(take, tmp_path / "b.wav")
    with pytest.raises(TakeError, match=r"several audio files \(a.wav, b.wav\)"):
        take_audio(take)
    assert resolve_audio(take, "b") == take / "audio" / "b.wav"
    (tmp_path / "new").mkdir()
    write_wav(tmp_path / "new" / "a.wav", np.ones(1600) * 0.2)
    with pytest.raises(TakeError, match="already has a different audio/a.wav"):
        import_audio(take, tmp_path / "new" / "a.wav")
    assert (take / "audio" / "a.wav").read_bytes() == (tmp_path / "a.wav").read_bytes()  # nothing overwritten


def test_mouth_warp_moves_lips_toward_target(face):
    from lipsync.mouthwarp import FaceMesh, MouthWarp, mouth_opening, mouth_width

    mesh = FaceMesh()
    lm = mesh.landmarks(face)
    assert lm is not None and lm.shape == (478, 2)
    warp = MouthWarp()
    opened, tgt = warp.apply(face, lm, "D")
    after = mesh.landmarks(opened)
    assert mouth_opening(tgt) > mouth_opening(lm)
    assert mouth_opening(after) > mouth_opening(lm) + 0.02  # re-detected: the mouth really opened
    puckered, _ = warp.apply(face, lm, "F")
    assert mouth_width(mesh.landmarks(puckered)) < mouth_width(lm) - 0.03  # and narrowed for OO
    far = np.abs(opened.astype(int) - face.astype(int))
    assert far[:100].max() == 0 and far[400:].max() == 0  # only the mouth region changes
    assert mesh.landmarks(np.zeros((200, 200, 3), np.uint8)) is None
    mesh.close()
