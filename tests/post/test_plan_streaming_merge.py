"""``post run`` chunk by chunk after a face-swap merge: the merge declares the frames it will
write, so an archive reading ``@merge`` starts on them while the merge runs, byte for byte the
frames of a step-by-step run; a composite on ``plate = "@merge"`` says in the plan's log why it
waits for the whole plate."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from machinima.postplan import run_plan
from machinima.poststep import Interrupted


def _kinds():
    import composite.plan
    import faceswap.plan
    import stylize.plan

    return {"faceswap-merge": faceswap.plan.run, "archive": stylize.plan.run_archive, "composite": composite.plan.run}


@pytest.fixture()
def merge_scene(tmp_path, monkeypatch):
    """A moving face clip (matplotlib's grace_hopper.jpg), a take to write into (twice: one per
    run), the rights store in the test's project, each merged frame >= 0.15 s."""
    import cv2
    import matplotlib.cbook as cbook
    from PIL import Image

    import faceswap.merge as fm
    from composite.demo_scene import make_demo
    from machinima.provenance import record_decision

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faceswap"))
    from faceswap_testdata import moving_clip, write_clip

    monkeypatch.setenv("MACHINIMA_PROJECT", str(tmp_path))
    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        grace = np.ascontiguousarray(np.asarray(Image.open(fh).convert("RGB")))
    write_clip(tmp_path / "clip", moving_clip(cv2.resize(grace, (192, 224), interpolation=cv2.INTER_AREA), 8, shift=(2.0, 1.0), zoom=0.01))
    take, _, _ = make_demo(tmp_path, width=64, height=36, frames=4)
    record_decision(take, False, "pixel-exact plan test: no watermark (its manifest id is random per frame)")
    other = Path(shutil.copytree(take, tmp_path / "copy" / take.name))

    real = fm.swap_functions
    hooks: list = []

    def slow(*a, **k):
        process, frame_inputs = real(*a, **k)

        class Slow:
            def __call__(self, batch):
                for f in batch:
                    for h in hooks:
                        h(f)
                time.sleep(0.15 * len(batch))
                return process(batch)

            def close(self):
                process.close()

        return Slow(), frame_inputs

    monkeypatch.setattr(fm, "swap_functions", slow)
    return tmp_path, take, other, hooks


def _plan(root: Path, take: Path, name: str, reader: str) -> Path:
    p = root / f"{name}.toml"
    p.write_text(f'''name = "{name}"
take = "{take}"
[[step]]
id = "merge"
kind = "faceswap-merge"
target = "{root / 'clip'}"
engine = "none"
batch = 1
production = "film"
override = "test material"
{reader}''')
    return p


ARCHIVE = '[[step]]\nid = "archive"\nkind = "archive"\nfrom = "@merge"\npreset = "vhs-1994"\n'


def _frames(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def test_archive_starts_on_the_merges_frames_and_matches_the_step_by_step_run(merge_scene):
    root, take, other, _ = merge_scene
    rep = run_plan(_plan(root, take, "m", ARCHIVE), progress=False, kinds=_kinds())
    assert rep.ran == ["merge", "archive"]
    chunks = [json.loads(line) for line in (take / "post" / "plan-m.chunks.jsonl").read_text().splitlines()]
    starts = [c for c in chunks if c["step"] == "archive" and c["event"] == "start"]
    assert starts, "the archive never started before the merge ended"
    merge_last = (take / "post" / "merge" / "ledger.jsonl").stat().st_mtime
    assert starts[0]["t"] < merge_last - 0.3, (starts[0]["t"], merge_last)
    assert 0 < json.loads((take / "post" / "plan-m.json").read_text())["steps"]["archive"]["streamed"] <= 8

    run_plan(_plan(root, other, "m", ARCHIVE), progress=False, kinds=_kinds(), stream=False)
    a, b = _frames(take / "post" / "archive" / "frames"), _frames(other / "post" / "archive" / "frames")
    assert len(a) == 8 and a == b  # byte for byte
    assert _frames(take / "post" / "merge" / "rgb") == _frames(other / "post" / "merge" / "rgb")
    lines = [json.loads(x)["frame"] for x in (take / "post" / "archive" / "ledger.jsonl").read_text().splitlines()]
    assert sorted(lines) == list(range(8))  # each frame written once


def test_ctrl_c_while_merge_and_archive_run_resumes_redoing_nothing(merge_scene):
    root, take, other, hooks = merge_scene
    fired: list[int] = []

    def ctrl_c_at_5(f):
        if f == 5 and not fired:
            fired.append(f)
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C while the archive works on earlier frames

    hooks.append(ctrl_c_at_5)
    plan = _plan(root, take, "i", ARCHIVE)
    with pytest.raises(Interrupted, match="stopped in step 'merge'"):
        run_plan(plan, progress=False, kinds=_kinds())
    led = lambda step: [json.loads(x)["frame"] for x in (take / "post" / step / "ledger.jsonl").read_text().splitlines()]  # noqa: E731
    merge_first, arch_first = led("merge"), led("archive")
    assert 5 in merge_first and len(merge_first) < 8 and 0 < len(arch_first) <= len(merge_first)
    rep = run_plan(plan, progress=False, kinds=_kinds())
    assert rep.ran == ["merge", "archive"]
    assert sorted(led("merge")) == list(range(8)) and sorted(led("archive")) == list(range(8))  # no frame written twice
    run_plan(_plan(root, other, "i", ARCHIVE), progress=False, kinds=_kinds(), stream=False)
    assert _frames(take / "post" / "archive" / "frames") == _frames(other / "post" / "archive" / "frames")


def test_a_step_that_needs_its_whole_input_says_why():
    import composite.plan
    import stylize.plan
    from machinima.planstream import spec_of

    from machinima.postplan import deliver

    for fn in (composite.plan.run, stylize.plan.run_stylize, deliver):
        spec = spec_of(fn)
        assert spec is not None and spec.window is None and spec.whole


def test_composite_on_the_merges_plate_waits_for_it_and_the_log_says_why(tmp_path):
    """The runner's decision, without running either step: fake kinds with the real declarations."""
    import composite.plan
    import faceswap.plan
    from machinima.planstream import streams
    from machinima.postplan import StepOutput

    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "take.json").write_text("{}")
    calls: list[str] = []

    def kind(real, name):
        spec = real.plan_stream

        @streams(step_dir=spec.step_dir, output=spec.output, frames=(lambda ctx: [0, 1]) if spec.frames else None,
                 window=spec.window, whole=spec.whole)
        def run(ctx):
            calls.append(name)
            out = ctx.take / "post" / ctx.step_id / spec.output
            out.mkdir(parents=True, exist_ok=True)
            return StepOutput(out, 2)
        return run

    p = tmp_path / "p.toml"
    p.write_text(f'take = "{tmp_path / "t"}"\n[[step]]\nid = "merge"\nkind = "m"\n[[step]]\nid = "comp"\nkind = "c"\nplate = "@merge"\n')
    log: list[str] = []
    run_plan(p, progress=False, kinds={"m": kind(faceswap.plan.run, "merge"), "c": kind(composite.plan.run, "comp")}, log=log.append)
    assert calls == ["merge", "comp"]
    said = [s for s in log if s.startswith("comp: waits for merge's whole output")]
    assert said and "last" in said[0]
