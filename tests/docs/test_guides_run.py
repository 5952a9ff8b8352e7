"""The guides run as written (issue 26): each command block of README.md and docs/*.md runs in
order in a fresh project folder outside the repository (see guide_runner.py). A block the doc
marks `guide: skip REASON` is reported as skipped with that reason (`pytest -rs`); everything
else must exit as the doc says, print no traceback and leave the files the doc says it makes."""

from __future__ import annotations

import pytest

from guide_runner import PORTS, Block, GuideRun, GuideSyntaxError, free_ports, guides, parse, rewrite_ports, run_guides

BLOCKS: list[Block] = [b for doc in guides() for b in parse(doc)]


@pytest.fixture(scope="module")
def outcomes(request):
    """Every selected guide run once, side by side (run_guides: each in its own folder with its
    own ports); the first block's test waits for all of them, the rest read their outcome.
    `-k faceswap.md` runs that guide alone (a guide runs whole: its blocks build on each other)."""
    docs = {item.callspec.params["block"].doc for item in request.session.items
            if hasattr(item, "callspec") and isinstance(item.callspec.params.get("block"), Block)}
    return run_guides([b for b in BLOCKS if b.doc in docs])


def test_the_guides_have_blocks_to_run():
    ran = [b for b in BLOCKS if not b.skip]
    assert len(BLOCKS) >= 30 and len(ran) >= 0.75 * len(BLOCKS), f"{len(ran)} of {len(BLOCKS)} blocks run"


@pytest.mark.slow  # a block that renders or trains takes 10-60 s; all guides side by side ~2-3 min on the 2-core machine (GUIDE_TIMES=f.json)
@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_guide_block(outcomes, block: Block):
    o = outcomes.get(block.id)
    if o is None:  # deselected while its guide ran
        pytest.skip(f"{block.id}: its guide ran without it")
    if o.status == "skipped":
        pytest.skip(o.message)
    if o.status == "failed":
        pytest.fail(o.message, pytrace=False)


def test_markers_are_checked(tmp_path, monkeypatch):
    """A misspelt marker is an error, not a block that silently runs (or silently skips)."""
    import guide_runner

    monkeypatch.setattr(guide_runner, "ROOT", tmp_path)
    doc = tmp_path / "g.md"
    doc.write_text("<!-- guide: skipp GPU -->\n```bash\ntrue\n```\n")
    with pytest.raises(GuideSyntaxError, match="skipp"):
        parse(doc)
    doc.write_text("<!-- guide: skip -->\n```bash\ntrue\n```\n")
    with pytest.raises(GuideSyntaxError, match="reason"):
        parse(doc)
    doc.write_text("<!-- guide: fails -->\n<!-- guide: makes a b -->\n\n```console\n$ ls \\\n  -a\nout\n$ false\n```\n")
    (block,) = parse(doc)
    assert block.fails and block.makes == ["a", "b"] and block.script() == "ls \\\n  -a\nfalse"


def test_the_runner_can_fail():
    """The runner sees a wrong exit, a missing file, a traceback, and stops a background server."""
    run = GuideRun("x.md")
    try:
        ok = run.run(Block("x.md", 1, "bash", "sleep 600 &\necho hi > made.txt"))
        assert run.problems(ok) == [] and (run.cwd / "made.txt").exists()
        assert run.problems(run.run(Block("x.md", 2, "bash", "true", makes=["nothing.txt"]))) == ["it did not make nothing.txt"]
        assert run.problems(run.run(Block("x.md", 3, "bash", "false\ntrue"))) == ["exit 1"]
        assert run.problems(run.run(Block("x.md", 4, "bash", "true", fails=True))) == ["the doc says it fails, and it exited 0"]
        tb = run.run(Block("x.md", 5, "bash", "python3 -c '1/0'", fails=True))
        assert "a traceback" in run.problems(tb)
        sleeper = run._groups[0].pid
    finally:
        run.close()
    import os

    with pytest.raises(ProcessLookupError):
        os.killpg(sleeper, 0)


def test_ports_are_rewritten_consistently():
    """Every documented port in a block becomes the guide's own; numbers that merely contain one
    stay as they are."""
    ports = dict(zip(PORTS, free_ports(len(PORTS))))
    assert len(set(ports.values())) == len(PORTS) and not set(ports.values()) & set(PORTS)
    text = ("machinima server --root takes --udp vmc:39539 &\nmachinima bridge live --server ws://127.0.0.1:8765/stage "
            "--vmc 127.0.0.1:39540 --vrchat 127.0.0.1:9000\nmachinima mocap listen --vmc 39541 --seconds 139539 --x 1.8765")
    out = rewrite_ports(text, ports)
    assert f"vmc:{ports[39539]} &" in out and f"ws://127.0.0.1:{ports[8765]}/stage" in out
    assert f"--vmc 127.0.0.1:{ports[39540]} --vrchat 127.0.0.1:{ports[9000]}" in out and f"--vmc {ports[39541]} " in out
    assert "--seconds 139539 --x 1.8765" in out


def test_a_guide_runs_while_the_documented_ports_are_taken():
    """A developer's stage holds 8765 and 39539: a guide that starts a stage on the documented
    ports (no --port: the default) still runs, on ports of its own, and talks to its own stage."""
    import socket

    held = []
    for kind, port in ((socket.SOCK_STREAM, 8765), (socket.SOCK_DGRAM, 39539)):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
            if kind == socket.SOCK_STREAM:
                s.listen()  # accepts connections and never answers: a guide that reached it would time out
            held.append(s)
        except OSError:  # someone else holds it already: the test is the same
            s.close()
    run = GuideRun("x.md")
    try:
        health = ("import json, sys, time, urllib.request\n"
                  "for _ in range(100):\n"
                  "    try:\n"
                  "        print(urllib.request.urlopen('http://127.0.0.1:8765/health', timeout=1).read().decode()); sys.exit(0)\n"
                  "    except OSError:\n"
                  "        time.sleep(0.2)\n"
                  "sys.exit(1)\n")
        (run.cwd / "health.py").write_text(rewrite_ports(health, run.ports))
        block = Block("x.md", 1, "bash", "machinima server --root takes --udp vmc:39539 > server.log 2>&1 &\npython health.py > health.json",
                      timeout=60)
        r = run.run(block)
        assert run.problems(r) == [], r.err + (run.cwd / "server.log").read_text()
        log = (run.cwd / "server.log").read_text()
        assert f"127.0.0.1:{run.ports[8765]}/stage" in log and str(run.ports[39539]) in (run.cwd / "health.json").read_text()
    finally:
        run.close()
        for s in held:
            s.close()
