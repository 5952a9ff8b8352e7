"""``machinima dataset import|caption|report``: build, caption and check a micro-dataset."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(help="Micro-datasets: import images (folders, videos, takes), caption them, report coverage.", no_args_is_help=True)
console = Console()


@app.command("import")
def import_cmd(
    sources: list[Path] = typer.Argument(..., help="Image folders, video files, or takes (ids or folders: their passes)."),
    out: Path = typer.Option(..., "--out", "-o", help="The dataset folder (created if missing; imports add to it)."),
    trigger: Optional[str] = typer.Option(None, "--trigger", help="Trigger word stored with the dataset (for captions)."),
    rights_ids: list[str] = typer.Option([], "--rights", help="Rights record id(s) covering these images (repeat)."),
    tags: list[str] = typer.Option([], "--tag", help="Tag(s) for every imported image (repeat)."),
    every: float = typer.Option(1.0, "--every", help="Videos: one frame every N seconds."),
    scene: Optional[float] = typer.Option(None, "--scene", help="Videos: sample at scene changes instead (histogram distance 0..1, e.g. 0.3)."),
    pass_name: str = typer.Option("rgb", "--pass", help="Takes: which pass to import."),
    take_every: int = typer.Option(12, "--take-every", help="Takes: every Nth frame."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", help="Videos: stop after N sampled frames."),
    min_sharpness: float = typer.Option(40.0, "--min-sharpness", help="Refuse images blurrier than this (variance of the Laplacian at 256 px)."),
    dup_distance: int = typer.Option(6, "--dup-distance", help="Refuse near-duplicates within N bits of the 64-bit image hash (-1: off)."),
    no_filters: bool = typer.Option(False, "--no-filters", help="Keep every image (no blur, exposure or duplicate checks)."),
    max_side: int = typer.Option(1536, "--max-side", help="Downscale images whose longest side is larger."),
    crop: Optional[str] = typer.Option(None, "--crop", help="'face': keep a square around the face (box kept in the index); no face = skipped."),
    crop_margin: float = typer.Option(2.2, "--crop-margin", help="Face crop side = this x the face size."),
) -> None:
    """Import images into a dataset, filtering blurry, badly exposed and near-duplicate ones."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from .dataset import VIDEO_SUFFIXES, Filters, folder_candidates, import_images, open_dataset, take_candidates, video_candidates
    from .errors import ImportSourceError

    from machinima.cli import resolve_take

    # a path that exists is used as typed; anything else is a take id (a typo lists close ids)
    sources = [src if src.exists() else resolve_take(src) for src in sources]  # before the dataset is created
    filters = Filters(None, None, None, None, None) if no_filters else Filters(min_sharpness=min_sharpness,
                                                                               dup_distance=None if dup_distance < 0 else dup_distance)
    ds = open_dataset(out, create=True, trigger=trigger)
    try:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed} looked at"), console=console,
                      transient=True) as bar:
            for src in sources:
                task = bar.add_task(str(src), total=None)
                if src.is_dir() and (src / "take.json").exists():
                    cands = take_candidates(src, pass_name=pass_name, every=take_every)
                elif src.is_dir():
                    cands = folder_candidates(src)
                elif src.suffix.lower() in VIDEO_SUFFIXES:
                    cands = video_candidates(src, every_s=None if scene is not None else every, scene=scene, max_frames=max_frames)
                else:
                    raise ImportSourceError(f"{src} is not an image folder, a video ({', '.join(VIDEO_SUFFIXES)}) or a take folder")
                rep = import_images(ds, cands, filters=filters, rights=rights_ids, tags=tags, max_side=max_side, crop=crop,
                                    crop_margin=crop_margin, progress=lambda label, t=task: bar.update(t, advance=1, description=label))
                bar.remove_task(task)
                console.print(f"{src}: added {len(rep.added)}, skipped {len(rep.skipped)}")
                for what, why in rep.skipped:
                    console.print(f"  skipped {what}: {why}", highlight=False)
            console.print(f"{out}: {len(ds)} images")
            if not rights_ids:
                console.print("[yellow]no --rights given: training refuses items without a rights record (or pass an override reason)[/]")
    finally:
        ds.close()


