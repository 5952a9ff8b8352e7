"""``machinima post run PLAN.toml [--ray ADDRESS]``: a shot's post steps as a dependency graph.

A plan lists the steps of a shot (face-swap merge -> composite -> stylize -> archive ->
deliver); a step reads another's frames by naming it (``plate = "@merge"``), or waits for it
with ``after = ["id"]``. Steps run in dependency order; with ``--ray`` each step's frames run
as chunks on the cluster (``machinima.distributed``).

Chunk by chunk: a step kind that reads a growing input (``planstream.streams(window=...)``) starts
on the frames of a step that declares what it will write (``streams(frames=...)``) while that step
runs, a window at a time, each window once its input frames are recorded (``planstream``); the
plan then calls it once more, whole, which finds those frames done. ``stream=False`` (``post run
--step-by-step``) runs each step after the one it reads, as before.

Resumable at two levels: ``<take>/post/plan-<name>.json`` records each finished step under a
key (its settings and the keys of the steps it reads), so a rerun does not even call a step
whose key is unchanged; a step stopped half-way (Ctrl-C) resumes from its own ledger, redoing
no finished frame. Change one step's settings and it and the steps downstream run again.

Step kinds are entry points (``machinima.post_steps``: kind = "module:function"), each a
``run(ctx: StepContext) -> StepOutput``; the hub ships ``deliver`` and never imports a spoke.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
import tomllib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

from .errors import MachinimaError
from .fsutil import atomic_write_json
from .planstream import streams
from .poststep import Interrupted, stable_hash

GROUP = "machinima.post_steps"
RESERVED = ("id", "kind", "after")


class PlanError(MachinimaError):
    """A plan file that cannot be run: bad TOML, an unknown step kind, a cycle, a missing reference."""


@dataclass
class StepContext:
    """What a step kind gets: the take, its own id and settings (``@id`` references already
    resolved to that step's output), the plan's folder (relative paths), the Ray address."""

    take: Path
    step_id: str
    args: dict[str, Any]
    plan_dir: Path
    ray: str | None = None
    progress: bool = True
    # streaming (``planstream``): do only these frames now, reading the input as ``source_frames``
    # (its whole frame list, as it will be); None: the whole step
    frames: list[int] | None = None
    source_frames: list[int] | None = None

    def path(self, key: str, default: Any = None) -> Path | None:
        """A path setting, relative to the plan file (``@id`` references are absolute already)."""
        v = self.args.get(key, default)
        if v is None:
            return None
        p = Path(str(v)).expanduser()
        return p if p.is_absolute() else (self.plan_dir / p)

    def take_args(self, allowed: set[str] | tuple[str, ...]) -> dict[str, Any]:
        """The settings, refusing any the step kind does not know (a typo must not be ignored)."""
        unknown = sorted(set(self.args) - set(allowed))
        if unknown:
            raise PlanError(f"step {self.step_id!r}: unknown setting(s) {unknown}", hint=f"allowed: {', '.join(sorted(allowed))}")
        return dict(self.args)


@dataclass
class StepOutput:
    """Where a step's result is (a frames folder, or a movie for ``deliver``) and what it did."""

    path: Path
    done: int = 0
    skipped: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class PlanStep:
    id: str
    kind: str
    args: dict[str, Any]
    after: list[str]


@dataclass
class Plan:
    name: str
    take: str | None
    steps: list[PlanStep]
    path: Path

    @property
    def order(self) -> list[PlanStep]:
        """Steps in dependency order (Kahn's algorithm; a cycle is an error naming its steps)."""
        by_id = {s.id: s for s in self.steps}
        deps = {s.id: set(s.after) for s in self.steps}
        out: list[PlanStep] = []
        ready = [s.id for s in self.steps if not deps[s.id]]
        while ready:
            sid = ready.pop(0)
            out.append(by_id[sid])
            for other in self.steps:
                if sid in deps[other.id]:
                    deps[other.id].discard(sid)
                    if not deps[other.id]:
                        ready.append(other.id)
        if len(out) != len(self.steps):
            raise PlanError(f"{self.path.name}: steps {sorted(set(by_id) - {s.id for s in out})} depend on each other in a cycle")
        return out


def _refs(value: Any) -> list[str]:
    if isinstance(value, str) and value.startswith("@"):
        return [value[1:]]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


def load_plan(path: str | Path) -> Plan:
    """Parse and check a plan file: ids unique, kinds named, references to existing steps."""
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanError(f"no plan file {p}", hint="copy the example: machinima examples copy shot .") from None
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"{p.name} is not valid TOML: {exc}") from None
    raw = doc.get("step") or []
    if not isinstance(raw, list) or not raw:
        raise PlanError(f"{p.name} lists no [[step]]", hint="each step is a [[step]] table with id and kind")
    steps: list[PlanStep] = []
    for i, t in enumerate(raw):
        if not isinstance(t, dict) or not t.get("id") or not t.get("kind"):
            raise PlanError(f"{p.name}: step {i + 1} needs an id and a kind")
        sid = str(t["id"])
        if any(s.id == sid for s in steps):
            raise PlanError(f"{p.name}: two steps are called {sid!r}")
        args = {k: v for k, v in t.items() if k not in RESERVED}
        after = [str(a) for a in t.get("after", [])] + [r for v in args.values() for r in _refs(v)]
        steps.append(PlanStep(sid, str(t["kind"]), args, sorted(set(after))))
    ids = {s.id for s in steps}
    for s in steps:
        missing = [a for a in s.after if a not in ids]
        if missing:
            raise PlanError(f"{p.name}: step {s.id!r} reads {', '.join('@' + m for m in missing)}, which no step is called")
    plan = Plan(str(doc.get("name") or p.stem), doc.get("take"), steps, p.resolve())
    plan.order  # noqa: B018 - checks for cycles now, not half-way through a night's run
    return plan


