"""The demo's deliveries: the film with its spoken line, and the contact sheet.

Why here and not in a spoke: the demo drives spokes through the CLI and imports none, so the
film (the last step's frames with the spoken line) is encoded here, disclosed like that step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# contact sheet rows: (label, folder relative to the demo folder; "{take}" is the take folder)
SHEET = [("render", "{take}/passes/rgb"), ("depth", "{take}/passes/depth"), ("light", "{take}/passes/light"),
         ("plate", "plate"), ("face swap", "plate-swapped/rgb"), ("lip sync", "{take}/post/lipsync/frames"),
         ("composite", "{take}/post/composite/rgb"), ("stylized", "{take}/post/stylize-painted/frames"),
         ("archive", "{take}/post/archive-vhs-1994/frames")]


def film_with_line(step_dir: Path, audio: Path, name: str = "film.mp4", fps: int = 24) -> Path:
    """The step's frames as a movie with the line, written into the step's folder and disclosed
    like the step (``machinima.poststep.write_video``: every frame marked with the movie's
    manifest id, the line muxed in before signing, so the signature covers it)."""
    from .imageseq import list_frames, mux_audio, read_image
    from .poststep import write_video

    files = list_frames(step_dir / "frames")
    return write_video(step_dir / name, (read_image(files[f]) for f in sorted(files)), fps=fps,
                       before_signing=lambda p: mux_audio(p, audio))


def _middle_frame(folder: Path, at: int | None) -> np.ndarray | None:
    from .imageseq import list_frames, read_image

    frames = list_frames(folder) if folder.is_dir() else {}
    if not frames:
        return None
    numbers = list(frames)
    img = read_image(frames.get(at) or frames[numbers[len(numbers) // 2]])
    if img.dtype.kind == "f":
        if img.ndim == 3 and img.shape[2] >= 3:  # linear light: a simple display transform
            return (np.clip(img[..., :3] / (1.0 + img[..., :3]), 0, 1) ** (1 / 2.2) * 255).astype(np.uint8)
        d = img if img.ndim == 2 else img[..., 0]  # depth in metres: inverse depth, near = bright
        d = np.where(d < 1e3, d, np.nan)
        inv = 1.0 / np.clip(d, 0.1, None)
        lo, hi = np.nanmin(inv), np.nanmax(inv)
        return np.nan_to_num((inv - lo) / (hi - lo + 1e-9) * 255).astype(np.uint8)
    return img


def contact_sheet_rows(demo: Path, take: Path, out: Path, frame: int = 40) -> Path:
    """One frame (take frame ``frame``: mid-line, the mouth open) of every stage of the film."""
    from .imageseq import contact_sheet, write_image

    images, labels = [], []
    for label, rel in SHEET:
        img = _middle_frame(demo / rel.replace("{take}", str(take)), frame)  # an absolute take path wins
        if img is not None:
            images.append(img)
            labels.append(label)
    write_image(out, contact_sheet(images, columns=3, width=1280, labels=labels))
    return out
