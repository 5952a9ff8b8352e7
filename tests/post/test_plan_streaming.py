"""``post run`` chunk by chunk: in a composite -> archive plan the archive starts on the
composite's frames while the composite still runs (the plan's chunk log and the composite's
ledger say when), the frames are those of a step-by-step run byte for byte, and a Ctrl-C
half-way through both resumes redoing no finished frame."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from machinima.planstream import ready_windows
from machinima.postplan import run_plan
from machinima.poststep import Interrupted
from plan_helpers import composite_archive_steps, kinds


def _plan(root: Path, take: Path, plate: Path, pos, name: str) -> Path:
    p = root / f"{name}.toml"
    p.write_text(f'''name = "{name}"
take = "{take}"
''' + composite_archive_steps(plate, pos))
    return p


@pytest.fixture()
def two_takes(tmp_path):
    """The same demo take twice (one per run), disclosure off: frames compared byte for byte."""
    from composite.demo_scene import make_demo
    from machinima.provenance import record_decision

    take, plate, pos = make_demo(tmp_path, width=128, height=72, frames=12)
    record_decision(take, False, "pixel-exact plan test: no watermark (its manifest id is random per frame)")
    other = Path(shutil.copytree(take, tmp_path / "copy" / take.name))
    return tmp_path, take, other, plate, pos


@pytest.fixture()
def slow_composite(monkeypatch):
    """Each composite frame takes >= 0.15 s (the real work at this size takes less): the
    archive has time to start before the composite ends. ``hook(frame)`` runs before each."""
    import composite.pipeline as cp

    real = cp.CompositePipeline.prepare
    hooks: list = []

    def prepare(self, *a, **k):
        p = real(self, *a, **k)
        inner = p.process

        def process(batch):
            for f in batch:
                for h in hooks:
                    h(f)
            time.sleep(0.15 * len(batch))
            return inner(batch)

        p.process = process
        return p

    monkeypatch.setattr(cp.CompositePipeline, "prepare", prepare)
    return hooks


def _frames(step_dir: Path, sub: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((step_dir / sub).iterdir()) if p.is_file()}


def _ledger_frames(step_dir: Path) -> list[int]:
    return [json.loads(line)["frame"] for line in (step_dir / "ledger.jsonl").read_text().splitlines()]


def test_archive_starts_on_composite_chunks_and_matches_the_step_by_step_run(two_takes, slow_composite):
    root, take, other, plate, pos = two_takes
    rep = run_plan(_plan(root, take, plate, pos, "s"), progress=False, kinds=kinds())
    assert rep.ran == ["comp", "archive"]
    chunks = [json.loads(line) for line in (take / "post" / "plan-s.chunks.jsonl").read_text().splitlines()]
    starts = [c for c in chunks if c["step"] == "archive" and c["event"] == "start"]
    assert starts, "the archive never started before the composite ended"
    comp_last = (take / "post" / "comp" / "ledger.jsonl").stat().st_mtime  # the composite's last frame recorded
    assert starts[0]["t"] < comp_last - 0.3, (starts[0]["t"], comp_last)
    state = json.loads((take / "post" / "plan-s.json").read_text())["steps"]
    assert 0 < state["archive"]["streamed"] <= 12

    step_by_step = run_plan(_plan(root, other, plate, pos, "s"), progress=False, kinds=kinds(), stream=False)
    assert step_by_step.ran == ["comp", "archive"] and not (other / "post" / "plan-s.chunks.jsonl").exists()
    a, b = _frames(take / "post" / "archive", "frames"), _frames(other / "post" / "archive", "frames")
    assert len(a) == 12 and a == b  # byte for byte
    assert _frames(take / "post" / "comp", "rgb") == _frames(other / "post" / "comp", "rgb")
    assert sorted(_ledger_frames(take / "post" / "archive")) == list(range(12))  # each frame written once


def test_ctrl_c_while_both_run_resumes_redoing_nothing(two_takes, slow_composite):
    root, take, other, plate, pos = two_takes
    plan = _plan(root, take, plate, pos, "i")
    fired = []

    def ctrl_c_at_8(f):
        if f == 8 and not fired:
            fired.append(f)
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, while the archive works on earlier chunks

    slow_composite.append(ctrl_c_at_8)
    with pytest.raises(Interrupted, match="stopped in step 'comp'"):
        run_plan(plan, progress=False, kinds=kinds())
    state = json.loads((take / "post" / "plan-i.json").read_text())["steps"]
    assert state["comp"]["state"] == "interrupted" and state["archive"]["state"] == "interrupted"
    comp_first, arch_first = _ledger_frames(take / "post" / "comp"), _ledger_frames(take / "post" / "archive")
    assert 8 in comp_first and len(comp_first) < 12 and 0 < len(arch_first) <= len(comp_first)
    rep = run_plan(plan, progress=False, kinds=kinds())
    assert rep.ran == ["comp", "archive"]
    assert sorted(_ledger_frames(take / "post" / "comp")) == list(range(12))  # no frame written twice
    assert sorted(_ledger_frames(take / "post" / "archive")) == list(range(12))
    assert _ledger_frames(take / "post" / "archive")[:len(arch_first)] == arch_first
    run_plan(_plan(root, other, plate, pos, "i"), progress=False, kinds=kinds(), stream=False)
    assert _frames(take / "post" / "archive", "frames") == _frames(other / "post" / "archive", "frames")


def test_a_chunk_waits_for_every_input_frame_up_to_its_end():
    planned = [0, 1, 2, 3, 4, 5, 6, 7]
    assert ready_windows(planned, {0, 1, 2}, 1, set()) == [0, 1, 2]
    assert ready_windows(planned, {0, 1, 2, 5}, 1, {0}) == [1, 2]  # 5 waits for 3 and 4
    assert ready_windows(planned, {0, 1, 2, 3, 4}, 4, set()) == [0, 1, 2, 3]  # a group of pictures whole, or not at all
    assert ready_windows(planned, {1, 2, 3}, 1, set()) == []  # frame 0 first
    assert ready_windows([0, 2, 4, 6], {0, 2, 4, 6}, 3, {0, 2, 4}) == [6]  # a take rendered every 2nd frame: by position
    assert ready_windows(planned, set(planned), 2, {0, 1}, limit=2) == [2, 3, 4, 5]  # a call takes a few windows, not all
