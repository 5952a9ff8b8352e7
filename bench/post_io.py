"""Benchmark: post steps at 1080p as a user runs them, disk to disk, beside their kernels.

    .venv/bin/python bench/post_io.py [--quick] [--steps composite,archive,watermark,merge]

Prints one JSON object. Per step, three measures in the same run, each in its own child process
(so ``peak_rss_mb`` is that variant's own peak):

- ``kernel``: the step's compute on frames held in memory (reads served from memory, writes
  dropped): the ceiling for disk to disk;
- ``new``: disk to disk as ``machinima`` runs it now: sources read ahead, QOI frames (the
  intermediate a previous step wrote, and what this one writes), written behind in a bounded
  queue, disclosure per step (watermark per frame, one signed sequence manifest);
- ``prev`` (composite only): ``new`` with the set-up as it was before the feet came from a keyed
  band (every plate frame keyed whole before the loop; the set's colour and grain on all pixels);
- ``old``: the old loop: PNG sources, PNG frames each watermarked and signed (C2PA per frame),
  each written before the next is computed.

Steps: ``composite`` (run_composite on 1080p passes -- rgb PNG, depth/light EXR, as Blender
renders them -- and a PNG plate; 8-bit frames + alpha out), ``archive`` (the vhs-1994 look),
``watermark`` (a step whose kernel is a copy: what I/O and disclosure alone cost), ``merge`` (the
face-swap merge without the network, ``--engine none``, on 1080p frames with a face; tracks made
once beforehand). Bytes per
frame and MB/s are of the frames written; ``load_avg_1min`` is the machine's load at the end
(the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

W, H = 1920, 1080


def _frames(n: int) -> list[np.ndarray]:
    """1080p frames: the composite demo set with an actor walking across, with sensor-like noise
    (sigma 2.5 levels: without it the flat CG compresses like no footage does)."""
    from composite.demo_scene import END, START, actor_frame, camera, render_set

    cam = camera(W, H)
    rgb, _, _ = render_set(cam)
    rng = np.random.default_rng(3)
    out = []
    for f in range(n):
        plate, _ = actor_frame(cam, START + f / max(n - 1, 1) * (END - START), phase=f * 0.5, rng=rng)
        green = (plate[..., 1] > 150) & (plate[..., 0] < 90)
        img = np.where(green[..., None], rgb, plate).astype(np.int16)
        img += rng.normal(0, 2.5, img.shape).astype(np.int16)  # a camera's noise: flat CG frames flatter PNG
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def _project(root: Path) -> Path:
    (root / "machinima.toml").write_text('production = "bench"\n')
    return root


def _sources(root: Path, n: int) -> None:
    from machinima.imageseq import write_image

    for f, img in enumerate(_frames(n)):
        write_image(root / "src_png" / f"{f:06d}.png", img)
        write_image(root / "src_qoi" / f"{f:06d}.qoi", img)


def _configure(variant: str) -> None:
    import machinima.poststep as ps

    ps.DEFAULT_INTERMEDIATE = "png" if variant == "old" else "qoi"
    ps.WRITE_BEHIND = variant != "old"


def _drop_writes() -> None:
    """Kernel only: the ledger is kept (resume logic unchanged), the frames are not encoded."""
    import json as _json

    import machinima.poststep as ps

    def write_frame(self, frame, key, outputs, seconds, meta=None, **_):  # premarked=...: nothing is written
        with self._ledger_lock:
            self._ledger[frame] = {"frame": frame, "key": key, "outputs": []}
            with open(self._ledger_path, "a", encoding="utf-8") as fh:
                fh.write(_json.dumps(self._ledger[frame]) + "\n")
        return [], 0

    ps.PostStep._write_frame = write_frame
    ps.PostStep.seal = lambda self: None


def _step_archive(root: Path, variant: str, n: int) -> dict:
    from machinima.frameio import Prefetch
    from machinima.imageseq import list_frames, read_image
    from machinima.poststep import PostStep
    from stylize.archive import ArchiveLook, load_preset

    pre = load_preset("vhs-1994")
    files = list_frames(root / ("src_png" if variant == "old" else "src_qoi"))
    frames = sorted(files)[:n]
    if variant == "kernel":
        cache = {f: read_image(files[f]) for f in frames}
        read = cache.__getitem__
        _drop_writes()
    else:
        read = (lambda f: read_image(files[f])) if variant == "old" else Prefetch(frames, lambda f: read_image(files[f]), depth=4).get
    look = ArchiveLook(pre, read, seed=0, source_fps=24, frames=frames)
    gop = max([int(e.params.get("gop", 1)) for e in pre.effects if e.kind == "codec"] + [1])
    step = PostStep(root / "takeless" / "post" / f"archive-{variant}", "archive", {"preset": pre.name, "v": variant})
    t0 = time.perf_counter()
    rep = step.run(frames, look.process, batch_size=gop, progress=False)
    return _result(rep, time.perf_counter() - t0)


def _step_watermark(root: Path, variant: str, n: int) -> dict:
    from machinima.frameio import Prefetch
    from machinima.imageseq import list_frames, read_image
    from machinima.poststep import PostStep

    files = list_frames(root / ("src_png" if variant == "old" else "src_qoi"))
    frames = sorted(files)[:n]
    step = PostStep(root / "takeless" / "post" / f"mark-{variant}", "watermark", {"v": variant})
    if variant == "kernel":  # the kernel of this step is the disclosure: the watermark on frames in memory
        cache = {f: read_image(files[f]) for f in frames}
        mid = step.sequence_manifest_id()
        t0 = time.perf_counter()
        for f in frames:
            step.disclosure.mark(cache[f], mid)
        dt = time.perf_counter() - t0
        return {"frames": len(frames), "seconds": round(dt, 3), "kernel_seconds": round(dt, 3), "fps": round(len(frames) / dt, 2),
                "kernel_fps": round(len(frames) / dt, 2), "bytes_per_frame": 0}
    read = (lambda f: read_image(files[f])) if variant == "old" else Prefetch(frames, lambda f: read_image(files[f]), depth=4).get
    t0 = time.perf_counter()
    rep = step.run(frames, lambda b: [{"rgb": read(f)} for f in b], progress=False)
    return _result(rep, time.perf_counter() - t0)


def _step_composite(root: Path, variant: str, n: int) -> dict:
    import composite.pipeline as cp
    from composite.demo_scene import START, make_demo
    from composite.pipeline import CompositeSettings, run_composite
    from composite.placement import PlacementSettings

    demo = root / f"comp-{variant}"
    if variant == "prev" and (root / "comp-new").is_dir():  # the same take and plate as "new" (a fresh step folder)
        demo = root / "comp-new"
        take, plate = next((demo / "takes").iterdir()), demo / "plate"
        pos = tuple(float(v) for v in START)
    else:
        take, plate, pos = make_demo(demo, width=W, height=H, frames=n, plate_as="png")
    if variant == "prev":
        _previous_setup()
    if variant == "kernel":  # passes and plate from memory, frames not encoded
        real_read, real_plate = cp._read, cp.CompositePipeline._plate_frame
        memo: dict = {}

        def cached(key, load):
            if key not in memo:
                memo[key] = load()
                if isinstance(memo[key], np.ndarray):
                    memo[key].flags.writeable = False  # shared between runs: the step copies what it paints on
            return memo[key]

        cp._read = lambda passes, name, f: cached((name, f), lambda: real_read(passes, name, f))
        real_image = cp.read_image  # the light pass
        cp.read_image = lambda path, **kw: cached(("file", str(path)), lambda: real_image(path, **kw))
        cp.CompositePipeline._plate_frame = staticmethod(lambda p, t, f: cached(("plate", f), lambda: real_plate(p, t, f)))
        s = CompositeSettings(plate=plate, matte="green", placement=PlacementSettings(position=pos), video=False, step_id="warm")
        run_composite(take, s, progress=False)  # fills the memo (and the caches of the set's analysis)
        _drop_writes()
    s = CompositeSettings(plate=plate, matte="green", placement=PlacementSettings(position=pos), video=False, step_id=f"c-{variant}")
    t0 = time.perf_counter()
    res = run_composite(take, s, progress=False)
    out = _result(res.report, time.perf_counter() - t0)
    out["setup_parts"] = res.setup  # seconds: inputs, reference_and_feet, look, step (folder, disclosure, resume keys)
    return out


def _previous_setup() -> None:
    """The set-up as it was before the feet came from a keyed band: every plate frame keyed
    whole before the loop (the loop takes those mattes), the set's colour on every 2nd pixel and
    its grain on every row. The same I/O otherwise: the difference is the set-up's work."""
    import composite.feettrack as ft
    from composite import colormatch, grain

    ft.band_probe = lambda keyer, img, **kw: ft.full_probe(keyer.key_roi, img)
    stats = colormatch.lab_stats
    colormatch.lab_stats = lambda rgbs, masks=None, step=2: stats(rgbs, masks, step=2)
    grain.measure_noise_bands = lambda rgb, **kw: grain.measure_noise(rgb)


