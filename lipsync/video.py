"""Re-sync the mouth on a live-action plate to a dialogue line, as a post step of a take.

    <take>/post/<step-id>/frames/NNNNNN.png   the plate's frames, mouth repainted (plate numbering)
    <take>/post/<step-id>/mouth.json          the mouth cues used (Rhubarb JSON)
    <take>/post/<step-id>/<step-id>.mp4       the frames with the dialogue muxed in
    <take>/post/<step-id>/params.json         provenance: inputs, hashes, rights, frames without a face

One readable pipeline:

    1. check inputs; rights: every face on screen must match a valid ``lip_sync`` record
       (``machinima.rights.require_cleared_inheriting``; the faces themselves, not a typed name;
       a face a verified face-swap merge step put in is cleared by the merge's records); the
       dialogue is the take's own audio (``<take>/audio/``), or a file that is copied there first
    2. analyse the dialogue at the plate's frame rate (aligned to the text when given)
    3. for each frame (a resumable ``PostStep``): find the face (mediapipe face mesh), then repaint
       the mouth: Wav2Lip when weights are given, else the landmark mouth warp. A frame without a
       face stops the step with the frame's number (the person asked for a face there), unless
       ``allow_no_face`` passes such frames through, listed
    4. write the mp4 with the dialogue
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .analyze import lipsync_audio, write_rhubarb_json
from .audio import load_audio
from .errors import LipSyncError


@dataclass
class ResyncReport:
    out_dir: Path
    mp4: Path | None
    frames: int
    resynced: int  # frames repainted in this run
    skipped: int  # frames already done by an earlier run
    engine: str
    mode: str
    no_face: list[int] = field(default_factory=list)  # frames passed through without a face (all runs)


@dataclass
class Plate:
    """The frames to repaint: a video file or a folder of numbered images, read one at a time."""

    numbers: list[int]
    fps: Fraction
    identity: str  # what changes when the plate changes (hash of the file, or of names and sizes)
    read: Callable[[int], np.ndarray]  # position -> RGB uint8


def open_plate(path: Path, fps: str | Fraction | None, take_fps: Fraction) -> Plate:
    """A video (its own rate unless ``fps`` says otherwise) or a folder of numbered frames (at
    ``fps``, else the take's rate)."""
    from machinima.imageseq import list_frames, read_image, read_video
    from machinima.poststep import file_hash, stable_hash
    from machinima.timecode import parse_rate

    if path.is_dir():
        files = list_frames(path)
        if not files:
            raise LipSyncError(f"no numbered frames in {path}")
        paths = list(files.values())
        ident = stable_hash([(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in paths])
        return Plate(list(files), parse_rate(fps) if fps else take_fps, ident, lambda i: read_image(paths[i]))
    if not path.is_file():
        raise LipSyncError(f"no plate at {path} (a video file or a folder of numbered frames)")
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise LipSyncError(f"{path} has no video stream")
            rate = Fraction(c.streams.video[0].average_rate or 25)
        frames = list(read_video(path))
    except av.error.FFmpegError as exc:
        raise LipSyncError(f"{path} is not a readable video ({exc})") from None
    if not frames:
        raise LipSyncError(f"{path} holds no video frames")
    return Plate(list(range(len(frames))), parse_rate(fps) if fps else rate, file_hash(path)[:16], lambda i: frames[i])


def resync_video(take: str | Path, plate_path: str | Path, *, audio: str | Path | None = None, step_id: str = "lipsync",
                 text: str | None = None, weights: str | Path | None = None, production: str | None = None, subjects: list[str] | None = None,
                 override: str | None = None, strength: float = 1.0, plate_fps: str | None = None, allow_no_face: bool = False,
                 progress: bool = True, ray: str | None = None, chunk_size: int | None = None) -> ResyncReport:
    """The mouth on ``plate_path`` re-synced to the dialogue; ``ray`` (``auto``, ``host:6379``,
    ``local``): the frames as chunks on that cluster (``lipsync.distributed.LipSyncJob``), the
    analysis and the rights check here first."""
    from machinima import rights
    from machinima.poststep import PostStep, file_hash
    from machinima.take import Take
    from machinima.takeaudio import resolve_audio

    # 1. inputs and rights
    take_path, plate_path = Path(take), Path(plate_path)
    manifest = Take.open(take_path).manifest
    if not subjects and not override:
        raise LipSyncError("say whose face is re-synced: --subject NAME (needs a rights record with scope lip_sync)",
                           hint="or --rights-override 'reason' for your own test footage")
    plate = open_plate(plate_path, plate_fps, manifest.fps)
    position = {num: i for i, num in enumerate(plate.numbers)}  # the plate's frame number -> its time
    # every face on screen, not the --subject label; faces a face-swap merge put in inherit its clearance (verified)
    clearance = rights.require_cleared_inheriting(production or manifest.slate.production, "lip_sync",
                                                  rights.faces_in_frames(plate.numbers, lambda num: plate.read(position[num])),
                                                  _plate_files(plate_path), override=override, what=str(plate_path))
    audio_path = resolve_audio(take_path, audio)
    dialogue = load_audio(audio_path)
    # 2. dialogue -> mouth shapes at the plate's rate
    track = lipsync_audio(dialogue, plate.fps, text)
    shapes = track.shapes + ["X"] * max(0, len(plate.numbers) - len(track.shapes))
    engine = "wav2lip" if weights else "mouth-warp"
    out_dir = take_path / "post" / step_id
    params = {"engine": engine, "audio": file_hash(audio_path)[:16], "plate": plate.identity, "plate_fps": str(plate.fps),
              "text": text or "", "strength": strength, "allow_no_face": allow_no_face,
              "weights": file_hash(weights)[:16] if weights and Path(weights).is_file() else str(weights or "")}
    earlier = set(_recorded_no_face(out_dir))  # before PostStep rewrites params.json (a rerun keeps the list)
    step = PostStep(out_dir, "lipsync-video", params,
                    inputs={"plate": str(plate_path), "audio": audio_path.relative_to(take_path).as_posix()},
                    notes=[f"mouth re-synced by {engine}; analysis: {track.mode}"] + track.notes, rights=clearance)
    write_rhubarb_json(out_dir / "mouth.json", track.cues, sound_file=audio_path.relative_to(take_path).as_posix(), duration=track.duration)
    # 3. per frame
    if ray:
        from machinima.distributed import StepSpec, run_job

        from .distributed import LipSyncJob

        job = LipSyncJob(StepSpec.of(step), str(plate_path.resolve()), str(plate_fps) if plate_fps else None, str(manifest.fps), shapes, strength,
                         allow_no_face, str(Path(weights).resolve()) if weights else None, str(audio_path.resolve()))
        jrep = run_job(job, plate.numbers, address=ray, chunk_size=chunk_size, progress=progress, description=f"lip sync ({engine}) on Ray")
        rep, step = jrep, jrep.step
        all_no_face = sorted(earlier | {int(f) for e in jrep.extras for f in e.get("no_face", [])})
        step.write_params(no_face=all_no_face)
        return _finish(step, out_dir, step_id, plate, audio_path, rep, all_no_face, engine, track.mode)
    frames = Resyncer(plate, shapes, strength, allow_no_face, str(plate_path), weights, dialogue.samples if weights else None)
    process, mesh, no_face = frames.process, frames.mesh, frames.no_face
    try:
        rep = step.run(plate.numbers, process, progress=progress, description=f"lip sync ({engine})")
    finally:
        mesh.close()
        all_no_face = sorted(earlier | set(no_face))
        step.write_params(no_face=all_no_face)
    return _finish(step, out_dir, step_id, plate, audio_path, rep, all_no_face, engine, track.mode)


def _plate_files(path: Path) -> dict[int, Path] | None:
    """A frame folder's files (the rights check verifies them against their step's signed manifest)."""
    from machinima.imageseq import list_frames

    return dict(list_frames(path)) if path.is_dir() else None


class Resyncer:
    """The per-frame work, loaded once: the face mesh, the mouth warp or the Wav2Lip network (and
    the dialogue's mel spectrogram). ``process`` is a ``PostStep`` frame function; frames without
    a face (with ``allow_no_face``) pass through and are listed in ``no_face``."""

    def __init__(self, plate: Plate, shapes: list[str], strength: float, allow_no_face: bool, plate_name: str,
                 weights: str | Path | None, samples: np.ndarray | None) -> None:
        from .mouthwarp import FaceMesh, MouthWarp

        self.plate, self.shapes, self.strength, self.allow_no_face, self.plate_name = plate, shapes, strength, allow_no_face, plate_name
        self.position = {num: i for i, num in enumerate(plate.numbers)}
        self.mesh = FaceMesh(video=False)
        self.warp = MouthWarp()
        self.model = self.mel = None
        self.device = "cpu"
        if weights:
            from .wav2lip import best_device, load_generator, melspectrogram

            self.device = best_device()
            self.model = load_generator(weights, self.device)
            self.mel = melspectrogram(samples)
        self.no_face: list[int] = []

    def process(self, batch: list[int]) -> list[dict[str, np.ndarray]]:
        out = []
        for num in batch:
            pos = self.position[num]
            img = self.plate.read(pos)
            lm = self.mesh.landmarks(img)
            if lm is None:
                if not self.allow_no_face:
                    raise LipSyncError(f"no face found on frame {num} of {self.plate_name} (lip sync asked for one there)",
                                       hint="a face too small or turned away? frames done so far are kept; --allow-no-face passes such frames through")
                self.no_face.append(num)
                out.append({"frames": img})
            elif self.model is not None:
                out.append({"frames": _wav2lip_frame(self.model, img, lm, self.mel, pos, float(self.plate.fps), self.device)})
            else:
                out.append({"frames": self.warp.apply(img, lm, self.shapes[pos], self.strength)[0]})
        return out


def _finish(step: Any, out_dir: Path, step_id: str, plate: Plate, audio_path: Path, rep: Any, all_no_face: list[int], engine: str,
            mode: str) -> ResyncReport:
    """4. the mp4 with the dialogue, from the finished frames."""
    from machinima.imageseq import mux_audio, read_image
    from machinima.poststep import write_video

    no_face = [f for f in rep.done if f in set(all_no_face)]
    outs = step.outputs_of("frames")
    mp4 = out_dir / f"{step_id}.mp4"
    write_video(mp4, (read_image(outs[f]) for f in sorted(outs)), fps=plate.fps, before_signing=lambda p: mux_audio(p, audio_path))
    return ResyncReport(out_dir, mp4, len(plate.numbers), len(rep.done) - len(no_face), len(rep.skipped), engine, mode, all_no_face)


def _recorded_no_face(out_dir: Path) -> list[int]:
    import json

    try:
        return [int(f) for f in json.loads((out_dir / "params.json").read_text()).get("no_face", [])]
    except (OSError, ValueError, TypeError):
        return []


def _wav2lip_frame(model, img: np.ndarray, lm: np.ndarray, mel: np.ndarray, frame: int, fps: float, device: str) -> np.ndarray:
    import cv2

    from .wav2lip import IMG, mel_window, repaint

    x0, y0 = lm.min(axis=0)
    x1, y1 = lm.max(axis=0)
    pad = 0.1 * (x1 - x0)
    x0, y0 = int(max(0, x0 - pad)), int(max(0, y0 - pad))
    x1, y1 = int(min(img.shape[1], x1 + pad)), int(min(img.shape[0], y1 + pad))
    crop = cv2.resize(img[y0:y1, x0:x1], (IMG, IMG), interpolation=cv2.INTER_AREA)
    new = repaint(model, crop, mel_window(mel, frame, fps), device)
    out = img.copy()
    out[y0:y1, x0:x1] = cv2.resize(new, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    return out
