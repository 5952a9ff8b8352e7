"""``machinima lipsync ...``: analyse dialogue into mouth animation, drive avatars live over
VMC, re-sync live-action mouths."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from machinima.distributed.cli import BareRayGroup

app = typer.Typer(cls=BareRayGroup, help="Lip sync: speech -> mouth shapes for avatars (takes, live VMC, Blender) and live-action re-sync.",
                  no_args_is_help=True)
console = Console()


def _prons(items: list[str]) -> dict[str, str]:
    out = {}
    for it in items or []:
        if "=" not in it:
            from .errors import TranscriptError

            raise TranscriptError(f"--pron {it!r} is not WORD='ARPABET PHONES'")
        w, p = it.split("=", 1)
        out[w.strip()] = p.strip()
    return out


MODES = ("auto", "aligned", "phone-loop", "mfcc")


@app.command()
def analyze(
    audio: Optional[Path] = typer.Argument(None, help="WAV/FLAC/MP3 or a video with an audio track; with --take: a file (copied into <take>/audio/), the name of one there, or nothing for its only one."),
    text: Optional[Path] = typer.Option(None, "--text", help="Dialogue text file: aligned mode (better timing)."),
    mode: str = typer.Option("auto", "--mode", help="auto (aligned with --text, else phone-loop), aligned, phone-loop, or mfcc (with --calibration)."),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="Vowel templates from `lipsync calibrate` (mfcc mode)."),
    fps: str = typer.Option("24", help="Frame rate of the output (the take's, when --take is given)."),
    take: Optional[str] = typer.Option(None, "--take", help="Write the mouth stream into this take (its audio/ keeps the dialogue)."),
    performer: Optional[str] = typer.Option(None, "--performer", help="Performer the mouth belongs to (one of the take's; with --take)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the Rhubarb TSV/JSON and viseme TSV (default: beside the audio file given, else here)."),
    pron: List[str] = typer.Option([], "--pron", help="Extra pronunciation WORD='AH D AH' (repeatable)."),
) -> None:
    """Audio -> Rhubarb shapes (TSV + JSON), Oculus visemes (TSV), VRM A/I/U/E/O weights, and a take stream."""
    from .analyze import lipsync_audio, require_performer, write_rhubarb_json, write_rhubarb_tsv, write_to_take, write_viseme_tsv
    from .audio import load_audio
    from .errors import LipSyncError

    # 1. check inputs
    if mode not in MODES:
        raise LipSyncError(f"--mode {mode!r} is not one of {', '.join(MODES)}")
    if mode == "aligned" and not text:
        raise LipSyncError("--mode aligned needs the dialogue: --text FILE")
    if mode == "mfcc" and not calibration:
        raise LipSyncError("--mode mfcc needs the speaker's vowel templates: --calibration FILE", hint="make them with `machinima lipsync calibrate`")
    take_path = None
    folder = out or (audio.parent if audio else Path.cwd())  # beside the file given, else here
    if take:
        from machinima.cli import resolve_take
        from machinima.take import Take
        from machinima.takeaudio import resolve_audio

        take_path = resolve_take(take)
        if not performer:
            raise LipSyncError("--performer is needed with --take")
        require_performer(take_path, performer)
        fps = str(Take.open(take_path).manifest.fps)
        audio = resolve_audio(take_path, audio)
    elif audio is None:
        raise LipSyncError("give the audio file (or --take TAKE to use the take's own audio)")
    # 2. analyse
    from .live import load_templates

    templates = load_templates(calibration) if mode == "mfcc" else None
    dialogue = text.read_text(encoding="utf-8") if text and mode in ("auto", "aligned") else None
    track = lipsync_audio(load_audio(audio), fps, dialogue, _prons(pron), templates=templates)
    # 3. write
    tsv = write_rhubarb_tsv(folder / f"{audio.stem}.mouth.tsv", track.cues)
    js = write_rhubarb_json(folder / f"{audio.stem}.mouth.json", track.cues, sound_file=str(audio), duration=track.duration)
    vis = write_viseme_tsv(folder / f"{audio.stem}.visemes.tsv", track.cues)
    for n in track.notes:
        console.print(f"[yellow]note[/]: {n}")
    console.print(f"{track.mode}: {len(track.cues)} mouth cues over {track.duration:.2f} s -> {tsv}, {js}, {vis}")
    if take_path:
        stream = write_to_take(take_path, performer, track)
        console.print(f"wrote {stream} into {take_path.name} (audio: audio/{audio.name})")


@app.command()
def calibrate(
    out: Path = typer.Option(..., "--out", help="Calibration file to write (JSON)."),
    a: Optional[Path] = typer.Option(None, "--a", help="Recording of the speaker saying 'ah'."),
    i: Optional[Path] = typer.Option(None, "--i", help="... 'ee'"),
    u: Optional[Path] = typer.Option(None, "--u", help="... 'oo'"),
    e: Optional[Path] = typer.Option(None, "--e", help="... 'eh'"),
    o: Optional[Path] = typer.Option(None, "--o", help="... 'oh'"),
    synthetic: bool = typer.Option(False, "--synthetic", help="Use espeak-ng's voice (for tests and demos)."),
) -> None:
    """MFCC vowel templates of one speaker, for live mode and languages without a model."""
    import tempfile

    from .audio import load_audio
    from .live import save_templates
    from .mfcc import VowelTemplates

    recs = {}
    if synthetic:
        from .truth import speak

        with tempfile.TemporaryDirectory() as tmp:
            for v, word in (("A", "ah"), ("I", "ee"), ("U", "ooh"), ("E", "eh"), ("O", "oh")):
                recs[v] = load_audio(speak(word, Path(tmp) / f"{v}.wav")).samples
    else:
        for v, p in (("A", a), ("I", i), ("U", u), ("E", e), ("O", o)):
            if p:
                recs[v] = load_audio(p).samples
    save_templates(out, VowelTemplates.calibrate(recs))
    console.print(f"calibrated {', '.join(recs)} -> {out}")


@app.command()
def live(
    vmc: str = typer.Option("127.0.0.1:39539", "--vmc", help="VMC receiver HOST:PORT (VSeeFace, Warudo, EVMC4U...)."),
    input: Path = typer.Option(..., "--input", help="Audio file played in real time, or '-' for raw s16le 16 kHz mono on stdin."),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="Vowel templates from `lipsync calibrate`."),
) -> None:
    """Drive an avatar's mouth live: VMC /VMC/Ext/Blend/Val A I U E O + Apply."""
    import sys

    from .audio import load_audio
    from .live import LiveLipSync, load_templates, pcm_chunks, realtime_chunks, run_live

    host, _, port = vmc.rpartition(":")
    if not port.isdigit():
        raise typer.BadParameter(f"--vmc {vmc!r} is not HOST:PORT")
    live_ = LiveLipSync(load_templates(calibration) if calibration else None)
    if str(input) == "-":
        src = pcm_chunks(sys.stdin.buffer)
        typer.echo(f"live: reading s16le 16 kHz mono from stdin -> VMC {host or '127.0.0.1'}:{port}", err=True)
    else:
        src = realtime_chunks(load_audio(input).samples)
    stats = run_live(src, host or "127.0.0.1", int(port), live_)
    console.print(f"sent {stats.sent} VMC messages ({stats.errors} send errors); chunk arrival -> datagram sent: "
                  f"p50 {stats.percentile(50):.2f} ms, p95 {stats.percentile(95):.2f} ms")


