"""``machinima lipsync ...``: analyse dialogue into mouth animation, drive avatars live over
VMC, re-sync live-action mouths."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

app = typer.Typer(help="Lip sync: speech -> mouth shapes for avatars (takes, live VMC, Blender) and live-action re-sync.",
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


@app.command()
def analyze(
    audio: Path = typer.Argument(..., help="WAV/FLAC/MP3 or a video with an audio track."),
    text: Optional[Path] = typer.Option(None, "--text", help="Dialogue text file: aligned mode (better timing)."),
    fps: str = typer.Option("24", help="Frame rate of the output (the take's, when --take is given)."),
    take: Optional[str] = typer.Option(None, "--take", help="Write the mouth stream into this take."),
    performer: Optional[str] = typer.Option(None, "--performer", help="Performer the mouth belongs to (with --take)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the Rhubarb TSV/JSON (default: beside the audio)."),
    pron: List[str] = typer.Option([], "--pron", help="Extra pronunciation WORD='AH D AH' (repeatable)."),
) -> None:
    """Audio -> Rhubarb shapes (TSV + JSON), VRM A/I/U/E/O weights, and a take stream."""
    from .analyze import lipsync_audio, write_rhubarb_json, write_rhubarb_tsv, write_to_take
    from .audio import load_audio

    a = load_audio(audio)
    dialogue = text.read_text(encoding="utf-8") if text else None
    take_path = None
    if take:
        from machinima.cli import resolve_take
        from machinima.take import Take

        take_path = resolve_take(take)
        fps = Take.open(take_path).manifest.fps
        if not performer:
            raise typer.BadParameter("--performer is needed with --take")
    track = lipsync_audio(a, fps, dialogue, _prons(pron))
    folder = out or audio.parent
    tsv = write_rhubarb_tsv(folder / f"{audio.stem}.mouth.tsv", track.cues)
    js = write_rhubarb_json(folder / f"{audio.stem}.mouth.json", track.cues, sound_file=str(audio), duration=track.duration)
    for n in track.notes:
        console.print(f"[yellow]note[/]: {n}")
    console.print(f"{track.mode}: {len(track.cues)} mouth cues over {track.duration:.2f} s -> {tsv}, {js}")
    if take_path:
        stream = write_to_take(take_path, performer, track)
        console.print(f"wrote {stream} into {take_path.name}")


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

    import numpy as np

    from .audio import load_audio
    from .live import LiveLipSync, load_templates, realtime_chunks, run_live

    host, _, port = vmc.rpartition(":")
    live_ = LiveLipSync(load_templates(calibration) if calibration else None)
    if str(input) == "-":
        def chunks():
            while True:
                b = sys.stdin.buffer.read(320)
                if not b:
                    return
                yield np.frombuffer(b[: len(b) // 2 * 2], "<i2").astype(np.float32) / 32768
        src = chunks()
    else:
        src = realtime_chunks(load_audio(input).samples)
    sent = run_live(src, host or "127.0.0.1", int(port), live_)
    lat = np.array(live_.latencies_ms or [0.0])
    console.print(f"sent {sent} VMC messages; latency p50 {np.percentile(lat, 50):.2f} ms, p95 {np.percentile(lat, 95):.2f} ms")


@app.command()
def video(
    clip: Path = typer.Argument(..., help="The live-action clip."),
    audio: Path = typer.Option(..., "--audio", help="The dialogue to sync to."),
    subject: List[str] = typer.Option([], "--subject", help="Whose face (a rights record with scope lip_sync)."),
    text: Optional[Path] = typer.Option(None, "--text"),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Wav2Lip weights (file or folder); else the mouth warp."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output step folder (default: <clip>-lipsync/)."),
    production: Optional[str] = typer.Option(None, help="Production (default: machinima.toml)."),
    rights_override: Optional[str] = typer.Option(None, "--rights-override", help="Proceed without a record, with this reason (recorded in provenance)."),
) -> None:
    """Re-sync a clip's mouth to a dialogue track (resumable; frames + mp4 with audio)."""
    from machinima.config import load_config

    from .video import resync_video

    rep = resync_video(clip, audio, out or clip.with_name(f"{clip.stem}-lipsync"), text=text.read_text() if text else None,
                       weights=weights, production=production or load_config().production, subjects=list(subject),
                       override=rights_override)
    if rep.no_face:
        console.print(f"[yellow]note[/]: no face found on {len(rep.no_face)} frame(s), passed through: {rep.no_face[:10]}")
    console.print(f"{rep.engine}: {rep.done} frames re-synced, {rep.skipped} already done -> {rep.mp4}")
