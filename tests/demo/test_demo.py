"""The demo is a test: `machinima demo` runs once per test run (module fixture), then its own
frames are judged, each figure beside a trivial baseline measured in the same run.

Slow by nature (the whole film: a Blender render, a face model, every post step): marked
``demo`` (deselect with ``-m "not demo"``) and ``slow``; it needs espeak-ng (``./dev test``
installs it) and no GPU.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from machinima.demo import ACTOR_HEIGHT, ACTOR_PLACE, FILM_FRAMES, FPS

from demo_measures import edge_halo, face_error, frames, mouth_opening, wall_noise

pytestmark = [pytest.mark.demo, pytest.mark.slow, pytest.mark.timeout(2400)]

STEPS = ["project and signing certificates", "stage: record a take", "Blender: set + passes", "live-action plate", "rights records",
         "face swap", "lip sync", "depth composite", "stylize", "archive look", "exports", "deliver"]


def _machinima(*args, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "machinima", *map(str, args)], cwd=cwd, capture_output=True, text=True)
    if check:
        assert r.returncode == 0, f"machinima {' '.join(map(str, args))} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Two runs of the demo into one folder: the first makes the film, the second must redo nothing."""
    out = tmp_path_factory.mktemp("demo") / "out"
    _machinima("demo", "--out", out, cwd=out.parent)
    first = json.loads((out / "timings.json").read_text())
    (out / "timings-first.json").write_text(json.dumps(first, indent=2))
    _machinima("demo", "--out", out, cwd=out.parent)
    second = json.loads((out / "timings.json").read_text())
    print("demo seconds, first run / second run:", first["seconds"], "/", second["seconds"], f"(load {os.getloadavg()[0]:.1f})")
    for a, b in zip(first["steps"], second["steps"]):
        print(f"  {a['step']:<34} {a['seconds']:7.1f} s {a['done']:4d} made | {b['seconds']:5.1f} s {b['done']} made")
    take = next(p for p in (out / "takes").iterdir() if (p / "take.json").exists())
    return out, take, first, second


@pytest.fixture(scope="module")
def search():
    from machinima.faces import FaceSearch

    s = FaceSearch(min_face=20)
    yield s
    s.close()


def test_every_step_made_its_output(demo):
    out, take, first, _ = demo
    assert [s["step"] for s in first["steps"]] == STEPS
    for p in ("rgb", "depth", "mask/performer-1", "pose", "light", "motion"):  # masks: one folder per object group
        assert len(list((take / "passes" / p).glob("0*.*"))) == FILM_FRAMES, p
    assert len(frames(out / "plate")) == FILM_FRAMES
    assert len(frames(out / "plate-swapped" / "rgb")) == FILM_FRAMES
    for step, sub in (("lipsync", "frames"), ("composite", "rgb"), ("stylize-painted", "frames"), ("archive-vhs-1994", "frames")):
        assert len(frames(take / "post" / step / sub)) == FILM_FRAMES, step
        assert json.loads((take / "post" / step / "params.json").read_text()), step  # provenance
    assert (take / "audio" / "line.wav").exists()
    streams = {s["name"] for s in json.loads((take / "take.json").read_text())["streams"]}
    assert "blend/performer-1-mouth" in streams  # the avatar's mouth
    assert (out / "contact_sheet.png").exists()


def test_the_film_covers_the_line_at_the_take_rate(demo):
    import av

    out, take, _, _ = demo
    with av.open(str(out / "film.mp4")) as c:
        v = c.streams.video[0]
        assert float(v.average_rate) == pytest.approx(FPS)
        n = sum(1 for _ in c.decode(video=0))
    with av.open(str(out / "film.mp4")) as c:
        assert c.streams.audio, "the film carries its spoken line"
    with av.open(str(take / "audio" / "line.wav")) as c:
        line = float(c.duration) / 1e6
    assert n == FILM_FRAMES and n / FPS >= 3.0 and n / FPS >= line


def test_exports_read_back_by_their_own_libraries(demo):
    import opentimelineio as otio
    import pygltflib

    out, take, _, _ = demo
    tl = otio.adapters.read_from_file(str(out / "exports" / "cut.otio"))
    clips = list(tl.find_clips())
    assert len(clips) == 1 and clips[0].duration().value > 0
    gltf = pygltflib.GLTF2().load(str(out / "exports" / f"{take.name}.glb"))
    assert gltf.animations and gltf.nodes
    import av

    with av.open(str(out / "exports" / f"{take.name}.mov")) as c:
        assert c.streams.video[0].codec_context.name == "prores"
        assert sum(1 for _ in c.decode(video=0)) == FILM_FRAMES


def test_disclosure_verified(demo):
    out, take, _, _ = demo
    _machinima("verify", out / "film.mp4", cwd=out)
    _machinima("verify", out / "exports" / f"{take.name}.mov", cwd=out)


def test_second_run_redoes_nothing(demo):
    _, _, first, second = demo
    assert [s["step"] for s in second["steps"]] == STEPS
    made = {s["step"]: s["done"] for s in second["steps"]}
    assert all(v == 0 for v in made.values()), made
    assert sum(s["done"] for s in first["steps"]) > 0
    assert second["seconds"] < 0.35 * first["seconds"], (second["seconds"], first["seconds"])