def _composite_parts(root: Path, reps: int = 5) -> dict:
    """One core's CPU ms (median of ``reps``) for each per-frame part of the composite on the
    "new" variant's files: what a frame costs the machine whatever overlaps what. At 24 fps
    two cores have 83 ms of CPU a frame."""
    import cv2

    from composite.feettrack import band_probe
    from composite.keyer import Keyer, KeySettings, estimate_screen
    from machinima.imageseq import encode_qoi, read_image

    take = next((root / "comp-new" / "takes").iterdir())
    f = 1
    plate = root / "comp-new" / "plate" / f"{f:06d}.png"

    def one(path_dir: str) -> Path:
        return next((take / "passes" / path_dir).glob(f"{f:06d}.*"))

    def ms(fn) -> float:
        out = []
        for _ in range(reps):
            c = time.process_time()
            fn()
            out.append(time.process_time() - c)
        return round(float(np.median(out)) * 1000, 1)

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        img = read_image(plate)
        keyer = Keyer(KeySettings(screen="green"), estimate_screen(img, "green"))
        rgb = np.ascontiguousarray(read_image(one("rgb"))[..., :3])
        return {"plate_png_decode": ms(lambda: read_image(plate)), "key_whole_box": ms(lambda: keyer.key_roi(img)),
                "feet_band_key": ms(lambda: band_probe(keyer, img)),
                "rgb_pass_read": ms(lambda: read_image(one("rgb"))), "depth_pass_read": ms(lambda: read_image(one("depth"))),
                "light_pass_read": ms(lambda: read_image(one("light"))), "qoi_encode_rgb": ms(lambda: encode_qoi(rgb))}
    finally:
        cv2.setNumThreads(threads)