@app.command()
def video(
    take: str = typer.Argument(..., help="The take (id or folder): output goes to <take>/post/<step-id>/."),
    plate: Path = typer.Option(..., "--plate", help="The live-action plate: a video file or a folder of numbered frames."),
    audio: Optional[Path] = typer.Option(None, "--audio", help="The dialogue: a file (copied into <take>/audio/) or the name of one there; default: the take's only one."),
    subject: List[str] = typer.Option([], "--subject", help="Whose face (a rights record with scope lip_sync)."),
    text: Optional[Path] = typer.Option(None, "--text", help="Dialogue text file: aligned mode (better timing)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Wav2Lip weights (file or folder); else the mouth warp."),
    step_id: str = typer.Option("lipsync", "--step-id", help="Output folder under <take>/post/."),
    plate_fps: Optional[str] = typer.Option(None, "--plate-fps", help="Plate frame rate (default: the video's, or the take's for a folder)."),
    allow_no_face: bool = typer.Option(False, "--allow-no-face", help="Pass frames without a face through (listed) instead of stopping."),
    production: Optional[str] = typer.Option(None, help="Production (default: machinima.toml)."),
    rights_override: Optional[str] = typer.Option(None, "--rights-override", help="Proceed without a record, with this reason (recorded in provenance)."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]", help="Re-sync as chunks on a Ray cluster (bare --ray: RAY_ADDRESS, a running cluster, else a local one; or host:6379, local) (take and plate on storage every node sees)."),
    chunk: Optional[int] = typer.Option(None, "--chunk", min=1, help="With --ray: frames per task (default: measured, ~2 s of work a task, at least 2 tasks a worker)."),
) -> None:
    """Re-sync the mouth on a plate to the dialogue, as a take post step (resumable; frames + mp4 with audio)."""
    from machinima.cli import resolve_take
    from machinima.config import load_config

    from .video import resync_video

    if audio is not None and audio.is_dir():
        raise typer.BadParameter(f"--audio {audio} is a folder, not an audio file")
    rep = resync_video(resolve_take(take), plate, audio=audio, step_id=step_id, text=text.read_text(encoding="utf-8") if text else None,
                       weights=weights, production=production or load_config().production, subjects=list(subject),
                       override=rights_override, plate_fps=plate_fps, allow_no_face=allow_no_face, ray=ray, chunk_size=chunk)
    if rep.no_face:
        console.print(f"[yellow]note[/]: no face on {len(rep.no_face)} frame(s), passed through unchanged: {rep.no_face[:10]}")
    console.print(f"{rep.engine}: {rep.resynced} frames re-synced, {rep.skipped} already done -> {rep.mp4}")
