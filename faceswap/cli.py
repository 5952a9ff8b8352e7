"""`machinima faceswap ...`: extract, sort, train, merge, export-onnx.

Heavy imports (torch, cv2, mediapipe, onnxruntime) stay inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.console import Console

from machinima.distributed.cli import BareRayGroup

from .smoothing import LIVE_BETA, LIVE_D_CUTOFF, LIVE_MIN_CUTOFF

app = typer.Typer(cls=BareRayGroup, help="Face swap: extract faces, train a model, merge it into takes and videos.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _warn(lines: list[str]) -> None:
    for line in lines:
        err.print(f"[yellow]warning[/]: {line}")


def _target(target: str) -> Path:
    p = Path(target)
    if p.exists():
        return p
    from machinima.cli import resolve_take

    return resolve_take(target)


@app.command("extract")
def extract_cmd(
    src: str = typer.Argument(..., help="A take (folder or id), a video file or a folder of images."),
    out: Path = typer.Option(..., "--out", help="The faceset folder (created if new; a rerun resumes)."),
    face_type: str = typer.Option("whole", "--face-type", help="half | mid | full | whole | head"),
    size: int = typer.Option(256, "--size", help="Aligned face size in pixels (64-1024)."),
    backend: str = typer.Option("mediapipe", "--backend", help="mediapipe (built in) or onnx (your models)."),
    detector: Optional[Path] = typer.Option(None, "--detector", help="ONNX detector model (backend onnx)."),
    landmarks: Optional[Path] = typer.Option(None, "--landmarks", help="ONNX 68-point landmark model (backend onnx)."),
    every: int = typer.Option(1, "--every", help="Use every Nth frame."),
    tag: list[str] = typer.Option([], "--tag", help="Tags for the new faces (repeatable)."),
) -> None:
    """Find, align and save every face of SRC into a faceset."""
    from .extract import extract

    opts = {k: str(v) for k, v in (("detector", detector), ("landmarks", landmarks)) if v} if backend == "onnx" else {}
    r = extract(_target(src), out, face_type=face_type, size=size, backend=backend, backend_options=opts, every=every, tags=tuple(tag))
    console.print(f"{r.added} face(s) added to {out} from {r.frames - r.skipped_frames} frame(s) ({r.fps:.1f} frames/s); {r.skipped_frames} already done")
    _warn(r.messages())


@app.command("sort")
def sort_cmd(
    faceset: Path = typer.Argument(..., help="The faceset folder."),
    by: str = typer.Option("blur", "--by", help="blur | yaw | pitch | dupes"),
    remove: bool = typer.Option(False, "--remove", help="Delete the flagged faces (blurry / extreme pose / dupes)."),
    show: int = typer.Option(10, "--show", help="How many ranked faces to print."),
    force: bool = typer.Option(False, "--force", help="With --remove: remove even when it leaves too few faces to train on."),
) -> None:
    """Rank a faceset and tag what to look at (blurry, extreme pose, duplicates)."""
    from .errors import FacesetError
    from .faceset import FEW_FACES, filter_faceset, sort_faceset

    r = sort_faceset(faceset, by)
    for rank, (item, value) in enumerate(r.order[:show]):
        console.print(f"{rank:4d}  item {item:6d}  {by} {value:.3f}{'  [yellow]flagged[/]' if item in r.flagged else ''}")
    console.print(f"{len(r.order)} face(s) ranked by {by}; {len(r.flagged)} flagged")
    _warn([str(p) for p in r.problems])
    if remove and r.flagged:
        total, left = len(r.order), len(r.order) - len(r.flagged)
        if left < FEW_FACES and len(r.flagged) * 2 > total and not force:  # the flags stay: nothing is removed
            raise FacesetError(f"--remove would delete {len(r.flagged)} of {total} faces ({by}), leaving {left}: too few to train on",
                               hint="look at the flagged faces first, extract more frames, or add --force to remove them anyway")
        tag = {"blur": "blurry", "yaw": "extreme-pose", "pitch": "extreme-pose", "dupes": "dupe"}[by]
        n = filter_faceset(faceset, (tag,))
        console.print(f"removed {n} of {total} face(s); {total - n} left" + (f" (fewer than {FEW_FACES}: training will warn)" if total - n < FEW_FACES else ""))


@app.command("verify")
def verify_cmd(
    faceset: Path = typer.Argument(..., help="The faceset (or any image collection) folder."),
    drop: bool = typer.Option(False, "--drop", help="Remove items whose file is missing or corrupt from the index."),
) -> None:
    """List missing, corrupt, changed and stray files of a faceset (exit code 1 if any)."""
    from machinima.collections import Collection, CollectionError

    from .errors import FacesetError

    try:
        col = Collection.open(faceset)
    except CollectionError as exc:
        raise FacesetError(str(exc)) from None
    try:
        problems = col.verify()
        for p in problems:
            err.print(f"[yellow]{p.kind}[/]: {p.file}{f' (item {p.item_id})' if p.item_id is not None else ''}: {p.message}")
        if drop:
            bad = sorted({p.item_id for p in problems if p.kind in ("missing", "corrupt") and p.item_id is not None})
            for i in bad:
                col.remove(i)
            if bad:
                console.print(f"dropped {len(bad)} item(s) from the index")
        console.print(f"{len(col)} item(s), {len(problems)} problem(s)")
    finally:
        col.close()
    if problems and not drop:
        raise typer.Exit(1)


@app.command("train")
def train_cmd(
    model: Path = typer.Option(..., "--model", help="The model folder (created if new; a rerun resumes exactly)."),
    src: Optional[Path] = typer.Option(None, "--src", help="Faceset of the face to put in."),
    dst: Optional[Path] = typer.Option(None, "--dst", help="Faceset of the face to replace."),
    preset: Optional[str] = typer.Option(None, "--preset", help="cpu: a 64 px model and fast, stable settings for a CPU (flags override it)."),
    arch: Optional[str] = typer.Option(None, "--arch", help="df | liae (default df)"),
    res: Optional[int] = typer.Option(None, "--res", help="Model resolution, a multiple of 16 (default 128)."),
    iters: int = typer.Option(10000, "--iters", help="Train until this iteration (total)."),
    batch: Optional[int] = typer.Option(None, "--batch", help="Default 8 (a resumed model keeps its own)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Default 5e-5 (a resumed model keeps its own)."),
    e_dims: Optional[int] = typer.Option(None, "--e-dims", help="Default 64."),
    ae_dims: Optional[int] = typer.Option(None, "--ae-dims", help="Default 256."),
    d_dims: Optional[int] = typer.Option(None, "--d-dims", help="Default 64."),
    save_every: Optional[int] = typer.Option(None, "--save-every", help="Checkpoint and preview every N iterations (default 500)."),
    gan_power: Optional[float] = typer.Option(None, "--gan-power", help="> 0 adds the adversarial stage (default 0)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N (default auto)"),
    seed: Optional[int] = typer.Option(None, "--seed", help="Default 0; fixed for the life of a model."),
    production: Optional[str] = typer.Option(None, "--production", help="Production for the rights check (default: machinima.toml)."),
    subject: list[str] = typer.Option([], "--subject", help="A label only: every face is matched against the rights records."),
    override: Optional[str] = typer.Option(None, "--rights-override", help="Proceed without rights records, with this reason (recorded)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch (default: 1 with --preset cpu, else torch's)."),
) -> None:
    """Train a face model on two facesets (checkpoints every N iterations and on Ctrl-C)."""
    from .train_config import PRESETS

    if preset is not None and preset not in PRESETS:
        raise typer.BadParameter(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}", param_hint="--preset")
    pre = PRESETS[preset] if preset else {"model": {}, "train": {}}
    import torch

    torch_threads = torch.get_num_threads()
    if threads is not None or preset == "cpu":
        # a small model's convolutions gain little from a second thread, and on a shared machine
        # OpenMP's threads wait on each other: one thread trained 7x faster at load 8-10 on 2
        # cores (1.1-1.4 s/it against 8.4-10.2 s/it, the same losses)
        torch.set_num_threads(max(1, threads or 1))
    try:
        _train(model, src, dst, pre, arch, res, iters, batch, lr, e_dims, ae_dims, d_dims, save_every, gan_power, device, seed,
               production, override)
    finally:
        torch.set_num_threads(torch_threads)


def _train(model, src, dst, pre, arch, res, iters, batch, lr, e_dims, ae_dims, d_dims, save_every, gan_power, device, seed,
           production, override) -> None:
    from machinima.config import load_config

    from .model import ModelConfig
    from .train import Trainer, read_model_doc

    doc = read_model_doc(model) if (model / "model.json").exists() else {}
    s, d = src or doc.get("src"), dst or doc.get("dst")
    prod = production or load_config().production
    flags = {"arch": arch, "res": res, "e_dims": e_dims, "ae_dims": ae_dims, "d_dims": d_dims}
    mc = None if doc else ModelConfig(**{**pre["model"], **{k: v for k, v in flags.items() if v is not None}})
    given = {"batch": batch, "lr": lr, "save_every": save_every, "gan_power": gan_power, "device": device, "seed": None if doc else seed}
    overrides = {**pre["train"], **{k: v for k, v in given.items() if v is not None}}
    t = Trainer(model, src=s, dst=d, model_config=mc, production=prod, override=override,  # the Trainer checks every face (--subject only labels)
                overrides=overrides)
    _warn(t.problems)
    r = t.train(iters)
    state = "stopped (Ctrl-C)" if r.interrupted else "done"
    console.print(f"{state} at iteration {r.iteration}: {r.its:.2f} it/s, loss src {r.loss_src:.4f} dst {r.loss_dst:.4f}; saved in {model} (preview.png, history.csv)")


@app.command("merge")
def merge_cmd(
    target: str = typer.Argument(..., help="A take (folder or id), a video file or a folder of images."),
    model: Optional[Path] = typer.Option(None, "--model", help="The trained model folder."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: <take>/post/<step-id>/)."),
    step_id: Optional[str] = typer.Option(None, "--step-id"),
    color: str = typer.Option("rct", "--color", help="rct | lct | mkl | idt | sot | none"),
    smooth: str = typer.Option("zero-lag", "--smooth", help="zero-lag (offline, no lag) | one-euro (causal) | savgol | none"),
    min_cutoff: float = typer.Option(LIVE_MIN_CUTOFF, "--min-cutoff", help="One-Euro stillness cutoff (Hz): lower = steadier."),
    beta: float = typer.Option(LIVE_BETA, "--beta", help="One-Euro: extra cutoff (Hz) per pixel/second of face speed."),
    d_cutoff: float = typer.Option(LIVE_D_CUTOFF, "--d-cutoff", help="One-Euro: low-pass of the speed estimate (Hz)."),
    window: int = typer.Option(9, "--window", help="zero-lag / Savitzky-Golay window (frames)."),
    blend: str = typer.Option("seamless", "--blend", help="seamless | alpha"),
    erode: int = typer.Option(0, "--erode", help="Mask erode (+) / dilate (-), face pixels."),
    blur: int = typer.Option(8, "--blur", help="Mask feather, face pixels."),
    sharpen: float = typer.Option(0.0, "--sharpen"),
    grain: float = typer.Option(0.0, "--grain", help="1.0 matches the target's grain."),
    engine: str = typer.Option("torch", "--engine", help="torch | onnx | none (no network: check tracking and masks)"),
    device: str = typer.Option("auto", "--device"),
    batch: int = typer.Option(8, "--batch"),
    track: list[int] = typer.Option([], "--track", help="Only swap these track ids (repeatable)."),
    production: Optional[str] = typer.Option(None, "--production"),
    subject: list[str] = typer.Option([], "--subject", help="Rights subjects (default: the model's faceset names)."),
    override: Optional[str] = typer.Option(None, "--rights-override", help="Proceed without rights records, with this reason (recorded)."),
    no_video: bool = typer.Option(False, "--no-video", help="Frames only, no mp4."),
    occlusion_model: Optional[Path] = typer.Option(None, "--occlusion-model", help="ONNX segmenter (from train-mask): keeps hands/mics in front."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]", help="Swap as chunks on a Ray cluster (bare --ray: RAY_ADDRESS, a running cluster, else a local one): host:6379, ray://host:10001 or local "
                                      "(target and model on storage every node sees)."),
    chunk: Optional[int] = typer.Option(None, "--chunk", min=1, help="With --ray: frames per task (default: measured, ~2 s of work a task, at least 2 tasks a worker)."),
) -> None:
    """Swap the trained face into TARGET (resumable; Ctrl-C stops after the frame in hand)."""
    from .merge import MergeOptions, merge

    if model is None and engine != "none":
        raise typer.BadParameter("--model is required (or --engine none)")
    opts = MergeOptions(color=color, smooth=smooth, min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff, window=window, blend=blend,
                        erode=erode, blur=blur,
                        sharpen=sharpen, grain=grain, engine=engine, device=device, batch=batch, tracks=list(track) or None,
                        occlusion_model=str(occlusion_model) if occlusion_model else None)
    r = merge(_target(target), model, out=out, step_id=step_id, options=opts, production=production, subjects=list(subject) or None,
              override=override, video=not no_video, ray=ray, chunk_size=chunk)
    for w in r.workers:
        console.print(f"{w['node']} pid {w['pid']}: {w['tasks']} task(s), {w['frames']} frame(s); load {w['load_s']:.2f} s, "
                      f"compute {w['compute_s']:.2f} s, write {w['write_s']:.2f} s, queue {w['queue_s']:.2f} s")
    console.print(f"{r.done} frame(s) merged, {r.skipped} already done, into {r.out_dir}" + (f"; video {r.video}" if r.video else ""))
    console.print(f"{r.jitter_message()}; {r.detections} full detection(s)")
    _warn(r.messages())


@app.command("train-mask")
def train_mask_cmd(
    faceset: list[Path] = typer.Option(..., "--faceset", help="Faceset(s) to learn the face region from (repeatable)."),
    out: Path = typer.Option(..., "--out", help="Folder for segmenter.pt / segmenter.onnx / segmenter.json."),
    res: int = typer.Option(128, "--res"),
    iters: int = typer.Option(2000, "--iters"),
    batch: int = typer.Option(8, "--batch"),
    width: int = typer.Option(16, "--width", help="Network width."),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Train the occlusion segmenter on facesets with synthetic occluders; export it to ONNX."""
    from .segmenter import train_segmenter

    s = train_segmenter(list(faceset), out, res=res, iters=iters, batch=batch, width=width, device=device)
    console.print(f"{s['iterations']} iterations, loss {s['loss_first']} -> {s['loss_last']}; use it with "
                  f"`merge --occlusion-model {out / 'segmenter.onnx'}`")
    _warn(s["problems"])


