"""``machinima bridge``: play takes into engines, relay the live stage, take cameras/events in.

    machinima bridge play TAKE --vmc HOST:PORT [--vrchat HOST:9000] [--plugin HOST:8770]
                               [--mapping FILE] [--loop] [--from TC --to TC] [--speed 0.5]
                               [--record-into TAKES_ROOT | --server URL --token T] [--osc-in PORT]
    machinima bridge live --server URL --token T --vmc HOST:PORT ... [--rate 60]
    machinima bridge listen (--record-into TAKES_ROOT | --server URL --token T) [--osc-in PORT] [--plugin HOST:PORT]
    machinima bridge check MAPPING [--take TAKE]
    machinima bridge targets

While ``play`` runs, keys steer it (space pause/play, left/right seek 1 s, [ ] speed, q quit);
when stdin is not a terminal it reads the same commands as lines (pause, play, seek TC, speed X,
quit). See docs/engine_bridge.md.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

app = typer.Typer(help="Engine bridge: VMC / VRChat OSC / plugin websocket out, cameras and events in.", no_args_is_help=True)
console = Console(stderr=True)

VmcOpt = typer.Option([], "--vmc", help="VMC receiver HOST:PORT (repeat for more performers; NAME=HOST:PORT picks the performer).")
VrcOpt = typer.Option(None, "--vrchat", help="VRChat OSC input HOST:PORT (usually 127.0.0.1:9000); drives the first performer or NAME=HOST:PORT.")
PluginOpt = typer.Option(None, "--plugin", help="Serve the plugin websocket protocol on HOST:PORT (e.g. 127.0.0.1:8770).")
MappingOpt = typer.Option(None, "--mapping", help="TOML mapping file (several engines, performer -> avatar, bones).")
RecordOpt = typer.Option(None, "--record-into", help="Takes root: cameras/events from engines go into a new take there.")
ServerOpt = typer.Option(None, "--server", help="Stage server URL, e.g. ws://127.0.0.1:8765/stage.")
TokenOpt = typer.Option(None, "--token", envvar="MACHINIMA_STAGE_TOKEN", help="Engine token for the stage server (or MACHINIMA_STAGE_TOKEN).")
OscInOpt = typer.Option(None, "--osc-in", help="Listen for /machinima/camera and /machinima/event OSC on this UDP port.")
ForceOpt = typer.Option(False, "--force", help="Send even to a target that is a running stage's own mocap input (it comes back as a performer).")


def _no_feedback(m: Any, server: Optional[str], force: bool) -> None:
    """Refuse (or with --force, warn about) a target that is a running stage's own UDP input."""
    from .feedback import refuse_feedback

    for line in refuse_feedback(m.udp_targets(), server, force=force):
        console.print(f"[yellow]warning:[/] {line}: it will come back as a live performer (--force)", highlight=False)


def _mapping(performers: list[str], mapping: Optional[Path], vmc: list[str], vrchat: Optional[str], plugin: Optional[str], rate: Optional[float]):
    from .mapping import load_mapping, mapping_from_flags

    if mapping:
        if vmc or vrchat or plugin:
            from .errors import MappingError

            raise MappingError("give either --mapping or --vmc/--vrchat/--plugin, not both")
        return load_mapping(mapping)
    return mapping_from_flags(performers, vmc=list(vmc), vrchat=vrchat, plugin=plugin, rate=rate)


def _sink(record_into: Optional[Path], server: Optional[str], token: Optional[str], fps: Any, notes: list[str]):
    from .errors import BridgeError

    if record_into and server:
        raise BridgeError("give either --record-into or --server for cameras/events, not both")
    if record_into:
        from .ingest import TakeSink

        return TakeSink(record_into, fps=fps, notes=notes)
    if server:
        if not token:
            raise BridgeError("--server needs --token (an engine token from the stage server)", hint="or set MACHINIMA_STAGE_TOKEN")
        from .ingest import StageSink

        return StageSink(server, token)
    return None


