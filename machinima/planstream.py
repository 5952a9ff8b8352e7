"""Chunk by chunk through a plan: a downstream step works on the frames its input step has
finished while that step is still running (``machinima post run``'s streaming).

A step kind takes part by declaring, with ``@streams(...)``, what the runner needs to know
without running it:

- as an input (upstream): its step folder, the output subfolder the next step reads, and the
  frames it will write (``frames(ctx)``): so the next step's windows are the final run's windows;
- as a reader (downstream): ``window(ctx)``, how many consecutive input frames one of its chunks
  needs together (an archive codec's group of pictures; 1 = each frame alone). It is then called
  with ``ctx.frames`` (do only these now) and ``ctx.source_frames`` (the input's whole frame list,
  as it will be), any number of times; its own step ledger makes every call resumable;
- or, when its output cannot be made a window at a time, ``whole="why"``: the runner says so in
  its log (``<step> waits for <input>'s whole output: why``), so a plan never waits silently.

A downstream chunk (a window of the input's frame list) runs once every input frame up to the
window's last one is recorded in the input step's ledger *in this run* (or before it, when the
plan state says the input is resuming the same settings): so no chunk reads a frame an earlier
run with other settings left behind, and windows are the same as in a step-by-step run. The
runner's helper thread does the chunks; the plan's own loop then calls the step once more, whole,
in the main thread (Ctrl-C as before), which finds the streamed frames done.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

NAME = "chunks.jsonl"  # beside the plan state: <take>/post/plan-<name>.chunks.jsonl


@dataclass(frozen=True)
class StreamSpec:
    step_dir: Callable[[Any], Path]
    output: str
    frames: Callable[[Any], list[int]] | None = None  # set: the step can feed a streaming reader
    window: Callable[[Any], int] | None = None  # set: the step can read a growing input
    whole: str | None = None  # set: why the step needs its whole input (said in the plan's log)


def streams(*, step_dir: Callable[[Any], Path], output: str, frames: Callable[[Any], list[int]] | None = None,
            window: Callable[[Any], int] | None = None, whole: str | None = None) -> Callable[[Callable], Callable]:
    """Decorate a step kind ``run(ctx)`` with what streaming needs (see the module docstring)."""
    def deco(fn: Callable) -> Callable:
        fn.plan_stream = StreamSpec(step_dir, output, frames, window, whole)
        return fn
    return deco


def spec_of(fn: Any) -> StreamSpec | None:
    return getattr(fn, "plan_stream", None)


class LedgerFrames:
    """Frames recorded in a step's ``ledger.jsonl`` from a byte offset on (lines appended by the
    step as each frame's files are complete)."""

    def __init__(self, step_dir: Path, *, from_start: bool) -> None:
        self.path = Path(step_dir) / "ledger.jsonl"
        self.offset = 0 if from_start or not self.path.exists() else self.path.stat().st_size
        self.frames: set[int] = set()

    def poll(self) -> set[int]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except OSError:
            return self.frames
        end = data.rfind(b"\n") + 1
        self.offset += end
        for line in data[:end].splitlines():
            try:
                self.frames.add(int(json.loads(line)["frame"]))
            except (ValueError, KeyError, TypeError):
                continue
        return self.frames


def ready_windows(planned: list[int], have: set[int], window: int, done: set[int], limit: int | None = None) -> list[int]:
    """Frames of the windows of ``planned`` (by position, ``window`` long) whose input frames up
    to the window's end are all in ``have``, not yet in ``done``; in order, at most ``limit``
    windows with work in them."""
    out: list[int] = []
    w = max(1, int(window))
    taken = 0
    for i in range(0, len(planned), w):
        chunk = planned[i:i + w]
        if not all(f in have for f in planned[:i + len(chunk)]):
            break  # later windows need this one's frames (and everything before) first
        todo = [f for f in chunk if f not in done]
        if todo:
            if limit is not None and taken >= limit:
                break
            out += todo
            taken += 1
    return out


class Streamer(threading.Thread):
    """Runs a reader step on the windows of its input as the input step records them."""

    def __init__(self, fn: Callable, ctx: Any, spec: StreamSpec, planned: list[int], follow: LedgerFrames, log_path: Path,
                 plan_step: str, poll_s: float = 0.2) -> None:
        super().__init__(name=f"stream-{plan_step}", daemon=True)
        self.fn, self.ctx, self.spec, self.planned, self.follow = fn, ctx, spec, planned, follow
        self.log_path, self.plan_step, self.poll_s = log_path, plan_step, poll_s
        self.window = int(spec.window(ctx)) if spec.window else 1
        self.done: set[int] = set()
        self.waves = 0
        self.key = ""  # the plan's key of the reader step (its state if the plan stops)
        self.error: BaseException | None = None
        self._stop_evt = threading.Event()
        self._input_done = threading.Event()

    def input_done(self) -> None:
        self._input_done.set()

    def stop(self) -> None:
        """Finish the chunk in hand, start no other."""
        self._stop_evt.set()

    def _log(self, rec: dict[str, Any]) -> None:
        with open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"step": self.plan_step, **rec}, separators=(",", ":")) + "\n")

    def run(self) -> None:
        try:
            while not self._stop_evt.is_set():
                finished = self._input_done.is_set()
                # a few windows a call (>= 8 frames): Ctrl-C waits for the call in hand to finish
                todo = ready_windows(self.planned, self.follow.poll(), self.window, self.done, limit=max(1, 8 // self.window))
                if todo:
                    t0 = time.time()
                    self._log({"event": "start", "frames": [todo[0], todo[-1]], "n": len(todo), "t": round(t0, 3)})
                    self.fn(replace(self.ctx, frames=todo, source_frames=list(self.planned), progress=False))
                    self.done.update(todo)
                    self.waves += 1
                    self._log({"event": "end", "frames": [todo[0], todo[-1]], "n": len(todo), "t": round(time.time(), 3)})
                elif finished:
                    return  # the input is complete and every ready window is done: the final call does the rest
                else:
                    self._stop_evt.wait(self.poll_s)
        except BaseException as exc:  # the plan's final (main-thread) call of the step reports real errors
            self.error = exc