def step_kinds() -> dict[str, Callable[[StepContext], StepOutput]]:
    """Installed step kinds: the hub's ``deliver`` and every spoke's entry point."""
    kinds: dict[str, Any] = {"deliver": deliver}
    for ep in entry_points(group=GROUP):
        kinds.setdefault(ep.name, ep)
    return kinds


def _state_path(take: Path, plan: Plan) -> Path:
    return take / "post" / f"plan-{plan.name}.json"


def _resolve(value: Any, outputs: dict[str, Path]) -> Any:
    if isinstance(value, str) and value.startswith("@"):
        return str(outputs[value[1:]])
    if isinstance(value, list):
        return [_resolve(v, outputs) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, outputs) for k, v in value.items()}
    return value


@dataclass
class PlanReport:
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    outputs: dict[str, Path] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _load(fn: Any) -> Callable[[StepContext], StepOutput]:
    return fn.load() if (not callable(fn) or hasattr(fn, "load")) else fn


def run_plan(plan: Plan | str | Path, *, take: str | Path | None = None, ray: str | None = None, progress: bool = True,
             kinds: dict[str, Any] | None = None, log: Callable[[str], None] = lambda s: None, stream: bool = True) -> PlanReport:
    """Run the plan's steps in dependency order, skipping those finished under the same key;
    ``stream``: a step that can read a growing input starts on its input's chunks as they are
    recorded (``planstream``)."""
    plan = plan if isinstance(plan, Plan) else load_plan(plan)
    take_ref = take or plan.take
    if take_ref is None:
        raise PlanError(f"{plan.path.name} names no take", hint="add take = \"...\" to the plan or pass --take")
    take_path = Path(str(take_ref)).expanduser()
    if not take_path.is_absolute() and (plan.path.parent / take_path).exists():
        take_path = plan.path.parent / take_path
    if not (take_path / "take.json").is_file():
        from .cli import resolve_take

        take_path = resolve_take(str(take_ref))
    take_path = take_path.resolve()
    kinds = kinds or step_kinds()
    unknown = sorted({s.kind for s in plan.steps} - set(kinds))
    if unknown:
        raise PlanError(f"{plan.path.name}: unknown step kind(s) {unknown}; installed: {sorted(kinds)}",
                        hint="a spoke's kinds come with its install (pip install -e .)")
    state_path = _state_path(take_path, plan)
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        state = {}
    steps_state: dict[str, Any] = state.setdefault("steps", {})
    state.update(plan=str(plan.path), name=plan.name)
    report = PlanReport()
    keys: dict[str, str] = {}
    streamers: dict[str, Any] = {}
    for s in plan.order:
        args = _resolve(s.args, report.outputs)
        keys[s.id] = stable_hash({"kind": s.kind, "args": args, "after": {a: keys[a] for a in s.after}})
        rec = steps_state.get(s.id) or {}
        if rec.get("state") == "done" and rec.get("key") == keys[s.id] and Path(rec.get("output", "")).exists():
            report.skipped.append(s.id)
            report.outputs[s.id] = Path(rec["output"])
            log(f"{s.id}: done before, skipped")
            continue
        fn = _load(kinds[s.kind])
        streamed = _join_streamer(streamers.pop(s.id, None), log)
        resuming = rec.get("key") == keys[s.id]  # the same settings stopped half-way: its recorded frames count
        steps_state[s.id] = {"kind": s.kind, "key": keys[s.id], "state": "running", "started": _now(), **({"streamed": streamed} if streamed else {})}
        atomic_write_json(state_path, state)
        log(f"{s.id}: {s.kind}")
        t0 = time.perf_counter()
        ctx = StepContext(take_path, s.id, args, plan.path.parent, ray=ray, progress=progress)
        started = _start_streamers(plan, s, ctx, fn, keys, report.outputs, steps_state, kinds, resuming, state_path, log) if stream else {}
        streamers.update(started)
        try:
            out = fn(ctx)
        except (Interrupted, KeyboardInterrupt):
            steps_state[s.id]["state"] = "interrupted"
            for tid, st in list(streamers.items()):
                n = _join_streamer(streamers.pop(tid), log)
                if n:
                    steps_state[tid] = {"kind": next(p.kind for p in plan.steps if p.id == tid), "key": st.key, "state": "interrupted", "streamed": n}
            atomic_write_json(state_path, state)
            raise Interrupted(f"plan {plan.name}: stopped in step {s.id!r}; {len(report.ran) + len(report.skipped)} step(s) finished",
                              hint="run the same command again: finished steps and frames are kept") from None
        except Exception:
            steps_state[s.id]["state"] = "failed"
            for tid in list(streamers):
                _join_streamer(streamers.pop(tid), log)
            atomic_write_json(state_path, state)
            raise
        for st in started.values():
            st.input_done()  # it does the windows still ready, then ends; the plan calls its step whole later
        report.seconds[s.id] = time.perf_counter() - t0
        report.ran.append(s.id)
        report.outputs[s.id] = out.path
        steps_state[s.id].update(state="done", output=str(out.path), done=out.done, skipped=out.skipped,
                                 seconds=round(report.seconds[s.id], 3), finished=_now())
        atomic_write_json(state_path, state)
        log(f"{s.id}: {out.done} frame(s) done, {out.skipped} already done -> {out.path}")
    return report


