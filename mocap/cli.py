"""``machinima mocap``: send, listen (live health, record into a take, relay to the stage),
stats of a recorded take, T-pose calibration, the shipped OSC profiles."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Motion capture: VMC/OSC, OSC profiles (Move.ai, Rokoko), Xsens MVN, BVH playback, synthetic performers.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _pairs(items: List[str] | None, what: str) -> dict[str, str]:
    from .errors import MocapError

    out = {}
    for it in items or []:
        k, sep, v = it.partition("=")
        if not sep or not k or not v:
            raise MocapError(f"{what} {it!r} must look like KEY=NAME")
        out[k] = v
    return out


def _sigterm_stops() -> None:
    """SIGTERM (a supervisor stopping us) ends like Ctrl-C: the take is finalised, not left open."""
    import signal

    def _stop(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, _stop)
    except ValueError:  # not the main thread (tests driving the CLI in-process)
        pass


def _no_target() -> str:
    """Why ``send`` has no default target: VMC's default port is the stage's own input, so a
    rehearsal or a "does my BVH read?" send with no target became a live performer on a running
    stage (issue 26). The one-line refusal names that port and what to pass instead."""
    from machinima.vmc import DEFAULT_PORT

    return (f"say where to send: --vmc HOST:PORT, --xsens HOST:PORT or --osc HOST:PORT; there is no default, because 127.0.0.1:{DEFAULT_PORT} "
            f"is the stage's VMC input (`machinima server --udp vmc:{DEFAULT_PORT}`) and what arrives there becomes a live performer")


@app.command()
def send(
    synthetic: int = typer.Option(0, "--synthetic", help="Number of synthetic performers (default 1 when no --bvh)."),
    motion: str = typer.Option("mix", help="idle | walk | wave | mix (performer k gets motion k mod 3)."),
    bvh: Optional[Path] = typer.Option(None, "--bvh", help="Play a BVH file as a live performer."),
    loop: bool = typer.Option(True, "--loop/--no-loop", help="Loop the BVH."),
    start: float = typer.Option(0.0, "--start", help="Start offset into the BVH, seconds."),
    bone_map: Optional[str] = typer.Option(None, "--bone-map", help="BVH: shipped bone map (mixamo, humanik, biovision, cmu, rokoko) or a .toml file; default: chosen by joint names."),
    units: str = typer.Option("auto", "--units", help="BVH file units: cm, m, mm, in, or auto (from the rest pose's height)."),
    vmc: Optional[str] = typer.Option(None, "--vmc", help="Send VMC to HOST:PORT or PORT (a stage's `--udp vmc:39539` input, a `mocap listen --vmc`). "
                                      "No default: what reaches a stage's input becomes a live performer there."),
    xsens: Optional[str] = typer.Option(None, "--xsens", help="Send Xsens MVN (MXTP02) to HOST:PORT instead (default port 9763)."),
    osc_target: Optional[str] = typer.Option(None, "--osc", help="Send plain-profile OSC (one message per bone) to HOST:PORT instead."),
    fps: float = typer.Option(120.0, "--fps"),
    seconds: Optional[float] = typer.Option(None, "--seconds", help="Stop after this long (default: until Ctrl-C)."),
    seed: int = typer.Option(0, "--seed", help="Synthetic performer k uses seed + k."),
    name: Optional[str] = typer.Option(None, "--name", help="Performer name: the BVH performer's (default: the file's name); "
                                       "synthetic performers are NAME-1, NAME-2... (default: synth)."),
    blendshapes: bool = typer.Option(False, "--blendshapes", help="VMC: also send blink / mouth blendshapes."),
) -> None:
    """Send performers over real UDP (the demo, the stage and the load tests use this)."""
    from . import sender
    from .errors import MocapError
    from .synthetic import SyntheticPerformer, synthetic_blendshapes

    chosen = [x for x in (vmc, xsens, osc_target) if x]
    if len(chosen) > 1:
        raise MocapError("choose one of --vmc, --xsens, --osc")
    if not chosen:
        raise MocapError(_no_target())
    if synthetic < 0:
        raise MocapError("--synthetic must be >= 0")
    protocol, target = ("xsens", sender.parse_target(xsens, 9763)) if xsens else ("osc", sender.parse_target(osc_target, 9000)) if osc_target else ("vmc", sender.parse_target(vmc or "", 39539))
    performers: list[sender.Performer] = []
    if bvh is not None:
        from .bvhsource import BVHPlayback

        from machinima.cli import print_bvh_report

        pb = BVHPlayback(bvh, loop=loop, start_s=start, bone_map=bone_map, units=units)
        print_bvh_report(pb.performer, info_console=err)
        performers.append(sender.Performer(name or bvh.stem, pb.pose_at))
    n = synthetic if (synthetic or bvh is not None) else 1
    for k in range(n):
        sp = SyntheticPerformer(motion=motion, seed=seed + k, index=k, fps=fps, seconds=seconds)
        blend = (lambda t, s=seed + k: synthetic_blendshapes(t, s)) if blendshapes else None
        performers.append(sender.Performer(f"{name or 'synth'}-{k + 1}", sp.pose_at, blend, sp.world_at))
    what = ", ".join(p.name for p in performers)
    err.print(f"sending {len(performers)} performer(s) ({what}) as {protocol} to {target[0]}:{target[1]} at {fps:g} fps" + (f" for {seconds:g} s" if seconds else " (Ctrl-C stops)"))
    _sigterm_stops()
    try:
        stats = sender.send(performers, target, fps=fps, seconds=seconds, protocol=protocol)
    except KeyboardInterrupt:
        err.print("stopped")
        return
    console.print(json.dumps({"frames": stats.frames, "datagrams": stats.datagrams, "bytes": stats.bytes, "late_ticks": stats.late_ticks, "seconds": round(stats.seconds, 3)}))


def _health_table(summary: list[dict], ingest) -> Table:
    t = Table(title="mocap sources", expand=False)
    for col in ("source", "performers", "rate Hz", "loss %", "transit above min p50/p99 ms", "read late p99 ms", "last seen s", "frames", "rejected"):
        t.add_column(col)
    for s in summary:
        lat = "-" if s["transit_ms_p50"] is None else f"{s['transit_ms_p50']:.1f} / {s['transit_ms_p99']:.1f}"
        behind = "-" if s["behind_ms_p99"] is None else f"{s['behind_ms_p99']:.1f}"
        loss = "unknown" if s["loss_pct"] is None else f"{s['loss_pct']:.2f}"
        rej = ", ".join(f"{k} {v}" for k, v in sorted(s["rejects"].items())) or "-"
        last = "-" if s["last_seen_s"] is None else f"{s['last_seen_s']:.1f}"
        t.add_row(s["source"], ", ".join(s["performers"]) or "-", f"{s['rate_hz']:.0f}", loss, lat, behind, last, str(s["frames"]), rej)
    if ingest.writer is not None:
        t.caption = f"recording {ingest.writer.take.id}: {ingest.recorded} frames, {ingest.writer.acknowledged} samples on disk"
    return t


def _smooth_bones(items: List[str]) -> dict[str, dict[str, float]] | None:
    """``--smooth-bone NAME=MIN_CUTOFF,BETA`` (a bone or a group: body, fingers) -> settings."""
    from .errors import MocapError
    from .smoothing import DEFAULT_BONE_SMOOTHING

    if not items:
        return None
    out = {k: dict(v) for k, v in DEFAULT_BONE_SMOOTHING.items()}
    for it in items:
        name, sep, vals = it.partition("=")
        try:
            mc, beta = (float(x) for x in vals.split(","))
        except ValueError:
            raise MocapError(f"--smooth-bone {it!r} must look like NAME=MIN_CUTOFF,BETA (e.g. fingers=0.5,2)") from None
        if not sep or not name:
            raise MocapError(f"--smooth-bone {it!r} must look like NAME=MIN_CUTOFF,BETA (e.g. fingers=0.5,2)")
        out[name] = {"min_cutoff": mc, "beta": beta}
    return out


@app.command()
def listen(
    vmc: Optional[int] = typer.Option(None, "--vmc", help="Listen for VMC on this UDP port (e.g. 39539)."),
    xsens: Optional[int] = typer.Option(None, "--xsens", help="Listen for Xsens MVN on this UDP port (e.g. 9763)."),
    osc_port: Optional[int] = typer.Option(None, "--osc", help="Listen for generic OSC on this UDP port (with --profile)."),
    profile: str = typer.Option("plain", "--profile", help="OSC mapping profile: a shipped name (plain, rokoko, moveai) or a .toml file."),
    host: str = typer.Option("0.0.0.0", "--host"),
    record: Optional[Path] = typer.Option(None, "--record", help="Record into a new take in this takes root."),
    production: Optional[str] = typer.Option(None, "--production"),
    scene: str = typer.Option("1", "--scene"),
    shot: str = typer.Option("A", "--shot"),
    take_fps: float = typer.Option(60.0, "--take-fps", help="The take's frame rate (timecode, export)."),
    seconds: Optional[float] = typer.Option(None, "--seconds", help="Stop after this long (default: Ctrl-C)."),
    delay_ms: float = typer.Option(0.0, "--delay-ms", help="Jitter buffer delay."),
    max_gap_ms: float = typer.Option(100.0, "--max-gap-ms", help="Interpolate live output over gaps up to this long."),
    smooth: bool = typer.Option(False, "--smooth", help="One-Euro filter on the live output (the take keeps raw frames)."),
    min_cutoff: float = typer.Option(1.0, "--min-cutoff", help="One-Euro min cutoff (Hz) of the body bones."),
    beta: float = typer.Option(0.5, "--beta", help="One-Euro beta of the body bones."),
    smooth_bone: List[str] = typer.Option([], "--smooth-bone", help="Per bone or group (body, fingers): NAME=MIN_CUTOFF,BETA. Defaults: Hips=2,0.3 fingers=0.5,2."),
    calibration: List[Path] = typer.Option([], "--calibration", help="Calibration file(s) from `machinima mocap calibrate`."),
    performer: List[str] = typer.Option([], "--performer", help="Name a sender: HOST:PORT=NAME (VMC) or CHARACTER=NAME (Xsens)."),
    server: Optional[str] = typer.Option(None, "--server", help="Relay frames to the stage server, e.g. ws://127.0.0.1:8765/stage."),
    token: Optional[str] = typer.Option(None, "--token", help="Performer token for --server."),
    json_out: bool = typer.Option(False, "--json", help="No live table; print the final health as JSON."),
) -> None:
    """Listen to several sources at once, show per-source health live, optionally record and relay."""
    import asyncio

    from .errors import MocapError
    from .listener import Ingest, serve
    from .retarget import Calibration
    from .smoothing import bone_settings

    if not any(p is not None for p in (vmc, xsens, osc_port)):
        raise MocapError("nothing to listen to", hint="give --vmc PORT, --xsens PORT and/or --osc PORT")
    if server and not token:
        raise MocapError("--server needs --token (a performer token from `machinima server token`)")
    names = _pairs(performer, "--performer")
    cals = {c.performer: c for c in (Calibration.load(p) for p in calibration)}
    smoothing = None
    if smooth or smooth_bone:
        smoothing = {"min_cutoff": min_cutoff, "beta": beta}
        bones = _smooth_bones(smooth_bone)
        if bones is not None:
            try:
                bone_settings(min_cutoff, beta, bones)
            except ValueError as exc:
                raise MocapError(f"--smooth-bone: {exc}") from None
            smoothing["bones"] = bones
    ingest = Ingest(delay_ms=delay_ms, max_gap_ms=max_gap_ms, smoothing=smoothing, calibrations=cals)
    bindings = []
    from .sources import get_source

    if vmc is not None:
        ingest.add_source(get_source("vmc")("vmc", performers=names))
        bindings.append(("vmc", host, vmc))
    if xsens is not None:
        ingest.add_source(get_source("xsens")("xsens", performers=names))
        bindings.append(("xsens", host, xsens))
    if osc_port is not None:
        ingest.add_source(get_source("osc")("osc", profile=profile))
        bindings.append(("osc", host, osc_port))
    take = None
    if record is not None:
        from machinima.config import load_config
        from machinima.take import Take
        from machinima.takewriter import TakeWriter

        take = Take.create(record, production=production or load_config().production, scene=scene, shot=shot, fps=take_fps,
                           notes=[f"mocap listen: {', '.join(f'{n}:{p}' for n, _, p in bindings)}"])
        ingest.writer = TakeWriter(take)
        err.print(f"recording into {take.path}")

    async def run() -> list[dict]:
        relay = None
        if server:
            from .relay import StageRelay

            relay = StageRelay(server, token or "")
            await relay.start()
            ingest.on_frame = relay.offer
        try:
            if json_out:
                return await serve(ingest, bindings, seconds=seconds)
            from rich.live import Live

            with Live(_health_table(ingest.summary(), ingest), console=err, refresh_per_second=4) as live:
                return await serve(ingest, bindings, seconds=seconds, on_interval=lambda: live.update(_health_table(ingest.summary(), ingest)))
        finally:
            if relay is not None:
                await relay.close()

    summary: list[dict] = []
    status = "complete"
    _sigterm_stops()
    try:
        summary = asyncio.run(run())
    except KeyboardInterrupt:
        ingest.finish()
        summary = ingest.summary()
    except Exception:
        status = "failed"
        raise
    finally:
        if ingest.writer is not None:
            ingest.end_take(status, summary or ingest.summary())
            err.print(f"take {take.id}: {ingest.recorded} frames recorded" + (f" (recording error: {ingest.record_error})" if ingest.record_error else ""))
    if json_out:
        console.print(json.dumps({"sources": summary, "recorded_frames": ingest.recorded, "take": take.id if take else None}))
    if take is not None and ingest.recorded == 0:  # an empty take is not a recording: a script must not carry on with it
        err.print(f"[red]error[/]: take {take.id} recorded no frames: nothing arrived on {', '.join(f'{n} {p}' for n, _, p in bindings)} "
                  "(is the sender running, and sending to this port?)")
        raise typer.Exit(1)


@app.command()
def stats(
    take: str = typer.Argument(..., help="A take folder or id."),
    root: Optional[Path] = typer.Option(None, "--root"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Per-performer figures of a recorded take (frames, rate, gaps) and the health recorded with it."""
    from machinima.cli import resolve_take
    from machinima.take import Take

    from .takestats import take_stats

    t = Take.open(resolve_take(take, root))
    st = take_stats(t)
    if json_out:
        console.print(json.dumps(st))
        return
    tab = Table(title=f"{st['take']} ({st['fps']} fps, {st['status']})")
    for col in ("performer", "frames", "seconds", "rate Hz", "gaps", "longest gap ms", "blendshapes"):
        tab.add_column(col)
    for p in st["performers"]:
        tab.add_row(p["name"], str(p["frames"]), f"{p['seconds']:.2f}", f"{p['rate_hz']:.1f}", str(p["gaps"]), f"{p['longest_gap_ms']:.1f}", str(p["blend_frames"]))
    console.print(tab)
    for s in st["sources"]:
        rej = ", ".join(f"{k} {v}" for k, v in sorted(s.get("rejects", {}).items())) or "none"
        loss = "unknown (no sender clock or counter)" if s.get("loss_pct") is None else f"{s['loss_pct']:.2f} %"
        console.print(f"source {s['source']}: {s['frames']} frames, loss {loss}, rejected: {rej}")