def _face_sources(root: Path, n: int) -> None:
    """1080p frames with a face (bench/faceswap.py's drifting photo, with the same camera noise)
    as PNG and QOI, and their smoothed face tracks (tracked once here: the merge's own tracking
    is cached per step and is not what this bench measures)."""
    from bench.faceswap import frames_1080p
    from faceswap.backends import get_backend
    from faceswap.merge import MergeOptions, smooth_tracks, track_faces
    from faceswap.sources import open_source
    from machinima.imageseq import write_image

    rng = np.random.default_rng(5)
    for f, img in enumerate(frames_1080p(n)):
        img = np.clip(img.astype(np.int16) + rng.normal(0, 2.5, img.shape).astype(np.int16), 0, 255).astype(np.uint8)
        write_image(root / "face_png" / f"{f:06d}.png", img)
        write_image(root / "face_qoi" / f"{f:06d}.qoi", img)
    src = open_source(root / "face_png")
    be = get_backend("mediapipe")
    try:
        per_frame, _, _ = track_faces(src, src.frames, be)
    finally:
        be.close()
    used = smooth_tracks(per_frame, MergeOptions(), 24.0)
    np.savez(root / "face_tracks.npz", **{f"{f}_{t}": lm for f, faces in used.items() for t, lm in faces.items()})