def _print_report(rep: Any, extra: dict[str, Any] | None = None) -> None:
    j = rep.jitter
    console.print(
        f"sent {getattr(rep, 'frames_sent', getattr(rep, 'ticks', 0))} frames; schedule deviation mean {j.get('mean_ms', 0)} ms, "
        f"p99 {j.get('p99_ms', 0)} ms, max {j.get('max_ms', 0)} ms, skipped {j.get('skipped', 0)}" + (" (real-time thread)" if j.get("realtime") else "")
    )
    for name, st in rep.targets.items():
        line = f"  {name}: {st['packets']} packets, {st['messages']} messages, {st['errors']} errors"
        if st["errors"]:
            line += f" (last: {st['last_error']})"
        console.print(line, style="yellow" if st["errors"] else None, highlight=False)
    for k, v in (extra or {}).items():
        console.print(f"  {k}: {v}", highlight=False)


def _keys(player: Any) -> None:
    """Single keys on a terminal, command lines otherwise (both call ``run_keyboard``)."""
    from .player import run_keyboard

    stream = sys.stdin
    if stream is None or stream.closed:
        return
    if stream.isatty():
        try:
            import termios
            import tty
        except ImportError:
            run_keyboard(player, stream, echo=lambda s: console.print(s, highlight=False))
            return
        fd = stream.fileno()
        old = termios.tcgetattr(fd)
        tty.setcbreak(fd)

        def restore() -> None:
            termios.tcsetattr(fd, termios.TCSADRAIN, old)

        player._restore_tty = restore

        def keys():
            while True:
                raw = os.read(fd, 1)
                if not raw:  # the terminal went away
                    return
                ch = raw.decode(errors="ignore")
                if ch == "\x1b":
                    seq = os.read(fd, 2).decode(errors="ignore")
                    ch = {"[C": "+", "[D": "-"}.get(seq, "")
                word = {" ": "toggle", "q": "quit", "+": "+", "-": "-", "[": "slower", "]": "faster", "p": "pause"}.get(ch)
                if word:
                    yield word + "\n"

        console.print("keys: space pause/play, left/right seek 1 s, [ ] speed, q quit", style="dim")
        run_keyboard(player, keys(), echo=lambda s: console.print(s, highlight=False))
    else:
        run_keyboard(player, stream, echo=lambda s: console.print(s, highlight=False))


