"""Coverage report on real photos shipped in pip packages, rotated to make a pose gap."""

from __future__ import annotations

import json

import numpy as np
import pytest


def _rot(img, deg):
    import cv2

    h, w = img.shape[:2]
    return cv2.warpAffine(img, cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0), (w, h), borderMode=cv2.BORDER_REFLECT)


@pytest.fixture(scope="module")
def photos():
    from matplotlib import cbook
    from skimage import data

    from machinima.imageseq import read_image

    return read_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)), data.astronaut()


def _collection(path, images):
    from machinima.collections import Collection

    col = Collection.create(path, "dataset")
    for img in images:
        col.add(img)
    return col


def test_report_finds_the_pose_gap_between_two_sets(tmp_path, photos):
    from lora.coverage import analyze_collection, compare_sets, write_report

    grace, astro = photos
    src = _collection(tmp_path / "src", [_rot(grace, d) for d in (-10, 0, 10)] + [astro, astro[:, ::-1].copy()])
    dst = _collection(tmp_path / "dst", [_rot(grace, 40), _rot(astro, -40), grace])
    a, b = analyze_collection(src), analyze_collection(dst)
    assert all(r.face for r in a.rows + b.rows)
    rolls = sorted(r.roll for r in b.rows)
    assert rolls[0] < -30 and rolls[-1] > 30 and abs(rolls[1]) < 10
    gaps = compare_sets(a, b)
    labels = {r.label for r, _ in gaps.uncovered}
    assert labels == {"images/000001.png", "images/000002.png"}, gaps.summary()
    assert all(any(w.startswith("pose") for w in why) for _, why in gaps.uncovered)
    assert gaps.empty_bins["roll"] and not gaps.empty_bins["yaw"]
    # a set covers itself
    assert compare_sets(a, a).uncovered == []
    png = write_report(tmp_path / "report.png", a, b, gaps, title="t")
    assert png.stat().st_size > 20_000
    doc = json.loads(png.with_suffix(".json").read_text())
    assert len(doc["gaps"]["uncovered"]) == 2 and len(doc["sets"][1]["rows"]) == 3


def test_report_cli_on_one_set_and_expression_measures(tmp_path, photos):
    from typer.testing import CliRunner

    from lora.dataset_cli import app

    grace, astro = photos
    _collection(tmp_path / "ds", [grace, astro]).close()
    res = CliRunner().invoke(app, ["report", str(tmp_path / "ds"), "--check"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ds" / "coverage.png").exists() and "2 with a face" in res.output
    rows = json.loads((tmp_path / "ds" / "coverage.json").read_text())["sets"][0]["rows"]
    # the astronaut smiles with parted lips, Grace Hopper's mouth is closed
    assert rows[1]["mouth"] > rows[0]["mouth"] + 0.05
    assert all(0.1 < r["eyes"] < 0.6 for r in rows)
    res = CliRunner().invoke(app, ["report", str(tmp_path / "ds"), "--compare", str(tmp_path / "ds"), "--out", str(tmp_path / "c.png")])
    assert res.exit_code == 0 and "the source covers all 2 destination faces" in res.output, res.output


def test_compare_with_no_destination_face_says_it_measured_nothing(tmp_path, photos):
    """A destination whose images hold no face the mesh finds: no "covers every image" verdict,
    one line that says 0 faces were measured, exit 1 (nothing was compared)."""
    from typer.testing import CliRunner

    from lora.dataset_cli import app
    from lora.errors import DatasetError

    grace, astro = photos
    _collection(tmp_path / "ds", [grace, astro]).close()
    rng = np.random.default_rng(0)
    _collection(tmp_path / "walls", [rng.integers(0, 255, (96, 96, 3), dtype=np.uint8) for _ in range(3)]).close()
    res = CliRunner().invoke(app, ["report", str(tmp_path / "ds"), "--compare", str(tmp_path / "walls"), "--out", str(tmp_path / "c.png")])
    assert isinstance(res.exception, DatasetError) and "covers" not in res.output, res.output
    assert "destination: 3 images, 0 with a face" in res.output
    assert "nothing to compare: the destination has no measured face (2 source and 0 destination faces found)" in str(res.exception)