def _step_merge(root: Path, variant: str, n: int) -> dict:
    """The face-swap merge's swap loop without the network (``--engine none``: align, mask, colour,
    blend, paste back at 1080p) on the tracked frames."""
    from faceswap.merge import Compositor, MergeOptions, swap_functions
    from faceswap.sources import open_source
    from machinima.poststep import PostStep

    tracks: dict[int, dict[int, np.ndarray]] = {}
    with np.load(root / "face_tracks.npz") as z:
        for k in z.files:
            f, t = (int(x) for x in k.split("_"))
            tracks.setdefault(f, {})[t] = z[k]
    source = open_source(root / ("face_png" if variant == "old" else "face_qoi"))
    frames = source.frames[:n]
    opts = MergeOptions(engine="none")
    comp = Compositor(None, opts.res, opts.face_type, opts)
    if variant == "kernel":
        cache = {f: source.read(f) for f in frames}
        source.read = lambda f: cache[f].copy()  # the merge paints in place: a fresh frame each time, as from disk
        _drop_writes()
    process, frame_inputs = swap_functions(source, comp, tracks, order=frames if variant == "new" else None)
    step = PostStep(root / "takeless" / "post" / f"merge-{variant}", "faceswap-merge", {"engine": "none", "v": variant})
    t0 = time.perf_counter()
    try:
        rep = step.run(frames, process, frame_inputs=frame_inputs, batch_size=opts.batch, progress=False)
    finally:
        process.close()
    return _result(rep, time.perf_counter() - t0)


def _result(rep, wall: float) -> dict:
    n = len(rep.done)
    return {"frames": n, "seconds": round(wall, 3), "loop_seconds": round(rep.seconds, 3), "kernel_seconds": round(rep.kernel_seconds, 3),
            "fps": round(n / wall, 2) if wall else 0.0, "loop_fps": round(n / rep.seconds, 2) if rep.seconds else 0.0,
            "kernel_fps": round(n / rep.kernel_seconds, 2) if rep.kernel_seconds else 0.0,
            "write_wait_seconds": round(rep.write_wait_seconds, 3), "seal_seconds": round(getattr(rep, "seal_seconds", 0.0), 3),
            # the wall time split: before the loop (composite: tracking, look, step folder), the loop, the one seal after it
            "split_seconds": {"setup": round(wall - rep.seconds, 3), "loop": round(rep.seconds - getattr(rep, "seal_seconds", 0.0), 3),
                              "seal": round(getattr(rep, "seal_seconds", 0.0), 3)},
            "bytes_per_frame": int(rep.bytes_written / n) if n else 0,
            "mb_per_s": round(rep.bytes_written / 1e6 / rep.seconds, 1) if rep.seconds else 0.0}


STEPS = {"composite": _step_composite, "archive": _step_archive, "watermark": _step_watermark, "merge": _step_merge}