@app.command("play")
def play(
    take: str = typer.Argument(..., help="Take folder, or take id in the takes root."),
    vmc: list[str] = VmcOpt,
    vrchat: Optional[str] = VrcOpt,
    plugin: Optional[str] = PluginOpt,
    mapping: Optional[Path] = MappingOpt,
    loop: bool = typer.Option(False, "--loop", help="Start again at --from after --to."),
    from_tc: Optional[str] = typer.Option(None, "--from", help="Start timecode (take timecode, HH:MM:SS:FF)."),
    to_tc: Optional[str] = typer.Option(None, "--to", help="End timecode."),
    speed: float = typer.Option(1.0, "--speed", help="Playback speed factor (0.5 = half speed)."),
    rate: Optional[float] = typer.Option(None, "--rate", help="Send rate in Hz (default: the take's fps)."),
    record_into: Optional[Path] = RecordOpt,
    server: Optional[str] = ServerOpt,
    token: Optional[str] = TokenOpt,
    osc_in: Optional[int] = OscInOpt,
    keys: bool = typer.Option(True, "--keys/--no-keys", help="Steer playback from the keyboard / stdin."),
    root: Optional[Path] = typer.Option(None, "--root", help="Takes root for a take id."),
    force: bool = ForceOpt,
) -> None:
    """Play a recorded take into engines in real time (drift-free schedule)."""
    from machinima.cli import resolve_take
    from machinima.take import Take

    from .ingest import OSCIngestListener
    from .player import Player

    path = resolve_take(take, root)
    src = Take.open(path)
    performers = src.store.performers()
    m = _mapping(performers, mapping, vmc, vrchat, plugin, rate)
    m.check_performers(performers, f"take {src.id}")
    _no_feedback(m, server, force)
    sink = _sink(record_into, server, token, src.manifest.fps, [f"engine cameras recorded while playing {src.id}"])
    listener = None
    player = None
    try:
        player = Player(path, m, loop=loop, from_tc=from_tc, to_tc=to_tc, speed=speed, rate=rate, sink=sink)
        if osc_in is not None:
            if sink is None:
                from .errors import BridgeError

                raise BridgeError("--osc-in needs --record-into or --server (where should cameras go?)")
            listener = OSCIngestListener(sink, port=osc_in).start()
        player.open_targets()
        if hasattr(sink, "follow_director"):
            sink.follow_director(player)  # stage events 'bridge.control' steer playback
        plugin_urls = [t.server.url for t in player.targets if t.kind == "plugin"]
        console.print(
            f"playing {src.id} ({player.frames.n} frames at {player.frames.fps} fps) into {', '.join(e.name for e in m.engines)}"
            + (f"; plugin server {plugin_urls[0]}" if plugin_urls else "")
            + (f"; OSC cameras/events on udp/{listener.port}" if listener else ""),
            highlight=False,
        )
        if keys:
            _keys(player)
        try:
            rep = player.run()
        except KeyboardInterrupt:
            rep = player.report
            console.print("interrupted", style="yellow")
    finally:
        if getattr(player, "_restore_tty", None):
            player._restore_tty()
        if listener:
            listener.stop()
        recorded = sink.close() if sink is not None else ""
    extra = {}
    if listener:
        extra["osc in"] = f"{listener.ingest.accepted} accepted, rejected {dict(listener.ingest.rejects) or 0}"
    if recorded:
        extra["recorded into"] = f"{recorded} ({dict(sink.counts)})"
    _print_report(rep, extra)


@app.command("live")
def live(
    server: str = typer.Option(..., "--server", help="Stage server URL, e.g. ws://127.0.0.1:8765/stage."),
    token: Optional[str] = TokenOpt,
    vmc: list[str] = VmcOpt,
    vrchat: Optional[str] = VrcOpt,
    plugin: Optional[str] = PluginOpt,
    mapping: Optional[Path] = MappingOpt,
    performer: list[str] = typer.Option([], "--performer", help="Performers to relay, in --vmc order (default: those on stage)."),
    rate: float = typer.Option(60.0, "--rate", help="Send rate in Hz."),
    osc_in: Optional[int] = OscInOpt,
    duration: Optional[float] = typer.Option(None, "--duration", help="Stop after this many seconds (default: until Ctrl-C)."),
    force: bool = ForceOpt,
) -> None:
    """Relay the live stage to engines; cameras/events from engines go back to the stage."""
    from .errors import BridgeError
    from .ingest import OSCIngestListener
    from .live import LiveRelay
    from .mapping import Mapping

    if not token:
        raise BridgeError("--server needs --token (an engine token from the stage server)", hint="or set MACHINIMA_STAGE_TOKEN")
    known = list(performer)
    m = _mapping(known, mapping, vmc, vrchat, plugin, rate) if (mapping or known) else Mapping([])
    relay = LiveRelay(server, token, m, rate=rate)
    relay.connect()  # subscribes to the mapping's performers, or to all when none are known yet
    try:
        if not m.engines:
            on_stage = [p.get("name") for p in relay._client.stage.get("performers", []) if isinstance(p, dict) and p.get("kind", "performer") == "performer"]
            if not on_stage:
                from .errors import PerformerMissingError

                raise PerformerMissingError("no performer is on the stage yet", hint="name them with --performer NAME (their avatars wait for their first frame) or give a --mapping file")
            relay.mapping = _mapping(on_stage, None, vmc, vrchat, plugin, rate)
        _no_feedback(relay.mapping, server, force)
    except BaseException:
        relay.close()
        raise
    listener = OSCIngestListener(relay, port=osc_in).start() if osc_in is not None else None
    console.print(f"relaying {server} into {', '.join(e.name for e in relay.mapping.engines)}", highlight=False)
    try:
        rep = relay.run(duration_s=duration)
    except KeyboardInterrupt:
        rep = relay.report
    finally:
        if listener:
            listener.stop()
    _print_report(rep, {"frames received": rep.frames_received, "blendshape frames received": rep.blend_frames_received, "forwarded": rep.forwarded, "not on stage at start": ", ".join(rep.missing) or "none"})


