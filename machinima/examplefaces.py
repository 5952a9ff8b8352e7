"""Face material to try face swap and lip sync with, for ``machinima examples faces DIR``.

Why generated and not shipped: a pip user following docs/faceswap.md from an empty folder needs
two people's faces on video and the documents their rights records are bound to. The demo's
public-domain portraits (matplotlib's Grace Hopper, scikit-image's Astronaut: Eileen Collins)
already ship inside packages the project depends on, so the clips are made from them on the
user's machine (a second) instead of adding megabytes of video to the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import MachinimaError

FPS = 24
FRAMES = 24  # one second: enough faces for a faceset (faceswap.faceset.FEW_FACES is 20)


@dataclass(frozen=True)
class FaceClip:
    file: str        # hopper.mp4
    subject: str     # the rights record's id: grace-hopper
    photo: str       # the reference photo under releases/
    granted_by: str  # who the public-domain status comes from
    about: str


CLIPS = (
    FaceClip("hopper.mp4", "grace-hopper", "grace-hopper.jpg", "public domain (US Navy photograph)",
             "Grace Hopper's portrait moving and growing a little on grey (the source face)"),
    FaceClip("collins.mp4", "eileen-collins", "eileen-collins.png", "public domain (NASA photograph)",
             "Eileen Collins (scikit-image's astronaut) walking across a green screen (the face to replace)"),
)


def write_faces(dest: Path, frames: int = FRAMES, *, force: bool = False) -> list[Path]:
    """Write both clips and ``releases/`` (the two reference photos and the public-domain note
    that serves as their release document) into ``dest``; returns the files written. Refuses to
    overwrite an existing clip without ``force``, so a user's own footage of that name is safe."""
    from .demo_plate import plate_frames, source_frames, write_release_photos
    from .imageseq import write_video

    if frames < 1:
        raise MachinimaError(f"--frames must be at least 1, not {frames}")
    dest = Path(dest)
    clips = [dest / c.file for c in CLIPS]
    taken = [p for p in clips + [dest / "releases"] if p.exists()]
    if taken and not force:
        raise MachinimaError(f"{taken[0]} already exists", hint="give another folder, or --force to overwrite it")
    dest.mkdir(parents=True, exist_ok=True)
    write_video(clips[0], source_frames(frames), FPS)
    write_video(clips[1], plate_frames(frames), FPS)
    write_release_photos(dest / "releases")
    return clips + sorted((dest / "releases").iterdir())
