"""The stage's documented numbers come from the code: each phrase is built from the value the
code uses, so changing a limit without its docs (or the docs without the code) fails here."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from machinima import protocol as P
from machinima.store import StreamStore
from machinima.take import RESERVE_BYTES
from machinima.takewriter import TakeWriter

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _default(fn, name: str):
    return inspect.signature(fn).parameters[name].default


def _phrases() -> list[tuple[str, str]]:
    from server.conn import Limits
    from server.stage import StageServer

    lim = Limits()
    stage_ms = round(_default(StageServer.__init__, "flush_interval") * 1000)
    store_ms = round(_default(StreamStore.__init__, "flush_interval") * 1000)
    writer_ms = round(_default(TakeWriter.__init__, "commit_interval") * 1000)
    return [
        ("server.md", f"`--max-size` (bytes per message, default {lim.max_size})"),
        ("protocol.md", f"`max_size` ({lim.max_size} bytes default)"),
        ("server.md", f"the stage commits every {stage_ms} ms"),
        ("takes.md", f"committed every {writer_ms} ms by the clock"),
        ("server.md", f"(the store's own default, used by other writers, is {store_ms} ms)"),
        ("server.md", f"(`viewer_buffer`, {lim.viewer_buffer // 1024} KiB of unsent bytes)"),
        ("server.md", f"{lim.slow_close_s:g} s (`slow_close_s`) ago is closed with {P.CLOSE_SLOW}"),
        ("protocol.md", f"`slow_close_s` ({lim.slow_close_s:g} s)"),
        ("server.md", f"at most {lim.max_streams} performers and cameras (`max_streams`)"),
        ("server.md", f"No hello within {lim.hello_timeout:g} s: {P.CLOSE_NO_HELLO}"),
        ("server.md", f"at most {P.MAX_LINE} characters for\n  names and slate fields and {P.MAX_TEXT} for free text; JSON nests at most {P.MAX_DEPTH} levels"),
        ("protocol.md", f"at most {P.MAX_LINE} characters"),
        ("protocol.md", f"at most {P.MAX_TEXT} characters"),
        ("protocol.md", f"JSON nested at most {P.MAX_DEPTH} levels deep"),
        ("server.md", f"Each take sets {RESERVE_BYTES // 1024} KiB aside"),
        ("takes.md", f".reserve          {RESERVE_BYTES // 1024} KiB set aside"),
    ]


@pytest.mark.parametrize("doc, phrase", _phrases(), ids=[f"{d}:{p[:40]}" for d, p in _phrases()])
def test_documented_number_is_the_code_s(doc, phrase):
    text = (DOCS / doc).read_text(encoding="utf-8")
    assert " ".join(phrase.split()) in " ".join(text.split()), f"{doc} should say: {phrase}"


def test_the_cli_defaults_are_the_limits():
    import typer

    from server.cli import run as server_run
    from server.conn import Limits

    lim = Limits()
    params = {name: p.default for name, p in inspect.signature(server_run).parameters.items()}
    for flag, value in (("max_size", lim.max_size), ("max_rate", lim.max_rate), ("ping_interval", lim.ping_interval), ("ping_timeout", lim.ping_timeout)):
        opt = params[flag]
        assert isinstance(opt, typer.models.OptionInfo) and opt.default == value, flag