@app.command("listen")
def listen(
    record_into: Optional[Path] = RecordOpt,
    server: Optional[str] = ServerOpt,
    token: Optional[str] = TokenOpt,
    osc_in: Optional[int] = typer.Option(39540, "--osc-in", help="UDP port for /machinima/camera and /machinima/event."),
    plugin: Optional[str] = PluginOpt,
    fps: str = typer.Option("24", "--fps", help="Frame rate of the take recorded with --record-into."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Stop after this many seconds (default: until Ctrl-C)."),
) -> None:
    """Only take cameras and events in (OSC and/or plugin websocket) and record or forward them."""
    from .errors import BridgeError
    from .ingest import OSCIngestListener
    from .mapping import parse_address
    from .plugin_server import PluginServer

    sink = _sink(record_into, server, token, fps, ["engine cameras and events"])
    if sink is None:
        raise BridgeError("where should cameras and events go? give --record-into TAKES_ROOT or --server URL")
    listener = OSCIngestListener(sink, port=osc_in).start() if osc_in is not None else None
    ps = None
    if plugin:
        host, port = parse_address(plugin, 8770, "--plugin", listen=True)
        ps = PluginServer(host, port, sink=sink, info={"mode": "listen"}).start()
    console.print(f"listening: {'OSC udp/' + str(listener.port) if listener else ''} {'plugins ' + ps.url if ps else ''}", highlight=False)
    end = None if duration is None else time.monotonic() + duration
    try:
        while end is None or time.monotonic() < end:
            time.sleep(0.05)
    except KeyboardInterrupt:
        pass
    finally:
        if listener:
            listener.stop()
        if ps:
            ps.stop()
        recorded = sink.close()
    if listener:
        console.print(f"osc in: {listener.ingest.accepted} accepted, rejected {dict(listener.ingest.rejects) or 0}", highlight=False)
    if recorded:
        console.print(f"recorded into {recorded} ({dict(sink.counts)})", highlight=False)


@app.command("check")
def check(
    mapping: Path = typer.Argument(..., help="Mapping TOML file."),
    take: Optional[str] = typer.Option(None, "--take", help="Also check that the take has every performer."),
    root: Optional[Path] = typer.Option(None, "--root"),
) -> None:
    """Validate a mapping file (and a take against it)."""
    from .mapping import load_mapping

    m = load_mapping(mapping)
    if take:
        from machinima.cli import resolve_take
        from machinima.take import Take

        t = Take.open(resolve_take(take, root))
        m.check_performers(t.store.performers(), f"take {t.id}")
    for e in m.engines:
        avatars = ", ".join(f"{a.performer}->{a.avatar}" for a in e.avatars) or "all performers"
        console.print(f"{e.name}: {e.target} {e.host}:{e.port} {avatars}", highlight=False)
    console.print("mapping ok", style="green")


@app.command("targets")
def targets() -> None:
    """List the engine targets (built in and from plugins)."""
    from .targets import known_targets

    for name, t in sorted(known_targets().items()):
        console.print(f"{name}  {getattr(t, '__doc__', '') and t.__doc__.splitlines()[0] if isinstance(t, type) else t.value}", highlight=False)
