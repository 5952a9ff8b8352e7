"""The demo's "live action": real public-domain portraits on a green screen, moved by the program.

Why generated, and why these photos: the demo must run offline with nothing downloaded, and its
test must know the truth. scikit-image's astronaut (Eileen Collins, NASA) plays the actor, so
the plate's true face position is known on every frame (``actor_offset``); matplotlib's Grace
Hopper (US Navy) is the source face. Both ship inside pip packages the project already needs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PLATE_SIZE = (640, 360)  # width, height
PERSON_SIZE = (210, 280)  # the cut-out bust, width x height
SOURCE_FRAMES = 24  # the source face's training frames (a short clip is enough for the tiny model)


def actor_offset(frame: int) -> tuple[int, int]:
    """Top-left corner of the bust in plate frame ``frame``: a slow walk to the right (3 px a
    frame) with a small bob, so the face moves like a person's and stays whole in the frame."""
    x = 150 + 3 * frame
    y = 80 + int(round(3 * np.sin(frame / 6.0)))
    return x, y


def astronaut_bust() -> tuple[np.ndarray, np.ndarray]:
    """The actor (RGB uint8) and its soft matte (float 0..1, HxWx1): head and shoulders."""
    import cv2
    from skimage import data

    person = cv2.resize(data.astronaut()[20:420, 90:390], PERSON_SIZE)
    mask = np.zeros(person.shape[:2], np.uint8)
    cv2.ellipse(mask, (105, 105), (70, 92), 0, 0, 360, 255, -1)  # head
    cv2.ellipse(mask, (105, 300), (105, 110), 0, 0, 360, 255, -1)  # shoulders
    return person, cv2.GaussianBlur(mask, (5, 5), 0)[..., None] / 255.0


def plate_frames(frames: int):
    """``frames`` RGB frames of the actor on green (frame numbers = take frames from 0)."""
    person, mask = astronaut_bust()
    w, h = PLATE_SIZE
    for f in range(frames):
        frame = np.zeros((h, w, 3), np.uint8)
        frame[:] = (40, 190, 60)  # green screen
        x, y = actor_offset(f)
        ph = min(PERSON_SIZE[1], h - y)
        roi = frame[y:y + ph, x:x + PERSON_SIZE[0]]
        roi[:] = (person[:ph] * mask[:ph] + roi * (1 - mask[:ph])).astype(np.uint8)
        yield frame


def write_plate(folder: Path, frames: int) -> None:
    """``frames`` numbered PNGs of the actor on green (frame numbers = take frames from 0)."""
    from .imageseq import write_image

    for f, frame in enumerate(plate_frames(frames)):
        write_image(folder / f"{f:06d}.png", frame)


def source_frames(frames: int = SOURCE_FRAMES):
    """The source face (Grace Hopper) moving and growing a little, for the face model to learn."""
    import cv2
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        hopper = cv2.imdecode(np.frombuffer(fh.read(), np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    w, h = PLATE_SIZE
    for f in range(frames):
        s = 0.55 + 0.01 * f
        img = cv2.resize(hopper, None, fx=s, fy=s)
        canvas = np.full((h, w, 3), 30, np.uint8)
        y0, x0 = 10, 100 + 4 * f
        ih, iw = min(img.shape[0], h - 10), min(img.shape[1], 540 - 4 * f)
        canvas[y0:y0 + ih, x0:x0 + iw] = img[:ih, :iw]
        yield canvas


def write_source(folder: Path, frames: int = SOURCE_FRAMES) -> None:
    """The source face's frames as numbered PNGs."""
    from .imageseq import write_image

    for f, frame in enumerate(source_frames(frames)):
        write_image(folder / f"{f:06d}.png", frame)


def write_release_photos(folder: Path) -> None:
    """The reference photos the rights records are bound to (the portraits the plates come from)."""
    import shutil

    import cv2
    from matplotlib import cbook
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "public-domain.txt").write_text(
        "Both portraits are public-domain photographs shipped with matplotlib and scikit-image; demo use.\n")
    cv2.imwrite(str(folder / "eileen-collins.png"), data.astronaut()[..., ::-1])
    shutil.copy(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), folder / "grace-hopper.jpg")
