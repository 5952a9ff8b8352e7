"""The docs' numbers come from the code (issue 26): limits, intervals, defaults and file names are
imported here and each documented phrase is built from them, so changing a value without its
docs (or the docs without the code) fails. The stage's own limits are held the same way in
tests/server/test_server_docs.py; this file covers the rest of the guides."""

from __future__ import annotations

import inspect
import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _default(fn, name: str):
    return inspect.signature(fn).parameters[name].default


def _option_default(app, command: str | None, option: str):
    """The default of ``--option`` of a Typer command, as the CLI would use it."""
    import typer

    cmd = typer.main.get_command(app)
    if command:
        cmd = cmd.commands[command]
    (param,) = [p for p in cmd.params if option in p.opts]
    return param.default


def _phrases() -> list[tuple[str, str]]:
    from machinima import protocol as P
    from machinima.catalog import CATALOG
    from machinima.examples import LICENCE
    from machinima.identity import DLIB, THRESHOLDS
    from machinima.take import LOCK, MANIFEST, RESERVE, STREAMS, TRASH
    from machinima.takewriter import TakeWriter
    from server.auth import SECRET_FILE
    from server.cli import app as server_app
    from server.conn import Limits
    from server.stage import StageServer

    lim = Limits()
    commit_ms = round(_default(TakeWriter.__init__, "commit_interval") * 1000)
    tick = _default(StageServer.__init__, "tick")
    # the loss bound a person is told: a commit every interval, checked once a tick, to 10 ms
    bound_ms = math.ceil((commit_ms + 1000 / tick) / 10) * 10
    port = _default(StageServer.__init__, "port")
    max_rate = _option_default(server_app, None, "--max-rate")
    return [
        # intervals: one take writer for the stage, the listener and the bridge
        ("director.md", f"recording loses at most the last {bound_ms} ms"),
        ("server.md", f"the stage commits every {commit_ms} ms, checked on every tick, so commits are never more\nthan {bound_ms} ms apart"),
        ("server.md", f"at most the last {bound_ms} ms are lost"),
        ("mocap.md", f"committed every {commit_ms} ms by the clock"),
        ("engine_bridge.md", f"commits every {commit_ms} ms on a timer thread"),
        ("takes.md", f"committed every {commit_ms} ms by the clock"),
        # limits and defaults
        ("server.md", f"`--max-rate` (messages a second per\nclient, default {max_rate:g}"),
        ("server.md", f"`--ping-interval` / `--ping-timeout` (seconds, {lim.ping_interval:g} / {lim.ping_timeout:g})"),
        ("protocol.md", f"1009 | message larger than the server's `max_size` ({lim.max_size} bytes default)"),
        ("protocol.md", f"POSE: {P.N_BONES} bones; CAMERA: {P.CAMERA_WIDTH} channels; BUNDLE: number of frames; BLEND: blendshapes (1..{P.MAX_BLEND})"),
        ("protocol.md", f"POSE: {P.N_BONES} x {P.POSE_WIDTH} values"),
        ("rights.md", f"same person needs < {THRESHOLDS[DLIB]:g}"),
        ("server.md", f"ws://127.0.0.1:{port}/stage"),
        ("director.md", f"Open `http://127.0.0.1:{port}/`"),
        # file names
        ("takes.md", f"  {MANIFEST}         manifest"),
        ("takes.md", f"  {STREAMS}    time-stamped records"),
        ("takes.md", f"  {LOCK}             flock held by the single writer"),
        ("takes.md", f"  {RESERVE}          "),
        ("takes.md", f"<takes-root>/{CATALOG}      index"),
        ("takes.md", f"<takes-root>/{TRASH}/"),
        ("server.md", f"the stage secret `<takes-root>/{SECRET_FILE}`"),
        ("protocol.md", f"(`<takes-root>/{SECRET_FILE}`"),
        ("artist.md", f"(MIT, its licence is copied\nbeside it)"),
        ("artist.md", "makes walk.bvh walk" + LICENCE),
    ]


@pytest.mark.parametrize("doc, phrase", _phrases(), ids=lambda v: v[:50] if isinstance(v, str) else None)
def test_documented_number_is_the_code(doc, phrase):
    text = (DOCS / doc).read_text(encoding="utf-8")
    flat = re.sub(r"\s+", " ", text)
    assert phrase in text or re.sub(r"\s+", " ", phrase) in flat, f"docs/{doc} does not say {phrase!r} (the code's value)"


def test_the_numbers_are_not_written_twice_differently():
    """The commit interval is one number across the guides (it was 80 ms in one page and 100 ms
    in another): every 'commit(s/ted) every N ms' says the take writer's interval."""
    from machinima.takewriter import TakeWriter

    commit_ms = round(_default(TakeWriter.__init__, "commit_interval") * 1000)
    for doc in sorted(DOCS.glob("*.md")):
        if doc.name == "design-changes.md":
            continue
        for m in re.finditer(r"commit(?:s|ted)? every (\d+) ms", re.sub(r"\s+", " ", doc.read_text(encoding="utf-8"))):
            assert int(m.group(1)) == commit_ms, f"docs/{doc.name}: {m.group(0)!r}, the take writer commits every {commit_ms} ms"


def test_the_shipped_examples_the_guides_copy_exist():
    """Every `machinima examples copy NAME` in a guide names a file in a spoke's examples folder
    (read from pyproject's entry points, so a reinstall is not needed to check it)."""
    import tomllib

    from machinima.examples import folder_examples

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    names = set()
    for pkg in cfg["project"]["entry-points"]["machinima.examples"].values():
        names |= set(folder_examples(ROOT / pkg.replace(".", "/")))
    named = {m for doc in [ROOT / "README.md", *DOCS.glob("*.md")]
             for m in re.findall(r"machinima examples copy ([\w.-]+) ", doc.read_text(encoding="utf-8"))}
    assert named and named - {"NAME"} <= names, f"guides copy {sorted(named - names - {'NAME'})}, which nothing ships"
