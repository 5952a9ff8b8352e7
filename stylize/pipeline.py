"""The stylize pipeline: frames + controls -> stylized frames, with cadence and propagation.

Read top to bottom, like a recipe:

  plan()
    1. check inputs: frames exist, every control can be made, the engine has a ControlNet per control
    2. segments: split at the look's shots, detected cuts and gaps (nothing crosses a cut)
    3. keyframes per segment: every frame / every N / adaptive by motion (+ the last frame to propagate)
    4. processing order and chunks (keyframes diffused together in one batch)
    5. frame keys: each frame's own inputs plus the keys of the frames it is built from

  frame(f)   (called in plan order; the runner records each result)
    6. a keyframe: its chunk is diffused in one engine call, each frame initialised from the
       keyframe before the chunk moved by the motion: its stylized pixels blended into the
       input (``init_blend``) and its diffusion noise carried along (``init_noise``), then
       colour-matched to a window of the previous keyframes of its segment
    7. an in-between frame: hold the keyframe, or propagate from both neighbouring keyframes
       by the motion with occlusion-aware blending

Motion comes from ``stylize.motion``: the render's exact motion pass where the source has one,
RAFT when the look names its weights, DIS otherwise (``[cadence] flow``).

Pure logic on arrays: the source gives frames and passes, the engine paints, ``load`` returns
frames finished by an earlier run (resume), so the same code runs from the Python API, the
batch runner and Ray.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from machinima.poststep import stable_hash

from . import controls as C
from . import flow as F
from .control_maker import ControlMaker
from .engines import Engine
from .errors import SourceError, StylizeError
from .look import Look
from .motion import ImageMotion, Motion, PassMotion, choose_motion, source_step
from .sources import Source

@dataclass
class Role:
    kind: str                     # key | fill | hold
    seg: int
    k0: int | None = None         # fill/hold: keyframe before; key: init source (last keyframe of the previous chunk)
    k1: int | None = None         # fill: keyframe after
    alpha: float = 0.0            # fill: position between k0 and k1
    window: list[int] = field(default_factory=list)  # key: previous keyframes for colour matching


@dataclass
class Plan:
    frames: list[int]
    segments: list[list[int]]
    keyframes: list[int]
    order: list[int]
    roles: dict[int, Role]
    chunks: list[list[int]]
    chunk_of: dict[int, int]
    keys: dict[int, str]
    depth_ranges: dict[int, tuple[float, float]]

    def summary(self) -> dict[str, Any]:
        return {"frames": len(self.frames), "keyframes": len(self.keyframes),
                "segments": [[s[0], s[-1]] for s in self.segments], "keyframe_list": self.keyframes}


class _LRU(OrderedDict):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, k: Any, v: Any) -> None:
        self[k] = v
        self.move_to_end(k)
        while len(self) > self.size:
            self.popitem(last=False)


class StylizePipeline:
    """One look applied to one source with one engine."""

    def __init__(self, look: Look, engine: Engine, source: Source, *, frames: list[int] | None = None,
                 load: Callable[[int], np.ndarray | None] | None = None, motion: Motion | None = None, config: Any = None) -> None:
        self.look = look
        self.engine = engine
        self.source = source
        self.frames = sorted(frames) if frames is not None else list(source.frames)
        # passes every Nth frame (``blender render --step N``): frames N apart are neighbours
        self.step = source_step(source.frames)
        self.load = load or (lambda f: None)
        self.config = config
        self.motion = motion or choose_motion(look.cadence.flow, look.cadence.raft, source, config=config)
        if motion is None and isinstance(self.motion, ImageMotion):
            self.motion._image = self.image  # flow reads the frames the loop holds (and reads ahead), not the disk again
        self.controls = ControlMaker(look, source, config=config)
        self._images = _LRU(24)
        self._reads: Any = None  # machinima.frameio.Prefetch while a loop reads ahead
        self._out = _LRU(max(16, 4 * max(1, engine.batch) + look.cadence.color_window + 4))
        self._noises = _LRU(8)
        self._stats: dict[int, np.ndarray] = {}
        self._plan: Plan | None = None
        self.stats = {"diffused": 0, "skipped_static": 0, "propagated": 0, "held": 0, "engine_s": 0.0, "flow_s": 0.0}

    # --- inputs -----------------------------------------------------------------------------
    def image(self, f: int) -> np.ndarray:
        if f not in self._images:
            self._images.put(f, self._reads.get(f) if self._reads is not None else self.source.image(f))
        return self._images[f]

    def read_order(self, done: Callable[[int], bool] | None = None) -> list[int]:
        """The source frames in the order the frame loop first reads them: a keyframe reads its
        whole chunk (one engine call), an in-between its own frame (its keyframes were read
        before it). ``done(f)``: frames an earlier run finished, not read again."""
        plan = self.plan()
        seen: set[int] = set()
        out: list[int] = []
        for f in plan.order:
            r = plan.roles[f]
            for g in (plan.chunks[plan.chunk_of[f]] if r.kind == "key" else [f]):
                if g not in seen and not (done is not None and done(g)):
                    seen.add(g)
                    out.append(g)
        return out

    def read_ahead(self, order: list[int], depth: int = 4) -> None:
        """Decode the source frames of ``order`` ahead on the I/O threads while the engine works
        (stylize reads in keyframe order, not frame order); a frame asked out of order is read
        when asked. ``close_reads()`` stops it."""
        from machinima.frameio import Prefetch

        self.close_reads()
        self._reads = Prefetch(order, self.source.image, depth=depth)

    def close_reads(self) -> None:
        if self._reads is not None:
            self._reads.close()
            self._reads = None

    def _pass_names(self) -> list[str]:
        names = self.controls.pass_names()
        if isinstance(self.motion, PassMotion):
            names.append("motion")  # the exact motion moves pixels of keyframe inits and in-betweens
        return names

    def controls_for(self, f: int) -> dict[str, np.ndarray]:
        plan = self.plan()
        return self.controls.make(f, self.image(f), depth_range=plan.depth_ranges.get(plan.roles[f].seg))

    def seed_for(self, f: int) -> int:
        shot = self.look.shot_of(f)
        base = shot.seed if shot and shot.seed is not None else self.look.seed
        return int(base) + (f if self.look.seed_mode == "frame" else 0)

    def strength_for(self, f: int) -> float:
        shot = self.look.shot_of(f)
        return float(shot.strength) if shot and shot.strength is not None else self.look.model.strength

    # --- the plan ---------------------------------------------------------------------------
    def plan(self) -> Plan:
        if self._plan is not None:
            return self._plan
        look, cad = self.look, self.look.cadence
        # 1. check inputs
        if not self.frames:
            raise SourceError("no frames to stylize", hint="check --frames / --shots against the take's frames")
        missing = sorted(set(self.frames) - set(self.source.frames))
        if missing:
            raise SourceError(f"frames {missing[:5]}{'...' if len(missing) > 5 else ''} are not in the source "
                              f"(it has {self.source.frames[0]}..{self.source.frames[-1]})")
        if look.controls:
            self.controls.check(self.frames[0])
        # 2. segments: shots of the look, detected cuts, gaps
        breaks = {s.frames[0] for s in look.shots} | {s.frames[1] + 1 for s in look.shots}
        cuts: set[int] = set()
        motion: dict[int, float] = {}
        if (cad.detect_cuts or cad.adaptive) and len(self.frames) > 1:
            prev_h, prev_f = None, None
            reading = self._reads is None
            if reading:
                self.read_ahead(self.frames)  # every frame once, in order
            for f in self.frames:
                img = self.image(f)
                h = F.histogram(img)
                if prev_h is not None and 0 < f - prev_f <= self.step:
                    if cad.detect_cuts and F.cut_distance(prev_h, h) > cad.cut_threshold:
                        cuts.add(f)
                    elif cad.adaptive:
                        motion[f] = self.motion.mean_motion(prev_f, f)
                prev_h, prev_f = h, f
            if reading:
                self.close_reads()
        segs = F.segments(self.frames, breaks, cuts, self.step)
        # 3. keyframes per segment
        roles: dict[int, Role] = {}
        keyframes: list[int] = []
        order: list[int] = []
        chunks: list[list[int]] = []
        batch = max(1, int(self.engine.batch))
        depth_ranges: dict[int, tuple[float, float]] = {}
        for si, seg in enumerate(segs):
            keys = F.plan_keyframes(seg, cad.mode, every=cad.every, adaptive=cad.adaptive, motion=motion,
                                    motion_px=cad.motion_px, max_gap=cad.max_gap)
            keyframes += keys
            if any(c.kind == "depth" and self.controls.from_pass(c) for c in look.controls):
                probe = [seg[0], seg[len(seg) // 2], seg[-1]]
                depth_ranges[si] = C.depth_range([self.source.raw("depth", f) for f in probe])
            # 4. chunks of keyframes (one engine call each) and the processing order
            seg_chunks = [keys[i:i + batch] for i in range(0, len(keys), batch)]
            prev_last: int | None = None
            for ch in seg_chunks:
                for k in ch:
                    i = keys.index(k)
                    roles[k] = Role("key", si, k0=prev_last if (self._inits() or cad.skip_static > 0) else None,
                                    window=keys[max(0, i - cad.color_window):i] if cad.color_match else [])
                prev_last = ch[-1]
                chunks.append(ch)
            pos = {f: i for i, f in enumerate(seg)}
            for i, k in enumerate(keys):
                if cad.mode == "propagate":
                    order.append(k)
                    if i > 0:
                        k0 = keys[i - 1]
                        for f in seg[pos[k0] + 1:pos[k]]:  # the frames there are (every Nth: N apart)
                            roles[f] = Role("fill", si, k0=k0, k1=k, alpha=(f - k0) / (k - k0))
                            order.append(f)
                else:
                    order.append(k)
                    nxt = keys[i + 1] if i + 1 < len(keys) else seg[-1] + 1
                    for f in seg[pos[k] + 1:pos[nxt] if nxt in pos else len(seg)]:
                        roles[f] = Role("hold", si, k0=k)
                        order.append(f)
        chunk_of = {k: ci for ci, ch in enumerate(chunks) for k in ch}
        # 5. frame keys, chained through what each frame is built from
        pass_names = self._pass_names()
        keymap: dict[int, str] = {}
        for f in order:
            r = roles[f]
            own = {"src": self.source.fingerprint(f, pass_names), "role": r.kind}
            if r.kind == "key":
                own.update(prompt=look.prompt_for(f), seed=self.seed_for(f), strength=self.strength_for(f),
                           depth=depth_ranges.get(r.seg),
                           deps=[keymap[k] for k in ([r.k0] if r.k0 is not None else []) + r.window
                                 + ([segs[r.seg][0]] if cad.cross_frame and f != segs[r.seg][0] else [])],
                           chunk=chunks[chunk_of[f]])
            elif r.kind == "fill":
                own.update(deps=[keymap[r.k0], keymap[r.k1]], alpha=round(r.alpha, 6))
            else:
                own.update(deps=[keymap[r.k0]])
            keymap[f] = stable_hash(own)
        self._plan = Plan(list(self.frames), segs, keyframes, order, roles, chunks, chunk_of, keymap, depth_ranges)
        return self._plan

    # --- frames -----------------------------------------------------------------------------
    def stylized(self, f: int) -> np.ndarray:
        """The finished output of frame ``f``: from memory, from disk (an earlier run), or made now."""
        if f in self._out:
            return self._out[f]
        img = self.load(f)
        if img is None:
            img = self.frame(f)
        self._out.put(f, img)
        return img

    def frame(self, f: int) -> np.ndarray:
        """Make frame ``f`` (its keyframes are made or loaded first)."""
        import time

        if f in self._out:
            return self._out[f]
        plan = self.plan()
        r = plan.roles.get(f)
        if r is None:
            raise StylizeError(f"frame {f} is not in this run's frames")
        if r.kind == "key":
            self._diffuse_chunk(plan.chunks[plan.chunk_of[f]])
            return self._out[f]
        if r.kind == "hold":
            out = self.stylized(r.k0)
            self.stats["held"] += 1
        else:
            # 7. propagate from both neighbouring keyframes
            s0, s1 = self.stylized(r.k0), self.stylized(r.k1)
            t0 = time.perf_counter()
            mo = self.motion
            out = F.propagate(self.image(f), (self.image(r.k0), s0), (self.image(r.k1), s1), r.alpha,
                              occlusion_px=self.look.cadence.occlusion_px,
                              flows0=(mo.flow(f, r.k0), mo.flow(r.k0, f)), flows1=(mo.flow(f, r.k1), mo.flow(r.k1, f)))
            self.stats["flow_s"] += time.perf_counter() - t0
            self.stats["propagated"] += 1
        return out  # in-between frames are never sources of other frames: not cached

    def _diffuse_chunk(self, chunk: list[int]) -> None:
        """6. one engine call for the chunk's unfinished keyframes, then colour matching in order."""
        import time

        plan, cad = self.plan(), self.look.cadence
        done = {}
        for k in chunk:
            if k in self._out:
                done[k] = self._out[k]
            else:
                got = self.load(k)
                if got is not None:
                    done[k] = got
        todo = [k for k in chunk if k not in done]
        fresh: dict[int, np.ndarray] = {}
        if todo:
            inits = []
            t0 = time.perf_counter()
            for k in list(todo):
                img = self.image(k)
                src = plan.roles[k].k0
                if src is not None:
                    fl = self.motion.flow(k, src)
                    warped_u8 = F.warp(self.stylized(src), fl)
                    if cad.skip_static > 0:
                        # StreamDiffusion-style similarity filter: a keyframe whose input is the previous
                        # one's, moved, is the previous stylized keyframe, moved: no diffusion
                        diff = np.abs(F.warp(self.image(src), fl).astype(np.float32) - img.astype(np.float32)).mean()
                        if diff < cad.skip_static:
                            fresh[k] = warped_u8
                            todo.remove(k)
                            self.stats["skipped_static"] = self.stats.get("skipped_static", 0) + 1
                            continue
                    if cad.init_blend > 0:
                        img = np.clip((1 - cad.init_blend) * img.astype(np.float32) + cad.init_blend * warped_u8.astype(np.float32) + 0.5,
                                      0, 255).astype(np.uint8)
                inits.append(img)
            ctls = [self.controls_for(k) for k in todo]
            self.stats["flow_s"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            batch = list(todo)
            anchor = self._anchor(todo[0]) if todo else None
            if anchor is not None and anchor != todo[0]:
                # cross-frame attention: the shot's first keyframe leads the batch (same input, seed: same latents)
                batch = [anchor] + batch
                inits.insert(0, self.image(anchor))
                ctls.insert(0, self.controls_for(anchor))
            noises = [self.noise_for(k) for k in batch] if todo else []
            res = self.engine.stylize(inits, ctls, prompts=[self.look.prompt_for(k) for k in batch],
                                      seeds=[self.seed_for(k) for k in batch], strengths=[self.strength_for(k) for k in batch],
                                      noises=noises) if todo else []
            res = res[len(batch) - len(todo):]
            self.stats["engine_s"] += time.perf_counter() - t0
            self.stats["diffused"] += len(todo)
            fresh.update(zip(todo, res))
        for k in chunk:
            if k in fresh:
                out = fresh[k]
                window = plan.roles[k].window
                if window:
                    out = F.match_color(out, [self._color(w) for w in window])
                self._out.put(k, out)
            else:
                self._out.put(k, done[k])

    def _inits(self) -> bool:
        """Whether keyframes start from the keyframe before them (pixels, noise or both)."""
        cad = self.look.cadence
        return cad.init_blend > 0 or cad.carries_noise()

    def noise_for(self, k: int) -> np.ndarray | None:
        """Keyframe k's starting noise: its seed's, or (``init_noise``) the noise of the keyframe it
        is initialised from, carried along the motion, its seed's where the motion brings nothing.
        A pure function of the plan, so a resumed run recomputes it (flows only, no diffusion)."""
        if k in self._noises:
            return self._noises[k]
        plan, cad = self.plan(), self.look.cadence
        chain = [k]  # walk back to a keyframe whose noise is known or starts fresh (no recursion)
        while True:
            r = plan.roles.get(chain[-1])
            src = r.k0 if (cad.carries_noise() and r is not None and r.kind == "key") else None
            if src is None or src in self._noises:
                break
            chain.append(src)
        noise = None
        for f in reversed(chain):
            h, w = self.image(f).shape[:2]
            fresh = self.engine.noise(self.seed_for(f), h, w)
            if fresh is None:
                return None
            r = plan.roles.get(f)
            src = r.k0 if (cad.carries_noise() and r is not None and r.kind == "key") else None
            prev = noise if src is not None and noise is not None else (self._noises.get(src) if src is not None else None)
            noise = F.warp_noise(prev, self.motion.flow(f, src), fresh) if prev is not None else fresh
            self._noises.put(f, noise)
        return noise

    def _anchor(self, k: int) -> int | None:
        """The keyframe a keyframe's cross-frame attention looks at: its segment's first."""
        if not (self.look.cadence.cross_frame and getattr(self.engine, "cross_frame", False)):
            return None
        plan = self.plan()
        return plan.segments[plan.roles[k].seg][0]

    def _color(self, k: int) -> np.ndarray:
        if k not in self._stats:
            self._stats[k] = F.color_stats(self.stylized(k))
        return self._stats[k]

    # --- everything in memory ---------------------------------------------------------------
    def __call__(self) -> list[np.ndarray]:
        """Stylize every frame in memory (the Python API); returns frames in frame order."""
        results: dict[int, np.ndarray] = {}
        self.load = lambda f: results.get(f)
        for f in self.plan().order:
            results[f] = self.frame(f)
        return [results[f] for f in self.frames]