@app.command("caption")
def caption_cmd(
    dataset: Path = typer.Argument(..., help="The dataset folder."),
    template: Optional[str] = typer.Option(None, "--template", help="Caption template: {trigger}, {caption} (from --model), {tags}."),
    trigger: Optional[str] = typer.Option(None, "--trigger", help="Trigger word (default: the dataset's)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Rewrite captions that exist."),
    model: Optional[Path] = typer.Option(None, "--model", help="Local transformers image-to-text model folder (never downloaded)."),
    show: bool = typer.Option(False, "--list", help="List every caption."),
    set_: list[str] = typer.Option([], "--set", help="ID=TEXT: set one item's caption (repeat)."),
    edit: bool = typer.Option(False, "--edit", help="Review and edit all captions in $EDITOR (one line each)."),
    sync: bool = typer.Option(False, "--sync", help="Copy side-car .txt edits back into the index."),
) -> None:
    """Write kohya side-car captions (images/NAME.txt) from a template; review and edit them."""
    from .dataset import DEFAULT_TEMPLATE, caption_dataset, load_captioner, open_dataset, read_caption, sync_captions, write_caption
    from .errors import DatasetError

    ds = open_dataset(dataset)
    try:
        if sync:
            console.print(f"{sync_captions(ds)} caption(s) synced from side-car files")
        for s in set_:
            iid, _, text = s.partition("=")
            if not iid.strip().isdigit() or not text.strip():
                raise DatasetError(f"--set {s!r} is not ID=TEXT", hint="e.g. --set 3='photo of ohwx, smiling'")
            write_caption(ds, ds.get(int(iid)), text)
        if edit:
            _edit(ds)
        do_template = template is not None or model is not None or not (show or set_ or edit or sync)
        if do_template:
            captioner = load_captioner(model) if model else None
            tpl = template or str(ds.info.get("template") or (DEFAULT_TEMPLATE if captioner else "photo of {trigger}"))
            done = caption_dataset(ds, template=tpl, trigger=trigger, overwrite=overwrite, captioner=captioner)
            console.print(f"{len(done)} caption(s) written" + ("" if overwrite else " (existing ones kept; --overwrite rewrites them)"))
        if show:
            for it in ds.items():
                cap = read_caption(ds, it)
                console.print(f"{it.id:>5}  {it.file:<24} {cap if cap is not None else '[red](no caption)[/]'}", highlight=False)
    finally:
        ds.close()


def _edit(ds) -> None:
    from .dataset import read_caption, write_caption

    items = list(ds.items())
    lines = ["# one line per image: ID<TAB>FILE<TAB>CAPTION; edit the captions, save and quit"]
    lines += [f"{it.id}\t{it.file}\t{read_caption(ds, it) or ''}" for it in items]
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False, encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
        name = fh.name
    try:
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        subprocess.run([*editor.split(), name], check=False)
        changed = 0
        by_id = {it.id: it for it in items}
        for line in Path(name).read_text(encoding="utf-8").splitlines():
            if line.startswith("#") or not line.strip():
                continue
            iid, _, rest = line.partition("\t")
            _, _, cap = rest.partition("\t")
            it = by_id.get(int(iid)) if iid.strip().isdigit() else None
            if it is not None and cap.strip() and cap.strip() != (read_caption(ds, it) or ""):
                write_caption(ds, it, cap)
                changed += 1
        console.print(f"{changed} caption(s) changed")
    finally:
        os.unlink(name)


@app.command("report")
def report_cmd(
    dataset: Path = typer.Argument(..., help="The dataset (or faceset) folder."),
    compare: Optional[Path] = typer.Option(None, "--compare", help="A destination set: show where DATASET does not cover it."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report PNG (default DATASET/coverage.png)."),
    check: bool = typer.Option(False, "--check", help="Also list problems: missing/corrupt images, captions without images, images without captions."),
) -> None:
    """Coverage report: contact sheet + histograms of head pose, expression, light, sharpness, resolution."""
    from machinima.collections import Collection, CollectionError

    from .coverage import analyze_collection, compare_sets, write_report
    from .errors import DatasetError

    def open_any(p: Path):
        try:
            return Collection.open(p)
        except CollectionError as exc:
            raise DatasetError(str(exc.args[0]), hint="make a dataset with `machinima dataset import SOURCE --out DATASET`"
                               if "not a collection" in str(exc.args[0]) else exc.hint) from None

    src = open_any(dataset)
    try:
        if check:
            from .dataset import training_entries

            for p in src.verify(check_hash=True):
                console.print(f"[red]{p}[/]", highlight=False)
            if src.kind == "dataset":
                try:
                    training_entries(src)
                    console.print("ready for training")
                except DatasetError as exc:
                    for p in exc.problems:
                        console.print(f"[red]{p}[/]", highlight=False)
        a = analyze_collection(src)
        b = gaps = None
        if compare:
            dst = open_any(compare)
            try:
                b = analyze_collection(dst)
            finally:
                dst.close()
            gaps = compare_sets(a, b)
        path = write_report(out or (dataset / "coverage.png"), a, b, gaps, title=dataset.name)
        console.print(f"report: {path}")
        console.print(f"{len(a.rows)} images, {sum(r.face for r in a.rows)} with a face")
        if gaps is not None:
            src_faces, dst_faces = sum(r.face for r in a.rows), sum(r.face for r in b.rows)
            console.print(f"destination: {len(b.rows)} images, {dst_faces} with a face")
            if not src_faces or not dst_faces:  # nothing was compared: no verdict either way
                raise DatasetError(f"nothing to compare: {'the source' if not src_faces else 'the destination'} has no measured face "
                                   f"({src_faces} source and {dst_faces} destination faces found)",
                                   hint="check that the images show a face the face mesh finds (frontal enough, not tiny)")
            if gaps.uncovered:
                console.print(f"[yellow]{len(gaps.uncovered)} of the {dst_faces} destination faces are not covered:[/]")
                for line in gaps.summary():
                    console.print(f"  {line}", highlight=False)
            else:
                console.print(f"the source covers all {dst_faces} destination faces" +
                              (f" ({len(b.rows) - dst_faces} destination images without a face were not compared)" if len(b.rows) > dst_faces else ""))
    finally:
        src.close()