def test_swapped_face_sits_where_the_plate_face_is(demo, search):
    """Landmarks of the swapped face against the plate's, beside a face that lags 3 frames
    behind (what the old causal smoothing did: the plate face of 3 frames earlier)."""
    from machinima.imageseq import read_image

    out, _, _, _ = demo
    plate, swapped = frames(out / "plate"), frames(out / "plate-swapped" / "rgb")
    errs, lagged = [], []
    for f in range(6, FILM_FRAMES, 7):
        p = read_image(plate[f])
        errs.append(face_error(search, p, read_image(swapped[f])))
        lagged.append(face_error(search, p, read_image(plate[f - 3])))
    assert None not in errs, "the swapped face is found on every frame checked"
    print(f"swapped-face landmark RMS px: mean {np.mean(errs):.2f} max {np.max(errs):.2f}; 3-frame lag {np.mean(lagged):.2f}")
    assert np.max(errs) < 6.0
    assert np.mean(errs) < 0.6 * np.mean(lagged)


def test_no_dark_halo_at_the_composite_edge(demo):
    """The composite's soft edge against a straight alpha-over of the same frame, beside the
    classic keyer (no unmixing of the screen colour) composited on the same frames."""
    from machinima.imageseq import find_frame, read_image

    out, take, _, _ = demo
    fs = list(range(30, 36))
    _machinima("composite", take, "--plate", take / "post" / "lipsync" / "frames", "--key", "green", "--edges", "classic",
               "--place", ACTOR_PLACE, "--height", ACTOR_HEIGHT, "--plate-fps", FPS, "--frames", f"{fs[0]}:{fs[-1] + 1}",
               "--step-id", "composite-classic", "--no-video", cwd=out)

    def halo(step: str) -> float:
        vals = [edge_halo(read_image(find_frame(take / "post" / step / "rgb", f)), read_image(take / "passes" / "rgb" / f"{f:06d}.png"),
                          read_image(find_frame(take / "post" / step / "alpha", f))) for f in fs]
        assert all(n > 20 for _, n in vals), vals  # an edge to measure
        return float(np.mean([h for h, _ in vals]))

    ours, classic = halo("composite"), halo("composite-classic")
    print(f"edge darkening vs straight alpha-over (levels): demo {ours:.2f}, classic key {classic:.2f}")
    assert ours < 2.0
    assert ours < classic


def test_render_noise_on_the_back_wall(demo, tmp_path):
    """The demo's denoised render against the same frame rendered without the denoiser."""
    from machinima.imageseq import read_image

    out, take, _, _ = demo
    f = 40
    raw_take = tmp_path / "takes" / take.name
    shutil.copytree(take, raw_take, ignore=shutil.ignore_patterns("passes", "post"))
    _machinima("blender", "render", raw_take, "--set", "diner", "--camera", "cam.wide", "--passes", "rgb,depth", "--res", "320x180",
               "--samples", "8", "--no-denoise", "--frames", f"{f}:{f}", cwd=out)
    depth = read_image(take / "passes" / "depth" / f"{f:06d}.exr")
    ours, n = wall_noise(read_image(take / "passes" / "rgb" / f"{f:06d}.png"), depth)
    raw, _ = wall_noise(read_image(raw_take / "passes" / "rgb" / f"{f:06d}.png"), depth)
    print(f"back-wall noise (levels): demo {ours:.2f} (on {n} px), without the denoiser {raw:.2f}")
    assert n > 500
    assert ours < 1.5 and ours < 0.5 * raw


def test_the_mouth_moves_with_the_line(demo, search):
    """Mouth opening in the lip-synced plate follows the line's open and closed mouth shapes;
    the plate before lip sync (the baseline) does not."""
    from machinima.imageseq import read_image

    out, take, _, _ = demo
    cues = json.loads((take / "post" / "lipsync" / "mouth.json").read_text())["mouthCues"]

    def shape(f: int) -> str:
        t = (f + 0.5) / FPS
        return next((c["value"] for c in cues if c["start"] <= t < c["end"]), "X")

    synced, before = frames(take / "post" / "lipsync" / "frames"), frames(out / "plate-swapped" / "rgb")
    open_, closed, open_b, closed_b = [], [], [], []
    for f in range(FILM_FRAMES):
        s = shape(f)
        if s in ("C", "D"):
            open_.append(mouth_opening(search, read_image(synced[f])))
            open_b.append(mouth_opening(search, read_image(before[f])))
        elif s in ("A", "X"):
            closed.append(mouth_opening(search, read_image(synced[f])))
            closed_b.append(mouth_opening(search, read_image(before[f])))
    assert len(open_) >= 5 and len(closed) >= 5
    assert None not in open_ + closed
    gap, gap_b = np.mean(open_) - np.mean(closed), np.mean(open_b) - np.mean(closed_b)
    print(f"mouth opening (of face height): open shapes {np.mean(open_):.3f}, closed {np.mean(closed):.3f}; "
          f"before lip sync {np.mean(open_b):.3f} / {np.mean(closed_b):.3f}")
    assert gap > 0.01 and gap > 2 * abs(gap_b)