@app.command("live")
def live_cmd(
    source: str = typer.Argument(..., help="Camera index (0), video file or stream URL."),
    model: Optional[Path] = typer.Option(None, "--model", help="The trained model folder."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the swapped stream to this mp4."),
    engine: str = typer.Option("onnx", "--engine", help="onnx | torch | none"),
    color: str = typer.Option("rct", "--color"),
    min_cutoff: float = typer.Option(LIVE_MIN_CUTOFF, "--min-cutoff", help="One-Euro stillness cutoff (Hz)."),
    beta: float = typer.Option(LIVE_BETA, "--beta", help="One-Euro: extra cutoff (Hz) per pixel/second of face speed."),
    d_cutoff: float = typer.Option(LIVE_D_CUTOFF, "--d-cutoff", help="One-Euro: low-pass of the speed estimate (Hz)."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames"),
    fps: float = typer.Option(25.0, "--fps", help="Stream rate (for smoothing and the mp4)."),
    production: Optional[str] = typer.Option(None, "--production"),
    subject: list[str] = typer.Option([], "--subject"),
    override: Optional[str] = typer.Option(None, "--rights-override"),
) -> None:
    """Swap faces on a live stream (causal smoothing, per-frame latency); Ctrl-C stops."""
    from .live import live
    from .merge import MergeOptions

    if model is None and engine != "none":
        raise typer.BadParameter("--model is required (or --engine none)")
    opts = MergeOptions(engine=engine, blend="alpha", color=color, min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff,
                        smooth="one-euro")
    r = live(source, model, out=out, options=opts, max_frames=max_frames, fps=fps, production=production,
             subjects=list(subject) or None, override=override)
    console.print(f"{r.frames} frame(s), {r.faces} face(s); latency mean {np.mean(r.latency_ms) if r.latency_ms else 0:.1f} ms, "
                  f"p95 {r.p95_ms:.1f} ms ({r.fps:.1f} fps)" + (f"; wrote {r.out}" if r.out else ""))


@app.command("export-onnx")
def export_onnx_cmd(
    model: Path = typer.Option(..., "--model", help="The trained model folder."),
    out: Optional[Path] = typer.Option(None, "--out", help="Default: <model>/swap.onnx"),
    check: bool = typer.Option(True, "--check/--no-check", help="Compare onnxruntime with torch on a random batch."),
) -> None:
    """Export the model to ONNX (for `merge --engine onnx` and real-time use)."""
    import numpy as np

    from .onnx_export import OrtSwapper, TorchSwapper, export_onnx

    p = export_onnx(model, out)
    msg = f"wrote {p}"
    if check:
        ort, tor = OrtSwapper(p), TorchSwapper(model, device="cpu")
        x = np.random.default_rng(0).random((2, 3, ort.res, ort.res), dtype=np.float32)
        msg += f" (max difference to torch {float(np.abs(ort(x) - tor(x)).max()):.2e})"
    console.print(msg)
