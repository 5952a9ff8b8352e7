"""Faces at every shot size: scikit-image's astronaut and matplotlib's Grace Hopper composited
into a 720p plate (scikit-image's coffee photo) with their face at a known fraction of the frame
height, so the true face box is known (the close-up's box, scaled and moved as the picture was).

Per shot size, in the same run: ``machinima.faces.FaceSearch`` (whole frame, then tiles)
beside what each step ran before -- BlazeFace (full range) on the whole frame (face swap) and
the face mesh on the whole frame (lip sync, LoRA coverage). A face counts as found when the
best box overlaps the true one by IoU > 0.5; ``ms_per_frame`` is wall clock, ``cpu_ms_per_frame``
this process's CPU time (mediapipe's threads included), for a busy machine. Then the whole command, disk to disk:
``machinima faceswap extract`` on 24 PNG frames of a medium shot (a child process, start-up
included), with the faces it added.

    .venv/bin/python bench/face_sizes.py [--quick]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZE = (1280, 720)


def portraits() -> dict[str, np.ndarray]:
    import matplotlib.cbook as cbook
    import skimage.data
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        grace = np.asarray(Image.open(fh).convert("RGB"))
    return {"astronaut": np.ascontiguousarray(skimage.data.astronaut()), "grace": np.ascontiguousarray(grace)}


def plate(picture: np.ndarray, scale: float, x: float, y: float) -> np.ndarray:
    import cv2
    import skimage.data

    out = cv2.resize(skimage.data.coffee(), SIZE, interpolation=cv2.INTER_AREA)
    cv2.warpAffine(picture, np.float32([[scale, 0, x], [0, scale, y]]), SIZE, dst=out, flags=cv2.INTER_AREA,
                   borderMode=cv2.BORDER_TRANSPARENT)
    return out


def whole_frame_detector(mp):
    det = mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)

    def boxes(img: np.ndarray) -> list[np.ndarray]:
        h, w = img.shape[:2]
        out = []
        for d in det.process(img).detections or []:
            b = d.location_data.relative_bounding_box
            out.append(np.array([b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h]))
        return out

    return boxes, det


def whole_frame_mesh(mp):
    fm = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.5)

    def boxes(img: np.ndarray) -> list[np.ndarray]:
        from machinima.faces import box_of

        h, w = img.shape[:2]
        res = fm.process(img).multi_face_landmarks or []
        return [box_of(np.array([[p.x * w, p.y * h] for p in f.landmark])) for f in res]

    return boxes, fm


def shot_sizes(fracs: list[float], positions: int) -> dict:
    import mediapipe as mp

    from machinima.faces import FaceSearch, iou

    search = FaceSearch()
    pics = portraits()
    true_box = {n: search.find(p)[0].box for n, p in pics.items()}  # the close-up: the detector's home ground
    det, det_h = whole_frame_detector(mp)
    mesh, mesh_h = whole_frame_mesh(mp)
    methods = {"faces.FaceSearch (tiles)": lambda img: [f.box for f in search.find(img)],
               "BlazeFace on the whole frame (face swap before)": det,
               "face mesh on the whole frame (lip sync, LoRA before)": mesh}
    rows = {}
    for frac in fracs:
        row: dict = {m: {"found": 0, "iou": [], "ms": [], "cpu_ms": []} for m in methods}
        n = 0
        for name, pic in pics.items():
            b = true_box[name]
            s = frac * SIZE[1] / (b[3] - b[1])
            for k in range(positions):
                x = 60 + k * (SIZE[0] - 120 - s * (b[2])) / max(1, positions - 1)
                y = SIZE[1] / 2 - s * (b[1] + b[3]) / 2
                img = plate(pic, s, x, y)
                true = b * s + [x, y, x, y]
                n += 1
                for m, fn in methods.items():
                    t0, c0 = time.perf_counter(), time.process_time()
                    found = fn(img)
                    row[m]["ms"].append(1000 * (time.perf_counter() - t0))
                    row[m]["cpu_ms"].append(1000 * (time.process_time() - c0))
                    best = max((iou(f, true) for f in found), default=0.0)
                    row[m]["found"] += best > 0.5
                    if best > 0.5:
                        row[m]["iou"].append(best)
        rows[f"face {100 * frac:g}% of 720p height ({round(frac * SIZE[1])} px)"] = {
            m: {"found": f"{v['found']}/{n}", "mean_iou": round(float(np.mean(v["iou"])), 3) if v["iou"] else None,
                "ms_per_frame": round(float(np.median(v["ms"])), 1), "cpu_ms_per_frame": round(float(np.median(v["cpu_ms"])), 1)} for m, v in row.items()}
    search.close()
    det_h.close()
    mesh_h.close()
    return rows


def extract_disk_to_disk(tmp: Path, frames: int) -> dict:
    """``machinima faceswap extract`` on a medium shot (face 10% of 720p, drifting), a child process."""
    from machinima.faces import FaceSearch
    from machinima.imageseq import write_image

    pic = portraits()["astronaut"]
    with FaceSearch() as s:
        b = s.find(pic)[0].box
    sc = 0.10 * SIZE[1] / (b[3] - b[1])
    for i in range(frames):
        write_image(tmp / "clip" / f"{i:06d}.png", plate(pic, sc, 500 + 6 * i, 250 + 2 * i))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "machinima", "faceswap", "extract", str(tmp / "clip"), "--out", str(tmp / "fs"),
                        "--size", "128"], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    added = sum(1 for _ in (tmp / "fs").rglob("*.png")) if (tmp / "fs").exists() else 0
    return {"command": f"machinima faceswap extract CLIP --out FS --size 128 ({frames} PNG frames, 1280x720, face 10% of the height)",
            "exit_code": r.returncode, "faces_added": added, "wall_s": round(wall, 2), "fps_disk_to_disk": round(frames / wall, 2),
            "said": " ".join((r.stdout or r.stderr).split())[-300:]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    fracs = [0.3, 0.1, 0.05, 0.035] if args.quick else [0.5, 0.3, 0.2, 0.1, 0.07, 0.05, 0.035]
    out: dict = {"bench": "face_sizes", "machine": f"{platform.machine()} {os.cpu_count()} cpu", "quick": args.quick,
                 "plate": f"{SIZE[0]}x{SIZE[1]}, scikit-image coffee; astronaut and Grace Hopper pasted at each size",
                 "load_avg_1min_start": round(os.getloadavg()[0], 2)}
    out["shot_sizes"] = shot_sizes(fracs, 2 if args.quick else 4)
    with tempfile.TemporaryDirectory() as td:
        out["extract_medium_shot"] = extract_disk_to_disk(Path(td), 8 if args.quick else 24)
    out["load_avg_1min_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
