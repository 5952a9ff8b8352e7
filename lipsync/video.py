"""Re-sync the mouth of a live-action clip to a dialogue track: one readable pipeline.

    1. check inputs; rights: every face on screen must match a valid ``lip_sync`` record
       (``machinima.rights.require_cleared``; the faces themselves, not a typed name)
    2. analyse the dialogue at the clip's frame rate (aligned to the text when given)
    3. for each frame (a resumable ``PostStep``): find the face (mediapipe face mesh, tracked),
       then repaint the mouth: Wav2Lip when weights are given, else the landmark mouth warp
    4. write frames + an mp4 with the dialogue muxed in
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from .analyze import lipsync_audio, write_rhubarb_json
from .audio import load_audio
from .errors import LipSyncError


@dataclass
class ResyncReport:
    out_dir: Path
    mp4: Path | None
    frames: int
    done: int
    skipped: int
    no_face: list[int]
    engine: str
    mode: str


def _probe_video(path: Path) -> tuple[Fraction, int]:
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise LipSyncError(f"{path} has no video stream")
            st = c.streams.video[0]
            rate = Fraction(st.average_rate or 25)
            n = st.frames or sum(1 for _ in c.decode(video=0))
    except av.error.FFmpegError as exc:
        raise LipSyncError(f"{path} is not a readable video ({exc})") from None
    return rate, int(n)


def resync_video(clip: str | Path, audio_path: str | Path, out_dir: str | Path, *, text: str | None = None,
                 weights: str | Path | None = None, production: str = "", subjects: list[str] | None = None,
                 override: str | None = None, strength: float = 1.0, progress: bool = True) -> ResyncReport:
    from machinima import rights
    from machinima.imageseq import read_image, read_video
    from machinima.poststep import PostStep, file_hash, write_video

    # 1. inputs and rights
    clip, audio_path, out_dir = Path(clip), Path(audio_path), Path(out_dir)
    if not clip.exists():
        raise LipSyncError(f"no video at {clip}")
    if not subjects and not override:
        raise LipSyncError("say whose face is re-synced: --subject NAME (needs a rights record with scope lip_sync)",
                           hint="or --rights-override 'reason' for your own test footage")
    fps, n_frames = _probe_video(clip)
    audio = load_audio(audio_path)
    # 2. dialogue -> mouth shapes at the clip's rate
    track = lipsync_audio(audio, fps, text)
    frames = list(read_video(clip))
    clearance = rights.require_cleared(production, "lip_sync", rights.faces_in_frames(range(len(frames)), frames.__getitem__),
                                       override=override, what=str(clip))  # every face on screen, not the --subject label
    shapes = track.shapes + ["X"] * max(0, len(frames) - len(track.shapes))
    engine = "wav2lip" if weights else "mouth-warp"
    params = {"engine": engine, "audio": file_hash(audio_path)[:16], "clip": file_hash(clip)[:16], "text": text or "",
              "strength": strength, "weights": file_hash(weights)[:16] if weights and Path(weights).is_file() else str(weights or "")}
    step = PostStep(out_dir, "lipsync-video", params, inputs={"clip": str(clip), "audio": str(audio_path)},
                    notes=[f"mouth re-synced by {engine}; analysis: {track.mode}"] + track.notes, rights=clearance)
    write_rhubarb_json(out_dir / "mouth.json", track.cues, sound_file=str(audio_path), duration=track.duration)
    # 3. per frame
    from .mouthwarp import FaceMesh, MouthWarp

    mesh = FaceMesh(video=False)
    warp = MouthWarp()
    model = mel = None
    if weights:
        from .wav2lip import load_generator, melspectrogram

        model = load_generator(weights)
        mel = melspectrogram(audio.samples)
    no_face: list[int] = []

    def process(batch: list[int]) -> list[dict[str, np.ndarray]]:
        out = []
        for f in batch:
            img = frames[f]
            lm = mesh.landmarks(img)
            if lm is None:
                no_face.append(f)  # a frame without a face passes through unchanged
                out.append({"frames": img})
                continue
            if model is not None:
                out.append({"frames": _wav2lip_frame(model, img, lm, mel, f, float(fps))})
            else:
                out.append({"frames": warp.apply(img, lm, shapes[f], strength)[0]})
        return out

    try:
        rep = step.run(range(len(frames)), process, progress=progress, description=f"lip sync ({engine})")
    finally:
        mesh.close()
    # 4. mp4 with the dialogue
    outs = step.outputs_of("frames")
    mp4 = out_dir / f"{out_dir.name}.mp4"
    write_video(mp4, (read_image(outs[f]) for f in sorted(outs)), fps=fps, before_signing=lambda p: _mux_audio(p, audio_path))
    return ResyncReport(out_dir, mp4, len(frames), len(rep.done), len(rep.skipped), sorted(no_face), engine, track.mode)


def _wav2lip_frame(model, img: np.ndarray, lm: np.ndarray, mel: np.ndarray, frame: int, fps: float) -> np.ndarray:
    import cv2

    from .wav2lip import IMG, mel_window, repaint

    x0, y0 = lm.min(axis=0)
    x1, y1 = lm.max(axis=0)
    pad = 0.1 * (x1 - x0)
    x0, y0 = int(max(0, x0 - pad)), int(max(0, y0 - pad))
    x1, y1 = int(min(img.shape[1], x1 + pad)), int(min(img.shape[0], y1 + pad))
    crop = cv2.resize(img[y0:y1, x0:x1], (IMG, IMG), interpolation=cv2.INTER_AREA)
    new = repaint(model, crop, mel_window(mel, frame, fps))
    out = img.copy()
    out[y0:y1, x0:x1] = cv2.resize(new, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    return out


def _mux_audio(mp4: Path, audio_path: Path) -> None:
    """Copy the video stream and add the dialogue as AAC (atomically)."""
    import os

    import av

    tmp = mp4.with_name(f".{mp4.stem}.mux.mp4")
    with av.open(str(mp4)) as vin, av.open(str(audio_path)) as ain, av.open(str(tmp), "w") as out:
        vs = out.add_stream_from_template(vin.streams.video[0])
        ast = out.add_stream("aac", rate=48000)
        res = av.AudioResampler(format="fltp", layout="stereo", rate=48000)
        for pkt in vin.demux(vin.streams.video[0]):
            if pkt.dts is None:
                continue
            pkt.stream = vs
            out.mux(pkt)
        for frame in ain.decode(audio=0):
            for rf in res.resample(frame):
                for pkt in ast.encode(rf):
                    out.mux(pkt)
        for pkt in ast.encode(None):
            out.mux(pkt)
    os.replace(tmp, mp4)