def _vm_hwm_mb() -> float:
    """This process's peak resident memory (Linux VmHWM, reset by exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def child(step: str, variant: str, root: str, n: int) -> None:
    _configure(variant)
    os.chdir(root)
    import psutil

    import composite.pipeline  # noqa: F401 - the imports' memory, before the step runs
    import stylize.archive  # noqa: F401

    before = psutil.Process().memory_info().rss
    out = STEPS[step](Path(root), variant, n)
    out["peak_rss_mb"] = _vm_hwm_mb()  # not ru_maxrss: after fork+exec it keeps the parent's peak
    out["rss_before_step_mb"] = round(before / 2**20, 1)
    print(json.dumps(out))


def _codecs(root: Path, reps: int = 5) -> dict:
    """One 1080p frame written and read by each intermediate (median ms), its size on disk."""
    from machinima.imageseq import read_image, write_image

    img = read_image(root / "src_qoi" / "000000.qoi")
    lin = (img.astype(np.float32) / 255.0) ** 2.2
    depth = (2.0 + 8.0 * np.linspace(0, 1, img.shape[0], dtype=np.float32)[:, None] + lin[..., 1]).astype(np.float32)  # 1 channel, metres
    cases = {"qoi": (img, {}), "png": (img, {}), "png_level1": (img, {"png_level": 1}), "png_level0": (img, {"png_level": 0}),
             "exr_half_piz": (lin, {"half": True}), "exr_float_piz": (lin, {}),
             # the render passes' encodings (machinima.passes.PASS_ENCODING) beside the old PIZ
             "exr_half_none": (lin, {"half": True, "exr_compression": "none"}),
             "depth_float_piz": (depth, {}), "depth_float_none": (depth, {"exr_compression": "none"})}
    out = {}
    for name, (a, kw) in cases.items():
        ext = name.split("_")[0]
        p = root / "codec" / f"{name}.{'exr' if ext == 'depth' else ext}"
        write_image(p, a, **kw)
        w, r = [], []
        for _ in range(reps):
            t0 = time.perf_counter()
            write_image(p, a, **kw)
            w.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            read_image(p)
            r.append(time.perf_counter() - t0)
        out[name] = {"write_ms": round(float(np.median(w)) * 1000, 1), "read_ms": round(float(np.median(r)) * 1000, 1),
                     "bytes": p.stat().st_size}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steps", default="composite,archive,watermark,merge")
    ap.add_argument("--child", nargs=4, metavar=("STEP", "VARIANT", "ROOT", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        step, variant, root, n = args.child
        return child(step, variant, root, int(n))
    n = 8 if args.quick else 24
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = _project(Path(tmp))
        _sources(root, n)
        if "merge" in args.steps.split(","):
            _face_sources(root, n)
        io = _codecs(root)
        for step in [x for x in args.steps.split(",") if x]:
            results[step] = {}
            for variant in ("kernel", "new", "prev", "old") if step == "composite" else ("kernel", "new", "old"):
                r = subprocess.run([sys.executable, __file__, "--child", step, variant, str(root), str(n)], capture_output=True, text=True)
                if r.returncode != 0:
                    results[step][variant] = {"error": (r.stderr.strip().splitlines() or ["?"])[-1]}
                    continue
                results[step][variant] = json.loads(r.stdout.strip().splitlines()[-1])
                print(f"{step} {variant}: {results[step][variant]}", file=sys.stderr)
            if step == "composite" and (root / "comp-new").is_dir():
                results[step]["cpu_ms_per_frame_one_core"] = _composite_parts(root)
            k, new, old, prev = (results[step].get(v, {}) for v in ("kernel", "new", "old", "prev"))
            if new.get("fps") and prev.get("fps"):
                results[step]["new_vs_prev"] = round(new["fps"] / prev["fps"], 2)
            if new.get("fps") and k.get("kernel_fps"):
                results[step]["new_vs_kernel"] = round(new["fps"] / k["kernel_fps"], 2)
            if new.get("fps") and old.get("fps"):
                results[step]["new_vs_old"] = round(new["fps"] / old["fps"], 2)
    print(json.dumps({
        "bench": "post_io", "resolution": f"{W}x{H}", "frames": n, "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2), "intermediate": io, "steps": results,
        "notes": "fps = frames / wall seconds of the step's run (setup included for composite: feet tracking, colour and grain "
                 "measurement); kernel = the same run with inputs from memory and frame writes dropped (watermark: the mark on "
                 "frames in memory); new = QOI in and out, read-ahead, write-behind, one sequence manifest; old = PNG in and out, "
                 "per-frame C2PA, no write-behind. peak_rss_mb: that child process's peak (rss_before_step_mb: after imports, before the step); seal_seconds: signing the step's sequence manifest, once per run.",
    }))


if __name__ == "__main__":
    main()
