"""The guides run as written (issue 26): each command block of README.md and docs/*.md runs in
order in a fresh project folder outside the repository (see guide_runner.py). A block the doc
marks `guide: skip REASON` is reported as skipped with that reason (`pytest -rs`); everything
else must exit as the doc says, print no traceback and leave the files the doc says it makes."""

from __future__ import annotations

import pytest

from guide_runner import Block, GuideRun, GuideSyntaxError, guides, parse

BLOCKS: list[Block] = [b for doc in guides() for b in parse(doc)]
LAST = {b.doc: b.id for b in BLOCKS}


@pytest.fixture(scope="module")
def runs():
    """One GuideRun per guide, opened at its first block, closed after its last (and at the end
    of the module, whatever happened)."""
    open_runs: dict[str, GuideRun] = {}
    failed: set[str] = set()
    yield open_runs, failed
    for run in open_runs.values():
        run.close()


def test_the_guides_have_blocks_to_run():
    ran = [b for b in BLOCKS if not b.skip]
    assert len(BLOCKS) >= 30 and len(ran) >= 0.75 * len(BLOCKS), f"{len(ran)} of {len(BLOCKS)} blocks run"


@pytest.mark.slow  # a block that renders or records takes 10-45 s; all of them 5-6 min on the loaded 2-core machine
@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_guide_block(runs, block: Block):
    open_runs, failed = runs
    try:
        if block.skip:
            pytest.skip(f"{block.id}: {block.skip}")
        if block.doc in failed:
            pytest.skip(f"{block.id}: an earlier block of {block.doc} failed")
        run = open_runs.get(block.doc) or open_runs.setdefault(block.doc, GuideRun(block.doc))
        result = run.run(block)
        problems = run.problems(result)
        if problems:
            failed.add(block.doc)
            pytest.fail(f"{block.id} ({result.seconds:.1f} s): {'; '.join(problems)}\n--- block ---\n{block.text}\n"
                        f"--- stdout (end) ---\n{result.out[-3000:]}\n--- stderr (end) ---\n{result.err[-3000:]}", pytrace=False)
    finally:
        if LAST[block.doc] == block.id and block.doc in open_runs:
            open_runs.pop(block.doc).close()


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
