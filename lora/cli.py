"""``machinima lora train DATASET --base DIR --out FILE [--preset 12gb]`` or ``--settings run.toml``
(every option as a key without its dashes; flags typed on the line win, see machinima.settingsfile)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from machinima.distributed.cli import BareRayGroup

app = typer.Typer(cls=BareRayGroup, help="LoRA training on a local Stable Diffusion 1.x base (peft; kohya/A1111/ComfyUI output).", no_args_is_help=True)
console = Console()


@app.callback()
def _main() -> None:
    """LoRA training."""


SCHEMA = "machinima.lora-train"


@app.command("train")
def train_cmd(
    ctx: typer.Context,
    dataset: Optional[Path] = typer.Argument(None, help="A captioned dataset folder (machinima dataset import + caption)."),
    settings: Optional[Path] = typer.Option(None, "--settings", help="A TOML of these options (keys without dashes); flags on the line win. "
                                            "Example: `machinima examples copy lora-train .`"),
    base: Optional[Path] = typer.Option(None, "--base", help="Base model: a diffusers folder or a .safetensors/.ckpt checkpoint (local; never downloaded)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output LoRA (.safetensors, kohya layout); the diffusers layout goes to OUT_STEM.diffusers/."),
    preset: str = typer.Option("cpu", "--preset", help="Memory preset: cpu, 8gb, 12gb, 24gb (see docs/lora.md)."),
    steps: int = typer.Option(1000, "--steps", help="Optimizer steps."),
    rank: int = typer.Option(16, "--rank", help="LoRA rank (network dim)."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="LoRA alpha (default: rank, i.e. scale 1)."),
    lr: float = typer.Option(1e-4, "--lr", help="Learning rate of the UNet LoRA."),
    lr_scheduler: str = typer.Option("constant", "--lr-scheduler", help="constant, constant_with_warmup, cosine, linear, polynomial."),
    warmup: int = typer.Option(0, "--warmup", help="Warm-up steps."),
    batch: Optional[int] = typer.Option(None, "--batch", help="Batch size (default: from the preset)."),
    resolution: int = typer.Option(512, "--resolution", help="Training resolution (bucket area = resolution^2)."),
    bucket_step: int = typer.Option(64, "--bucket-step", help="Bucket sides are multiples of this."),
    no_buckets: bool = typer.Option(False, "--no-buckets", help="Square crops at --resolution instead of aspect buckets."),
    noise_offset: float = typer.Option(0.0, "--noise-offset", help="Noise offset (0.05-0.1 helps very dark/bright images)."),
    prior: Optional[Path] = typer.Option(None, "--prior", help="Prior-preservation (class) dataset folder."),
    prior_weight: float = typer.Option(1.0, "--prior-weight", help="Weight of the prior-preservation loss."),
    train_text_encoder: bool = typer.Option(False, "--train-text-encoder", help="Also train a LoRA on the text encoder."),
    precision: Optional[str] = typer.Option(None, "--precision", help="Mixed precision on GPU: no, fp16, bf16 (default: from the preset)."),
    grad_ckpt: Optional[bool] = typer.Option(None, "--grad-checkpointing/--no-grad-checkpointing", help="Override the preset."),
    no_cache: bool = typer.Option(False, "--no-cache-latents", help="Encode images with the VAE every step (slower)."),
    save_every: int = typer.Option(100, "--save-every", help="Checkpoint every N steps (and always on Ctrl-C)."),
    sample_every: int = typer.Option(0, "--sample-every", help="Sample images every N steps (and at the end)."),
    sample_prompts: list[str] = typer.Option([], "--sample-prompt", help="Sample prompt ({trigger} is replaced); repeat. Default: the trigger."),
    sample_seeds: str = typer.Option("0,1", "--sample-seeds", help="Fixed seeds for the samples, comma-separated."),
    save_precision: str = typer.Option("fp16", "--save-precision", help="fp32, fp16 or bf16 for the output files."),
    seed: int = typer.Option(0, "--seed", help="Seed of data order, noise and LoRA init."),
    trigger: Optional[str] = typer.Option(None, "--trigger", help="Trigger word (default: the dataset's)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Diffusers config folder for a single-file checkpoint (offline)."),
    work: Optional[Path] = typer.Option(None, "--work", help="Work folder for checkpoints, samples, loss curve (default OUT_STEM.work/)."),
    fresh: bool = typer.Option(False, "--fresh", help="Start over: delete this run's checkpoints instead of resuming."),
    production: Optional[str] = typer.Option(None, "--production", help="Production for the rights check (default: machinima.toml)."),
    override: Optional[str] = typer.Option(None, "--override", help="Train without rights records, with this reason (recorded in the file)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda (default: from the preset)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch (default: torch's, the machine's cores; with --ray, 1 per trial). "
                                          "On a busy or shared machine 1 is often fastest for a small model."),
    sweep: Optional[str] = typer.Option(None, "--sweep", help='Several LoRAs: a grid of settings, e.g. "lr=1e-4,5e-5;rank=8,16" (one OUT_STEM-<trial> each).'),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]", help="With --sweep: one trial per Ray task on this cluster (bare --ray: RAY_ADDRESS, a running cluster, else a local one; or host:6379, local)."),
    gpus: Optional[float] = typer.Option(None, "--gpus", help="With --ray: GPUs per trial (default 1 with --device cuda, else 0)."),
) -> None:
    """Train a LoRA; rerun the same command to resume after Ctrl-C or a crash."""
    from machinima.settingsfile import apply_settings, require

    from .errors import TrainConfigError
    from .threads import check_threads, torch_threads
    from .train import TrainConfig, Trainer

    v = apply_settings(ctx, settings, SCHEMA)
    require(v, "dataset", "base", "out")
    check_threads(v.get("threads"))
    try:
        seeds = tuple(int(s) for s in v["sample_seeds"].split(",") if s.strip())
    except ValueError:
        raise TrainConfigError(f"--sample-seeds {v['sample_seeds']!r} must be integers separated by commas") from None
    cfg = TrainConfig.from_preset(
        v["preset"], steps=v["steps"], rank=v["rank"], alpha=v["alpha"], lr=v["lr"], lr_scheduler=v["lr_scheduler"], warmup_steps=v["warmup"],
        batch_size=v["batch"], resolution=v["resolution"], bucket_step=v["bucket_step"], buckets=not v["no_buckets"],
        noise_offset=v["noise_offset"], prior_weight=v["prior_weight"], train_text_encoder=v["train_text_encoder"],
        mixed_precision=v["precision"], gradient_checkpointing=v["grad_ckpt"], cache_latents=False if v["no_cache"] else None,
        save_every=v["save_every"], sample_every=v["sample_every"], sample_prompts=tuple(v["sample_prompts"]) or None,
        sample_seeds=seeds or None, save_precision=v["save_precision"], seed=v["seed"], trigger=v["trigger"], device=v["device"])
    if v.get("sweep"):
        from .sweep import run_sweep

        if v["work"]:
            raise TrainConfigError("--work names one folder; with --sweep each trial keeps its own (OUT_STEM-<trial>.work/)")
        rows = run_sweep(v["dataset"], v["base"], v["out"], cfg, v["sweep"], ray=v.get("ray"), num_gpus=v.get("gpus"), prior=v["prior"],
                         production=v["production"], rights_override=v["override"], base_config=v["config"], fresh=v["fresh"],
                         threads=v.get("threads"))
        for r in rows:
            held = f", held loss {r['eval_loss_start']:.4f} -> {r['eval_loss_end']:.4f}" if r["eval_loss_end"] is not None else ""
            console.print(f"{r['trial']}: {r['status']} at step {r['steps']}, {r['it_per_s']:.2f} it/s{held} -> {r['out']}")
        return
    if v.get("ray"):
        raise TrainConfigError("--ray runs the trials of a --sweep; one LoRA trains on this machine", hint='add --sweep "lr=1e-4,5e-5"')
    trainer = Trainer(v["dataset"], v["base"], v["out"], cfg, prior=v["prior"], work=v["work"], production=v["production"],
                      rights_override=v["override"], base_config=v["config"])
    with torch_threads(v.get("threads")):
        res = trainer.run(fresh=v["fresh"])
    if res.resumed_from is not None:
        console.print(f"resumed from step {res.resumed_from}")
    if res.status == "interrupted":
        console.print(f"[yellow]interrupted at step {res.step} of {res.steps}; checkpoint saved in {res.work}. "
                      f"Run the same command again to resume.[/]")
        raise typer.Exit(130)
    held = (f"; held loss {res.eval_loss_start:.4f} -> {res.eval_loss_end:.4f}" if res.eval_loss_start is not None and
            res.eval_loss_end is not None else "")
    console.print(f"LoRA: {res.out} ({res.step} steps, {res.it_per_s:.2f} it/s{held})")
    console.print(f"diffusers layout: {res.out.with_name(res.out.stem + '.diffusers')}; loss curve and samples: {res.work}")


@app.command("tiny-base")
def tiny_base_cmd(
    out: Path = typer.Argument(..., help="Folder for the model (diffusers layout; created)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """A tiny random-weight SD-1.x-shaped base model built in code (a few MB, no download), for
    trying the pipeline without SD 1.5 weights: training and stylizing run, the pictures are noise."""
    from machinima.errors import MachinimaError

    from .tiny import tiny_base

    if out.exists() and any(out.iterdir()):
        raise MachinimaError(f"{out} is not empty", hint="give a new folder")
    tiny_base(out, seed, text_encoder=True)
    console.print(f"wrote {out}: a random-weight base for trying the pipeline (it paints noise); "
                  f"`machinima lora train DATASET --base {out} ...`", highlight=False)
