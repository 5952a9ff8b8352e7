"""Disclosure and identity-check cost at 1080p, JSON out.

    .venv/bin/python bench/disclosure.py [--quick] [--steps-only] [--merge-frames N] [--composite-frames N]
                                         [--rounds N] [--without-memory] [--movie-own-mark]

Measures in one run:
- the real face-swap merge (``faceswap.merge.merge``: tracking, alignment, a face model of the
  CLI's default size, blend, PNG frames and the MP4) and the real composite step
  (``composite.pipeline.run_composite`` on the demo set at 1920x1080, PNG frames and the MP4),
  each disk to disk with disclosure on (the default) and off (a recorded decision), wall and
  CPU time, alternating rounds, best of each; and the CPU disclosure itself takes, counted
  inside each "on" run (marking, signing): the share disclosure adds (goal <= 10%);
- the identity check inside the merge (``rights.require_cleared`` on the tracked faces,
  embedded per track, not per frame) as a share of the merge per frame (goal <= 5%);
- identity distances on the two real portraits and their copies, dlib and the mesh fallback,
  beside a trivial method (8x8 thumbnails);
- watermark embed/decode, ours (``machinima-qim-cc-v2``, 96-bit keyed payload) against the
  baseline invisible-watermark DWT-DCT (diffusers' SDXL mark), bit accuracy after JPEG q75 and
  H.264 crf 23/30, PSNR; C2PA signing per 1080p PNG/JPEG frame and per minute of H.264.
Timing of kernels is CPU time with OpenCV on one thread; the machine's load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

sys.path.append(str(Path(__file__).resolve().parent))  # _h264 (last: bench/faceswap.py must not hide the faceswap package)

import _h264  # noqa: E402  (the encode loop bench/watermark_flicker.py uses too)
import cv2  # noqa: E402

from machinima import provenance as pv  # noqa: E402

W, H = 1920, 1080
TAKE, STEP = "film_s1_a_t001", "faceswap-merge-1"
MID = "urn:c2pa:6c1b5f0e-3a44-4f7e-9d0a-2b8e1c5d7f90"
KEY = b"bench production secret"


def photos() -> list[np.ndarray]:
    import matplotlib.cbook
    import skimage.data

    hop = cv2.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))[..., ::-1]
    srcs = [skimage.data.astronaut(), hop, skimage.data.coffee(), skimage.data.chelsea()]
    return [np.ascontiguousarray(cv2.resize(np.ascontiguousarray(s), (W, H), interpolation=cv2.INTER_CUBIC)) for s in srcs]


def timeit(fn, n: int) -> float:
    """CPU seconds per call (process time: fair on a shared machine; OpenCV runs on one thread)."""
    fn()
    t = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t) / n


def jpeg75(img: np.ndarray) -> np.ndarray:
    ok, enc = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 75])
    return cv2.imdecode(enc, cv2.IMREAD_COLOR)[..., ::-1]


def h264(img: np.ndarray, crf: int = 23) -> np.ndarray:
    return _h264.roundtrip(img, crf)


def ours_raw_accuracy(img: np.ndarray) -> float:
    """Share of single embedded coefficients (before repetition and Viterbi) read back right."""
    from machinima.provenance import watermark as wm

    bh, bw = wm._wm_grid(*img.shape[:2])
    bit_of, dither, flip, _ = wm._wm_layout(bh, bw)
    chips = pv.cc_encode(pv.payload_bits("film", MID, KEY))[bit_of] ^ flip
    c = wm._wm_coeffs(wm._luma_low(img, bh, bw), bh, bw)
    soft = np.cos(2 * np.pi * ((c / pv.WM_STRENGTH - dither) % 1.0))
    return float(np.mean((soft < 0).astype(int) == chips))


def bench_watermarks(imgs: list[np.ndarray], reps: int) -> dict:
    from imwatermark import WatermarkDecoder, WatermarkEncoder

    bits48 = b"mchnma"  # 48 bits, as diffusers' SDXL watermark
    enc = WatermarkEncoder()
    enc.set_watermark("bytes", bits48)
    dec = WatermarkDecoder("bytes", 48)
    expect48 = np.unpackbits(np.frombuffer(bits48, np.uint8))
    expect64 = pv.payload_bits("film", MID, KEY)
    res: dict = {"ours": {"scheme": pv.WM_SCHEME, "payload_bits": pv.WM_BITS}, "baseline_dwtdct": {"scheme": "invisible-watermark 0.2.0 dwtDct", "payload_bits": 48}}
    img = imgs[0]
    res["ours"]["embed_ms"] = 1000 * timeit(lambda: pv.embed_watermark(img, "film", MID, KEY), reps)
    marked = pv.embed_watermark(img, "film", MID, KEY)
    res["ours"]["decode_ms"] = 1000 * timeit(lambda: pv.decode_watermark(marked), reps)
    bgr = np.ascontiguousarray(img[..., ::-1])
    res["baseline_dwtdct"]["embed_ms"] = 1000 * timeit(lambda: enc.encode(bgr, "dwtDct"), max(1, reps // 3))
    mb = enc.encode(bgr, "dwtDct")
    res["baseline_dwtdct"]["decode_ms"] = 1000 * timeit(lambda: dec.decode(mb, "dwtDct"), max(1, reps // 3))
    for k in ("ours", "baseline_dwtdct"):
        r = res[k]
        r["embed_fps"] = round(1000 / r["embed_ms"], 1)
        r["decode_fps"] = round(1000 / r["decode_ms"], 1)
        r["embed_ms"] = round(r["embed_ms"], 1)
        r["decode_ms"] = round(r["decode_ms"], 1)
    acc: dict = {k: {"clean": [], "jpeg75": [], "h264_crf23": [], "h264_crf30": [], "psnr_db": []} for k in res}
    raw: dict = {"clean": [], "jpeg75": [], "h264_crf23": [], "h264_crf30": []}
    found = {"clean": 0, "jpeg75": 0, "h264_crf23": 0, "h264_crf30": 0}
    false_pos = 0
    for im in imgs:
        m = pv.embed_watermark(im, "film", MID, KEY)
        b = enc.encode(np.ascontiguousarray(im[..., ::-1]), "dwtDct")[..., ::-1]
        b = np.ascontiguousarray(b)
        acc["ours"]["psnr_db"].append(cv2.PSNR(im, m))
        acc["baseline_dwtdct"]["psnr_db"].append(cv2.PSNR(im, b))
        false_pos += int(pv.decode_watermark(im).found)
        for name, attack in (("clean", lambda x: x), ("jpeg75", jpeg75), ("h264_crf23", h264), ("h264_crf30", lambda x: h264(x, 30))):
            am = attack(m)
            r = pv.decode_watermark(am)
            acc["ours"][name].append(float(np.mean(r.bits == expect64)))
            raw[name].append(ours_raw_accuracy(am))
            found[name] += int(r.names_manifest(MID) and r.authentic(KEY))
            ab = np.ascontiguousarray(attack(b)[..., ::-1])
            got = np.unpackbits(np.frombuffer(dec.decode(ab, "dwtDct"), np.uint8))
            acc["baseline_dwtdct"][name].append(float(np.mean(got == expect48)))
    for k in acc:
        res[k]["bit_accuracy"] = {n: round(float(np.mean(v)), 4) for n, v in acc[k].items() if n != "psnr_db"}
        res[k]["psnr_db"] = round(float(np.mean(acc[k]["psnr_db"])), 1)
    res["ours"]["raw_coefficient_accuracy"] = {n: round(float(np.mean(v)), 4) for n, v in raw.items()}
    res["ours"]["decoded_and_matched"] = {n: f"{v}/{len(imgs)}" for n, v in found.items()}
    res["ours"]["false_positives_on_unmarked"] = f"{false_pos}/{len(imgs)}"
    return res


def bench_robustness() -> dict:
    """Payload read back (found, authentic, naming its manifest) per frame size and attack:
    the table in docs/rights.md."""
    import matplotlib.cbook
    import skimage.data

    hop = np.ascontiguousarray(cv2.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))[..., ::-1])
    sizes = {"256x256": cv2.resize(hop, (256, 256)), "450x300 (chelsea)": skimage.data.chelsea(), "512x512 (astronaut)": skimage.data.astronaut(),
             "600x400 (coffee)": skimage.data.coffee(), "1280x720": cv2.resize(skimage.data.astronaut(), (1280, 720)), f"{W}x{H}": cv2.resize(hop, (W, H))}

    def jpeg(q):
        return lambda x: cv2.imdecode(cv2.imencode(".jpg", x[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])[1], cv2.IMREAD_COLOR)[..., ::-1]

    attacks = {"jpeg_q75": jpeg(75), "jpeg_q50": jpeg(50), "h264_crf23": h264, "h264_crf28": lambda x: h264(x, 28), "h264_crf30": lambda x: h264(x, 30)}
    out: dict = {}
    for name, img in sizes.items():
        img = np.ascontiguousarray(img[: img.shape[0] // 2 * 2, : img.shape[1] // 2 * 2])
        m = pv.embed_watermark(img, "film", MID, KEY)
        row = {"psnr_db": round(float(cv2.PSNR(img, m)), 1)}
        for an, fn in attacks.items():
            r = pv.decode_watermark(fn(m))
            row[an] = bool(r.found and r.names_manifest(MID) and r.authentic(KEY))
        row["unmarked_found"] = pv.decode_watermark(img).found
        out[name] = row
    return out


def bench_identity() -> dict:
    """Distances on the two real portraits and their copies (smaller, mirrored, JPEG 50, darker),
    dlib and the mesh fallback, beside a trivial method (8x8 grey thumbnails of the face box)."""
    from machinima import identity as ident

    ports = portraits_for_merge()
    ports = {"collins": ports[0], "hopper": ports[1]}

    def variants(img):
        ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 50])
        return {"0.6x": cv2.resize(img, None, fx=0.6, fy=0.6), "mirror": np.ascontiguousarray(img[:, ::-1]),
                "jpeg50": cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1], "darker": (img * 0.6).astype(np.uint8)}

    out: dict = {}
    for method in ident.available():
        emb = ident.get_embedder(method)
        refs, thumbs = {}, {}
        for who, img in ports.items():
            box = emb.find(img)[0].box
            refs[who] = emb.embed(img, box)
            x0, y0, x1, y1 = (int(max(0, v)) for v in box)
            thumbs[who] = cv2.resize(cv2.cvtColor(img[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY), (8, 8)).astype(float)
        same, other, right, trivial_right, n = [], [], 0, 0, 0
        for who, img in ports.items():
            rival = "hopper" if who == "collins" else "collins"
            for v in variants(img).values():
                box = emb.find(v)[0].box
                e = emb.embed(v, box)
                same.append(emb.distance(e, refs[who]))
                other.append(emb.distance(e, refs[rival]))
                right += same[-1] < emb.threshold <= other[-1]
                x0, y0, x1, y1 = (int(max(0, c)) for c in box)
                t = cv2.resize(cv2.cvtColor(v[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY), (8, 8)).astype(float)
                trivial_right += np.abs(t - thumbs[who]).mean() < np.abs(t - thumbs[rival]).mean()
                n += 1
        out[method] = {"threshold": emb.threshold, "between_the_two_people": round(emb.distance(refs["collins"], refs["hopper"]), 3),
                       "copy_to_own_reference": [round(min(same), 3), round(max(same), 3)],
                       "copy_to_other_reference_min": round(min(other), 3),
                       "copies_identified": f"{right}/{n}", "trivial_thumbnail_identified": f"{trivial_right}/{n}"}
    return out


def bench_signing(ident, imgs: list[np.ndarray], reps: int, video_seconds: float, tmp: Path) -> dict:
    d = pv.Disclosure(identity=ident, take_id=TAKE, step_id=STEP, step_kind="faceswap-merge", production="film",
                      rights={"records": [{"id": "alice"}], "override": None})
    out = {}
    for ext in (".png", ".jpg"):
        ok, buf = cv2.imencode(ext, imgs[0][..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95] if ext == ".jpg" else [])
        data = buf.tobytes()
        man = d.manifest("f" + ext, pv.MIME[ext], 1, MID)
        if ext == ".png":  # as Disclosure.encode does: one IDAT chunk, then sign
            out["sign_png_1080p_many_idat_ms"] = round(1000 * timeit(lambda: pv.sign_bytes(data, pv.MIME[ext], man, ident), reps), 2)
            fn = lambda: pv.sign_bytes(pv.png_single_idat(data), pv.MIME[ext], man, ident)  # noqa: E731
        else:
            fn = lambda: pv.sign_bytes(data, pv.MIME[ext], man, ident)  # noqa: E731
        out[f"sign_{ext[1:]}_1080p_ms"] = round(1000 * timeit(fn, reps), 2)
        out[f"{ext[1:]}_bytes"] = len(data)
    n = int(round(24 * video_seconds))
    frames = [np.roll(imgs[i % len(imgs)], 8 * i, axis=1) for i in range(n)]
    t = time.perf_counter()
    path = tmp / "clip.mp4"  # ultrafast x264 at crf 18: a large file, so a conservative hash time
    _h264.encode(frames, crf=18, preset="ultrafast", path=path, decode=False)
    enc_s = time.perf_counter() - t
    size = path.stat().st_size
    t = time.process_time()
    pv.sign_file(path, d.manifest(path.name, "video/mp4", manifest_id=pv.new_manifest_id()), ident)
    sign_s = time.process_time() - t
    t = time.process_time()
    rep = pv.verify_file(path, watermark=False)
    read_s = time.process_time() - t
    out.update({
        "video_clip_seconds": video_seconds, "video_clip_mb": round(size / 1e6, 2), "video_encode_s": round(enc_s, 2),
        "sign_video_s": round(sign_s, 3), "sign_per_minute_1080p_s": round(sign_s * 60 / video_seconds, 2),
        "verify_manifest_video_s": round(read_s, 3), "video_manifest": rep.manifest,
        "note": "video signing hashes the file (BMFF hash): time scales with file size; per-minute figure scaled from the clip",
    })
    return out


class _DisclosureClock:
    """CPU seconds spent in what disclosure adds (marking, the single-IDAT rewrite, signing),
    counted inside the real step while it runs: robust where an A/B difference on a busy
    machine is not.

    Also where the rest of an A/B difference goes, in both modes: the MP4 encode
    (``imageseq.write_video``: x264 plus, when on, marking its frames, which is subtracted, and
    decoding the step's frames back, counted as QOI), the picture encoders
    (``cv2.imwrite``/``cv2.imencode``) and the QOI codec (the step's frames written, and read
    back for its movie and preview); a marked frame can cost the codecs more than the marking
    itself. Marking, signing and picture encoding run in the step's
    write-behind threads (issue 23), so they are timed with the calling thread's CPU clock; the
    MP4 encode (x264 runs its own threads, after the frames are written) with the process's."""

    def __init__(self) -> None:
        from machinima import imageseq
        from machinima.provenance import disclosure as dmod

        self.mod, self.imageseq, self.seconds, self.saved = dmod, imageseq, 0.0, {}
        self.video_s, self.video_marks_s, self.picture_s, self.in_video = 0.0, 0.0, 0.0, False
        self.video_bytes = 0
        self.qoi_s, self.video_qoi_s = 0.0, 0.0

    def _thread_timed(self, fn, total: str, in_video: str | None = None):
        """``fn`` with its calling thread's CPU added to attribute ``total`` (and to ``in_video``
        while the MP4 is being encoded, so that share can be taken out of the MP4's figure)."""
        def timed(*a, **kw):
            t = time.thread_time()
            try:
                return fn(*a, **kw)
            finally:
                dt = time.thread_time() - t
                setattr(self, total, getattr(self, total) + dt)
                if in_video and self.in_video:
                    setattr(self, in_video, getattr(self, in_video) + dt)
        return timed

    def _wrap(self, fn):
        return self._thread_timed(fn, "seconds", "video_marks_s")

    def _wrap_video(self, fn):
        def timed(*a, **kw):
            t, self.in_video = time.process_time(), True
            try:
                out = fn(*a, **kw)
                self.video_bytes += Path(out).stat().st_size
                return out
            finally:
                self.in_video = False
                self.video_s += time.process_time() - t
        return timed

    def _wrap_picture(self, fn):
        return self._thread_timed(fn, "picture_s")

    def _wrap_qoi(self, fn):
        return self._thread_timed(fn, "qoi_s", "video_qoi_s")

    def __enter__(self) -> "_DisclosureClock":
        for name in ("sign_bytes", "sign_file", "png_single_idat"):
            self.saved[name] = getattr(self.mod, name)
            setattr(self.mod, name, self._wrap(self.saved[name]))
        self.saved["mark"] = self.mod.Disclosure.mark
        self.mod.Disclosure.mark = self._wrap(self.saved["mark"])
        self.saved["write_video"] = self.imageseq.write_video
        self.imageseq.write_video = self._wrap_video(self.saved["write_video"])
        for name in ("imwrite", "imencode"):
            self.saved[name] = getattr(cv2, name)
            setattr(cv2, name, self._wrap_picture(self.saved[name]))
        try:
            import qoi
        except ImportError:
            qoi = None
        self.qoi = qoi
        for name in ("encode", "decode", "read", "write") if qoi is not None else ():
            self.saved["qoi." + name] = getattr(qoi, name)
            setattr(qoi, name, self._wrap_qoi(self.saved["qoi." + name]))
        return self

    def codec(self) -> tuple[float, float, int, float]:
        """(MP4 encode CPU without the marking and the QOI decoding inside it, picture encode
        CPU, MP4 bytes, QOI encode + decode CPU)."""
        return self.video_s - self.video_marks_s - self.video_qoi_s, self.picture_s, self.video_bytes, self.qoi_s

    def __exit__(self, *exc: object) -> None:
        self.mod.Disclosure.mark = self.saved.pop("mark")
        self.imageseq.write_video = self.saved.pop("write_video")
        for name in ("imwrite", "imencode"):
            setattr(cv2, name, self.saved.pop(name))
        for name in [k for k in self.saved if k.startswith("qoi.")]:
            setattr(self.qoi, name[4:], self.saved.pop(name))
        for name, fn in self.saved.items():
            setattr(self.mod, name, fn)


def _runs(rounds: int, make, run) -> dict:
    """Alternate disclosure off/on ``rounds`` times (fresh output folders), best of each, wall and
    CPU; and, inside each "on" run, the CPU time disclosure itself took."""
    wall: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    inside: list[tuple[float, float]] = []  # (disclosure CPU, whole step CPU) per "on" run
    codec: dict[str, list[tuple[float, float, int, float]]] = {"off": [], "on": []}
    for r in range(rounds):
        for mode in ("off", "on"):
            ctx = make(mode, r)
            with _DisclosureClock() as clock:
                t, w = time.process_time(), time.perf_counter()
                run(ctx)
                cpu[mode].append(time.process_time() - t)
                wall[mode].append(time.perf_counter() - w)
            codec[mode].append(clock.codec())
            if mode == "on":
                inside.append((clock.seconds, cpu[mode][-1]))
    best = {m: (min(wall[m]), min(cpu[m])) for m in wall}
    shares = [d / c for d, c in inside]
    return {"wall_s_off_on": [round(best["off"][0], 2), round(best["on"][0], 2)],
            "cpu_s_off_on": [round(best["off"][1], 2), round(best["on"][1], 2)],
            "disclosure_share_wall_ab": round((best["on"][0] - best["off"][0]) / best["off"][0], 4),
            "disclosure_share_cpu_ab": round((best["on"][1] - best["off"][1]) / best["off"][1], 4),
            "disclosure_cpu_s_inside": [round(d, 3) for d, _ in inside],
            "disclosure_share_inside": round(float(np.median(shares)), 4),
            # the codecs' extra work on marked pixels, counted inside each run (median of rounds)
            "mp4_encode_cpu_s_off_on": [round(float(np.median([c[0] for c in codec[m]])), 3) for m in ("off", "on")],
            "picture_encode_cpu_s_off_on": [round(float(np.median([c[1] for c in codec[m]])), 3) for m in ("off", "on")],
            "mp4_bytes_off_on": [int(np.median([c[2] for c in codec[m]])) for m in ("off", "on")],
            # the step's QOI frames: encoded by the write-behind threads, decoded for its movie and preview
            "qoi_cpu_s_off_on": [round(float(np.median([c[3] for c in codec[m]])), 3) for m in ("off", "on")],
            "codec_extra_share": round(float(sum(np.median([c[i] for c in codec["on"]]) - np.median([c[i] for c in codec["off"]])
                                                 for i in (0, 1, 3)) / best["off"][1]), 4),
            "all_wall_s": {m: [round(x, 2) for x in v] for m, v in wall.items()},
            "all_cpu_s": {m: [round(x, 2) for x in v] for m, v in cpu.items()}}


def bench_merge(imgs: list[np.ndarray], n: int, rounds: int, tmp: Path) -> dict:
    """The real face-swap merge at 1080p (a DF model of the CLI's default size), disclosure off vs on,
    and the identity check it runs (timed inside it). The clip: an actor over a textured
    location photo, one second at 24 fps (a shot's identity check is per track, so its share
    falls as the shot grows)."""
    import torch

    from faceswap.extract import extract
    from faceswap.merge import MergeOptions, merge
    from faceswap.model import ModelConfig
    from faceswap.train import TrainConfig, Trainer
    from machinima import rights
    from machinima.imageseq import write_image

    torch.set_num_threads(1)
    project = tmp / "merge-project"
    chain = pv.make_test_chain(project / "certs")
    (project / "machinima.toml").write_text(f'production = "film"\n{chain.toml()}')
    collins, hopper = imgs[0], imgs[1]
    clip = project / "clip"
    import skimage.data

    location = cv2.resize(skimage.data.coffee(), (W, H), interpolation=cv2.INTER_CUBIC)  # a textured live-action background
    actor = cv2.resize(collins, (768, 768))  # a medium shot: the detector finds the face over a busy background
    for f in range(n):  # the actor moves across a 1080p frame
        frame = location.copy()
        x = 300 + 20 * f
        frame[100:100 + actor.shape[0], x:x + actor.shape[1]] = actor
        write_image(clip / f"{f:06d}.png", frame)
    for who, img in (("collins", collins), ("hopper", hopper)):
        for i in range(3):
            write_image(project / "src" / who / f"{i:06d}.png", np.ascontiguousarray(np.roll(img, 4 * i, axis=1)))
        extract(project / "src" / who, project / "faces" / who, face_type="whole", size=128, progress=False)
    store = rights.RightsStore(project / "rights")
    photos = project / "photos"
    photos.mkdir()
    for who, img in (("collins", collins), ("hopper", hopper)):
        cv2.imwrite(str(photos / f"{who}.png"), img[..., ::-1])
        store.add(rights.RightsRecord(id=who, kind="person", subject=who, production="film", scopes=("training", "face_replacement"),
                                      document_sha256="0" * 64, granted_by=who, identity=rights.reference_identity([photos / f"{who}.png"])))
    model = project / "model"
    Trainer(model, src=project / "faces" / "hopper", dst=project / "faces" / "collins", production="film", rights_store=store.root,
            model_config=ModelConfig(arch="df", res=128),  # the CLI's default size; a few iterations: the cost is the same as trained
            train_config=TrainConfig(batch=2, save_every=1000)).train(1, progress=False)
    check_s: list[float] = []
    check_cpu: list[float] = []
    real = rights.require_cleared

    def timed_check(*a, **kw):
        t, c = time.perf_counter(), time.process_time()
        out = real(*a, **kw)
        check_s.append(time.perf_counter() - t)
        check_cpu.append(time.process_time() - c)
        return out

    rights.require_cleared = timed_check
    opts = MergeOptions(engine="torch", batch=2, blend="seamless", color="rct")

    def make(mode: str, r: int) -> Path:
        out = project / f"swapped-{mode}-{r}"
        out.mkdir()
        if mode == "off":
            pv.record_decision(out, False, "benchmark: disclosure off")
        return out

    faces: list[int] = []

    def run(out: Path) -> None:
        r = merge(clip, model, out=out, options=opts, production="film", rights_store=store.root, progress=False)
        faces.append(r.frames - len(r.no_face))

    try:
        res = _runs(rounds, make, run)
    finally:
        rights.require_cleared = real
    if min(faces) < n:
        raise SystemExit(f"the merge found a face in only {min(faces)} of {n} frames: the figures would not be a merge")
    per_frame = res["wall_s_off_on"][1] / n
    res.update({"frames": n, "resolution": f"{W}x{H}", "merge_wall_ms_per_frame_disclosed": round(1000 * per_frame, 1),
                "identity_check_s": [round(x, 3) for x in check_s],
                "identity_check_ms_per_frame": round(1000 * min(check_s) / n, 1),
                "identity_check_share_wall": round(min(check_s) / res["wall_s_off_on"][1], 4),
                "identity_check_share_cpu": round(min(check_cpu) / res["cpu_s_off_on"][1], 4),
                "what": "faceswap.merge.merge(clip folder -> PNG frames + MP4), DF model at the CLI's default size (res 128, "
                        "dims 64/256/64, one training iteration), mediapipe tracking, seamless blend; identity: dlib embeddings "
                        "of each track's samples matched to the records"})
    return res


def bench_composite(n: int, rounds: int, tmp: Path) -> dict:
    """The real composite step on the demo set at 1920x1080, disclosure off vs on."""
    from composite.demo_scene import make_demo
    from composite.pipeline import CompositeSettings, run_composite
    from composite.placement import PlacementSettings

    project = tmp / "comp-project"
    chain = pv.make_test_chain(project / "certs")
    (project / "machinima.toml").write_text(f'production = "film"\n{chain.toml()}')
    take, plate, pos = make_demo(project, width=W, height=H, frames=n)

    def make(mode: str, r: int) -> str:
        sid = f"composite-{mode}-{r}"
        if mode == "off":
            # the decision lives in the take: record it for this run only, then restore
            pv.record_decision(take, False, "benchmark: disclosure off")
        else:
            pv.record_decision(take, True, "benchmark: disclosure on")
        return sid

    def run(sid: str) -> None:
        run_composite(take, CompositeSettings(plate=plate, matte="green", placement=PlacementSettings(position=pos), step_id=sid),
                      progress=False)

    res = _runs(rounds, make, run)
    res.update({"frames": n, "resolution": f"{W}x{H}",
                "what": "composite.pipeline.run_composite(take passes + green-screen plate -> PNG frames + MP4), demo set"})
    return res


def _movie_own_mark() -> None:
    """The before figure: every step movie re-marked with its own manifest id (with memory), as
    ``Disclosure.write_video`` did before it kept a QOI step's sequence mark."""
    real = pv.Disclosure.write_video

    def write_video(self, *a, **kw):
        seq, self.sequence_id = self.sequence_id, ""
        try:
            return real(self, *a, **kw)
        finally:
            self.sequence_id = seq

    pv.Disclosure.write_video = write_video


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steps-only", action="store_true", help="only the merge and composite A/B (no kernels, identity, signing)")
    ap.add_argument("--merge-frames", type=int, default=None)
    ap.add_argument("--composite-frames", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--without-memory", action="store_true",
                    help="mark a step movie's frames one by one (no WatermarkMemory), for the before/after figure")
    ap.add_argument("--movie-own-mark", action="store_true",
                    help="re-mark a QOI step's movie with its own manifest id (before the movie kept its frames' sequence mark)")
    a = ap.parse_args()
    if a.movie_own_mark:
        _movie_own_mark()
    cv2.setNumThreads(1)  # one core per post-step worker; CPU times comparable across runs
    if a.without_memory:
        pv.WatermarkMemory.STICKY = -1.0  # never keep a point: every frame marked on its own
    reps = 3 if a.quick else 10
    rounds = a.rounds or (2 if a.quick else 3)
    imgs = photos()
    load_start = os.getloadavg()
    wm, sign, identity = {}, {}, {}
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        if not a.steps_only:
            chain = pv.make_test_chain(tmp / "certs")
            ident = pv.load_identity(chain.cert, chain.key)
            wm = bench_watermarks(imgs[:2] if a.quick else imgs, reps)
            wm["read_back_by_size"] = bench_robustness()
            identity = bench_identity()
            sign = bench_signing(ident, imgs, reps, 1.0 if a.quick else 4.0, tmp)
        portraits = [np.ascontiguousarray(p) for p in portraits_for_merge()]
        merge_res = bench_merge(portraits, a.merge_frames or (6 if a.quick else 24), rounds, tmp)
        comp = bench_composite(a.composite_frames or (3 if a.quick else 6), rounds, tmp)
    per_frame_ms = (wm["ours"]["embed_ms"] + sign["sign_png_1080p_ms"]) if wm else None
    out = {
        "bench": "disclosure", "resolution": f"{W}x{H}", "cpu_threads": os.cpu_count(), "quick": a.quick,
        "argv": sys.argv[1:], "watermark_memory": not a.without_memory,
        "step_movie_mark": "its own manifest id" if a.movie_own_mark else "the frames' sequence manifest id (kept)",
        "load_average_start_end": [round(x, 1) for x in load_start] + [round(x, 1) for x in os.getloadavg()],
        "timing": "kernels: CPU seconds (process time), OpenCV on one thread; steps: wall and CPU seconds, whole call disk to disk",
        "watermark": wm, "signing": sign,
        "faceswap_merge": merge_res, "composite": comp, "identity": identity,
        "disclosure_kernel_ms_per_1080p_frame": round(per_frame_ms, 1) if per_frame_ms is not None else None,
        "goals": {"disclosure_share_of_step": 0.10, "identity_check_share_of_merge": 0.05},
    }
    print(json.dumps(out, indent=2))


def portraits_for_merge() -> list[np.ndarray]:
    """Eileen Collins (scikit-image's astronaut) and Grace Hopper (matplotlib), at portrait size."""
    import matplotlib.cbook
    import skimage.data

    hop = cv2.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))[..., ::-1]
    return [cv2.resize(skimage.data.astronaut(), (512, 512)), cv2.resize(np.ascontiguousarray(hop), (512, 600))]


if __name__ == "__main__":
    main()