def _start_streamers(plan: Plan, s: PlanStep, ctx: StepContext, fn: Any, keys: dict[str, str], outputs: dict[str, Path],
                     steps_state: dict[str, Any], kinds: dict[str, Any], resuming: bool, state_path: Path,
                     log: Callable[[str], None]) -> dict[str, Any]:
    """Helper threads for the steps that read ``s`` and can start on its chunks now."""
    from .planstream import LedgerFrames, Streamer, spec_of

    up = spec_of(fn)
    if up is None or up.frames is None:
        return {}
    out: dict[str, Any] = {}
    planned: list[int] | None = None
    for t in plan.steps:
        if s.id not in t.after or s.id not in _refs(list(t.args.values())) or not set(t.after) <= set(keys):
            continue  # it does not read s, or waits on a step not run yet
        t_fn = _load(kinds[t.kind])
        down = spec_of(t_fn)
        if down is None or down.window is None:
            why = down.whole if down is not None and down.whole else "its step kind does not read a growing input"
            log(f"{t.id}: waits for {s.id}'s whole output ({why})")
            continue
        t_args = _resolve(t.args, {**outputs, s.id: up.step_dir(ctx) / up.output})
        t_key = stable_hash({"kind": t.kind, "args": t_args, "after": {a: keys[a] for a in t.after}})
        prev = steps_state.get(t.id) or {}
        if prev.get("state") == "done" and prev.get("key") == t_key:
            continue
        if planned is None:
            try:
                planned = list(up.frames(ctx))
            except Exception as exc:  # the step itself will say what is wrong, in one line
                log(f"{s.id}: not streaming ({str(exc).splitlines()[0][:120]})")
                return out
            if ctx.ray:
                from .distributed.scheduler import connect

                connect(ctx.ray)  # once, here: helper threads then find Ray initialised
        t_ctx = StepContext(ctx.take, t.id, t_args, plan.path.parent, ray=ctx.ray, progress=False)
        follow = LedgerFrames(up.step_dir(ctx), from_start=resuming)
        st = Streamer(t_fn, t_ctx, down, planned, follow, state_path.with_name(state_path.stem + ".chunks.jsonl"), t.id)
        st.key = t_key
        st.start()
        log(f"{t.id}: starts on {s.id}'s chunks as they are written ({st.window} frame(s) a chunk)")
        out[t.id] = st
    return out


