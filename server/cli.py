"""``machinima server``: run the stage, issue tokens.

    machinima server [--host 127.0.0.1 --port 8765 --root TAKES --tick 60 --ssl-cert C --ssl-key K]
                     [--udp vmc:39539 --udp xsens:9763]   (local mocap sources, see server.udp)
    machinima server token --role director --name dana [--ttl 12h] [--root TAKES]

Settings come from flags, else ``[server]`` in machinima.toml (host, port, tick), else defaults.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import List, Optional

import typer

from .errors import StageError

app = typer.Typer(help="The stage: multiplayer server, tokens, director console.", invoke_without_command=True, no_args_is_help=False, add_completion=False)


@app.callback()
def run(
    ctx: typer.Context,
    host: Optional[str] = typer.Option(None, help="Interface to listen on (default 127.0.0.1; 0.0.0.0 for the whole network)."),
    port: Optional[int] = typer.Option(None, help="Port (default 8765; 0 = any free port)."),
    root: Optional[Path] = typer.Option(None, "--root", help="Takes root (default from machinima.toml)."),
    tick: Optional[float] = typer.Option(None, help="Fan-out rate in Hz (default 60)."),
    fps: Optional[str] = typer.Option(None, help="Take frame rate for timecode (default from machinima.toml)."),
    ssl_cert: Optional[Path] = typer.Option(None, "--ssl-cert", help="TLS certificate (PEM) for wss:// and https://."),
    ssl_key: Optional[Path] = typer.Option(None, "--ssl-key", help="TLS private key (PEM)."),
    max_size: int = typer.Option(256 * 1024, help="Largest message in bytes."),
    max_rate: float = typer.Option(2000.0, help="Messages a second per client (a mocap relay sends one per performer per frame)."),
    ping_interval: float = typer.Option(20.0, help="Seconds between WebSocket pings."),
    ping_timeout: float = typer.Option(20.0, help="Seconds to wait for a pong before closing."),
    udp: Optional[List[str]] = typer.Option(None, "--udp", help="Attach a local mocap source: KIND:PORT or KIND:HOST:PORT (vmc:39539, xsens:9763, osc:9000). Repeatable."),
    workers: int = typer.Option(0, help="Live fan-out worker processes for read-only viewers (0 = none; see docs/server.md)."),
    live_port: int = typer.Option(0, help="Port of the live viewers' endpoint /live when --workers > 0 (0 = any free port)."),
    log_level: str = typer.Option("info", help="debug, info, warning, error."),
) -> None:
    """Run the stage server (when no sub-command is given)."""
    if ctx.invoked_subcommand is not None:
        return
    from machinima.config import load_config

    from .stage import Limits, StageServer

    cfg = load_config()
    sec = cfg.section("server")
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    if log_level.lower() != "debug":
        # websockets' own "connection open", "server listening" lines repeat what the stage says
        # ("dana joined as director", the addresses printed below): one line per event
        logging.getLogger("websockets").setLevel(logging.WARNING)
    ssl_ctx = None
    if ssl_cert or ssl_key:
        import ssl

        if not (ssl_cert and ssl_key):
            raise StageError("TLS needs both --ssl-cert and --ssl-key")
        for p in (ssl_cert, ssl_key):
            if not p.exists():
                raise StageError(f"{p} does not exist", hint="give the PEM files of your certificate, or terminate TLS at a reverse proxy")
        ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_ctx.load_cert_chain(ssl_cert, ssl_key)
    server = StageServer(
        root or cfg.takes_root,
        host=host or sec.get("host", "127.0.0.1"),
        port=int(port if port is not None else sec.get("port", 8765)),
        tick=float(tick or sec.get("tick", 60)),
        fps=fps or cfg.fps,
        production=cfg.production,
        limits=Limits(max_size=max_size, max_rate=max_rate, burst=max_rate, ping_interval=ping_interval, ping_timeout=ping_timeout),
        ssl=ssl_ctx,
        workers=workers,
        live_port=live_port,
    )

    async def main() -> None:
        await server.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(server.stop()))
        scheme = "wss" if ssl_ctx else "ws"
        print(f"listening on {scheme}://{server.host}:{server.port}/stage", flush=True)
        for spec in udp or []:
            h, p = await server.attach_udp(spec)
            print(f"listening for {spec.split(':')[0]} mocap on udp {h}:{p}", flush=True)
        if workers:
            print(f"live viewers on ws://{server.host}:{server.live_port}/live ({workers} workers)", flush=True)
        print(f"director console: {'https' if ssl_ctx else 'http'}://{server.host}:{server.port}/  (token: machinima server token --role director --name NAME --root {server.root})", flush=True)
        await server.serve_forever()

    asyncio.run(main())


@app.command("token")
def token(
    role: str = typer.Option(..., help="director, performer, engine or observer."),
    name: str = typer.Option(..., help="Who the token is for (shown on the stage)."),
    ttl: str = typer.Option("12h", help="Lifetime: 90s, 15m, 12h, 7d."),
    root: Optional[Path] = typer.Option(None, "--root", help="Takes root holding the stage secret."),
) -> None:
    """Print a signed token for one role and name."""
    from machinima.config import load_config

    from .auth import issue_token

    print(issue_token(root or load_config().takes_root, role, name, ttl))
