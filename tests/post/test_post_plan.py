"""``machinima post run``: a three-step plan (composite -> archive -> deliver) on the real steps,
stopped by a real SIGINT half-way through the archive step, resumes redoing nothing finished."""

from __future__ import annotations

import json
import os
import signal

import pytest

from machinima.postplan import PlanError, StepContext, deliver, load_plan, run_plan
from machinima.poststep import Interrupted
from plan_helpers import composite_archive_steps, kinds


@pytest.fixture()
def demo(tmp_path):
    from composite.demo_scene import make_demo

    take, plate, pos = make_demo(tmp_path, width=128, height=72, frames=10)
    plan = tmp_path / "shot.toml"
    plan.write_text(f'''name = "t"
take = "{take}"
[[step]]
id = "deliver"
kind = "deliver"
from = "@archive"
''' + composite_archive_steps(plate, pos))  # deliver first: the plan orders steps by their inputs
    return take, plan


def _ledger_frames(step_dir):
    return [json.loads(line)["frame"] for line in (step_dir / "ledger.jsonl").read_text().splitlines()]


def test_plan_resumes_after_ctrl_c_redoing_nothing_finished(demo, monkeypatch):
    import composite.pipeline
    from stylize.archive import ArchiveLook

    take, plan = demo
    assert [s.id for s in load_plan(plan).order] == ["comp", "archive", "deliver"]
    real = ArchiveLook.process
    seen: list[int] = []

    def ctrl_c_at_4(self, batch):
        seen.extend(batch)
        if 4 in batch:
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C: the step finishes the frame in hand, then stops
        return real(self, batch)

    monkeypatch.setattr(ArchiveLook, "process", ctrl_c_at_4)
    # step by step: the Ctrl-C lands in the archive with the composite finished (a Ctrl-C while a
    # streamed archive and its composite both run: tests/post/test_plan_streaming.py)
    with pytest.raises(Interrupted, match="stopped in step 'archive'"):
        run_plan(plan, progress=False, kinds=kinds(), stream=False)
    state = json.loads((take / "post" / "plan-t.json").read_text())["steps"]
    assert state["comp"]["state"] == "done" and state["archive"]["state"] == "interrupted" and "deliver" not in state
    first = _ledger_frames(take / "post" / "archive")
    assert 4 in first and len(first) < 10
    comp_lines = (take / "post" / "comp" / "ledger.jsonl").read_text()

    # the rerun: the composite is not called at all, the archive does only the frames it lacked
    calls = []
    monkeypatch.setattr(composite.pipeline, "run_composite", lambda *a, **k: calls.append(1))
    seen.clear()
    monkeypatch.setattr(ArchiveLook, "process", lambda self, batch: (seen.extend(batch), real(self, batch))[1])
    rep = run_plan(plan, progress=False, kinds=kinds(), stream=False)
    assert rep.skipped == ["comp"] and rep.ran == ["archive", "deliver"] and calls == []
    assert not set(seen) & set(first) and sorted(set(seen) | set(first)) == list(range(10))
    assert sorted(_ledger_frames(take / "post" / "archive")) == list(range(10))  # each frame written once
    assert (take / "post" / "comp" / "ledger.jsonl").read_text() == comp_lines
    movie = rep.outputs["deliver"]
    assert movie.suffix == ".mp4" and movie.stat().st_size > 0
    import av

    with av.open(str(movie)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 10
    # a third run does nothing; a changed archive setting redoes archive and deliver only
    assert run_plan(plan, progress=False, kinds=kinds()).ran == []
    plan.write_text(plan.read_text().replace('preset = "vhs-1994"', 'preset = "vhs-1994"\nseed = 3'))
    assert run_plan(plan, progress=False, kinds=kinds()).ran == ["archive", "deliver"]


def test_plan_errors_are_one_line(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text('[[step]]\nid = "a"\nkind = "archive"\nfrom = "@b"\n')
    with pytest.raises(PlanError, match="reads @b, which no step is called"):
        load_plan(p)
    p.write_text('[[step]]\nid = "a"\nkind = "x"\nafter = ["b"]\n[[step]]\nid = "b"\nkind = "x"\nafter = ["a"]\n')
    with pytest.raises(PlanError, match="cycle"):
        load_plan(p)
    p.write_text('take = "."\n[[step]]\nid = "a"\nkind = "nope"\n')
    (tmp_path / "take.json").write_text("{}")
    with pytest.raises(PlanError, match="unknown step kind"):
        run_plan(p, kinds={"deliver": deliver})
    ctx = StepContext(tmp_path, "d", {"form": "@x"}, tmp_path)
    with pytest.raises(PlanError, match="unknown setting"):
        deliver(ctx)