def _join_streamer(st: Any, log: Callable[[str], None]) -> int:
    """Stop a helper thread after its chunk in hand; how many frames it did."""
    if st is None:
        return 0
    st.stop()
    st.join()
    if st.error is not None:
        log(f"{st.plan_step}: streaming stopped ({str(st.error).splitlines()[0][:160] if str(st.error) else type(st.error).__name__}); the step runs whole")
    return len(st.done)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


DELIVER_WHOLE = ("the movie is one encode, signed as a whole file: an encoder cannot resume after Ctrl-C, so a movie "
                 "streamed from a growing input would be encoded again whole on every resume; and in a shot's plan it reads "
                 "@archive, itself a streamed reader, which feeds no further step")


@streams(step_dir=lambda ctx: ctx.take / "post" / ctx.step_id, output="", whole=DELIVER_WHOLE)
def deliver(ctx: StepContext) -> StepOutput:
    """The shot's movie from a step's frames: ``<take>/post/<id>/<take id>.mp4``, disclosed like
    the frames (``poststep.write_video``). Settings: ``from`` (frames, usually ``@archive``),
    ``name`` (file stem), ``fps`` (default: the take's)."""
    from .imageseq import list_frames, read_image
    from .poststep import write_video
    from .sparse import held
    from .take import Take

    a = ctx.take_args({"from", "name", "fps"})
    src = ctx.path("from")
    if src is None:
        raise PlanError(f"step {ctx.step_id!r} (deliver) needs from = \"@<step>\"")
    files = list_frames(src)
    if not files:
        raise PlanError(f"step {ctx.step_id!r}: no frames in {src}")
    t = Take.open(ctx.take)
    out_dir = ctx.take / "post" / ctx.step_id
    out_dir.mkdir(parents=True, exist_ok=True)
    movie = out_dir / f"{a.get('name') or t.id}.mp4"

    def frames():
        import numpy as np

        for f in held(sorted(files)):
            img = read_image(files[f])
            yield img if img.dtype == np.uint8 else (np.clip(img[..., :3], 0, 1) * 255 + 0.5).astype(np.uint8)

    write_video(movie, frames(), a.get("fps") or t.fps)
    return StepOutput(movie, done=len(files))