@app.command()
def calibrate(
    vmc: Optional[int] = typer.Option(None, "--vmc"),
    xsens: Optional[int] = typer.Option(None, "--xsens"),
    osc_port: Optional[int] = typer.Option(None, "--osc"),
    profile: str = typer.Option("plain", "--profile"),
    host: str = typer.Option("0.0.0.0", "--host"),
    performer: Optional[str] = typer.Option(None, "--performer", help="Which performer (default: the first one heard)."),
    seconds: float = typer.Option(1.0, "--seconds", help="Average this long of T-pose."),
    wait: float = typer.Option(10.0, "--wait", help="Give up when nothing arrives for this long."),
    out: Path = typer.Option(..., "--out", help="Calibration file to write (JSON)."),
) -> None:
    """Capture the performer's current pose as the T-pose rest (stand in a T-pose first)."""
    from .calibrate import capture_calibration

    cal = capture_calibration(vmc=vmc, xsens=xsens, osc=osc_port, profile=profile, host=host, performer=performer, seconds=seconds, wait=wait)
    cal.save(out)
    console.print(f"calibrated {cal.performer}: wrote {out}")


@app.command()
def profiles() -> None:
    """List the shipped OSC mapping profiles."""
    from .oscmap import load_profile, shipped_profiles

    for n in shipped_profiles():
        p = load_profile(n)
        console.print(f"[bold]{n}[/]: {p.description}")
