"""Tune the phone loop's few parameters (``lipsync.phoneloop.LoopParams``) on HELD-OUT speech:
sentences from the second Harvard list and voices that ``bench/lipsync.py`` and the tests never
score (those use the first list's sentences, ``lipsync.truth.SENTENCES``, in
``TRUTH_VOICES``). The acoustic scores are computed once per line; each grid point only reruns
forward-backward and the frame decisions (speaker adaptation, which changes the acoustic
scores, is chosen first, in stage 0), scored on speech frames at 100 fps (the same scorer as
the benchmark). Prints JSON: every grid point's accuracy and change-offset p90, and the best.

    .venv/bin/python bench/lipsync_tune.py            # full grid (10 minutes at load 12-15)
    .venv/bin/python bench/lipsync_tune.py --quick    # a small grid around the defaults (about a minute)
    .venv/bin/python bench/lipsync_tune.py --fit-fv   # only the F/V frication model (lipsync/frication.py)
    .venv/bin/python bench/lipsync_tune.py --fv-grid  # only the F/V override's threshold and run (a few minutes)
    .venv/bin/python bench/lipsync_tune.py --evidence-grid  # only the closed / open evidence overrides (a few minutes)

The F/V frication model (diagonal Gaussians for /f/, /v/ and the rest over
``frication.measures``) is fitted on held-out speech frames: the second Harvard list and the
third and fourth (``MORE_HELD_OUT_SENTENCES``) in the four held-out voices. ``--fit-fv`` prints
it in the form ``lipsync/frication.py`` keeps; ``--fv-grid`` chooses its threshold and minimum
run leaving one voice out (the model fitted on three voices scores the fourth).

The evidence overrides (``lipsync.evidence``: closed M/B/P, then open vowels, from each frame's own
likelihoods) have no fitted model, only two thresholds each; ``--evidence-grid`` chooses them on
lists 2-4 in the four held-out voices (8 lines, 2,320 truth mouth changes) by the same rule as
every grid here (best speech frames within 0.3 points, then fewest missed changes).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lipsync import frication  # noqa: E402
from lipsync.evidence import Override, apply_override  # noqa: E402
from lipsync.phoneloop import DEFAULT, LoopParams, frame_loglik, phone_loop_frames, to_segments  # noqa: E402
from lipsync.phonemes import NOISE_FLOOR  # noqa: E402
from lipsync.score import change_offsets, offset_summary, score_classes, track_frames, truth_frames  # noqa: E402
from lipsync.truth import SENTENCES, TRUTH_VOICES, synthesize  # noqa: E402
from lipsync.visemes import base_phone, phones_to_cues  # noqa: E402

# Harvard sentences, list 2 (IEEE 1969, public domain): none is in lipsync.truth.SENTENCES
HELD_OUT_SENTENCES = (
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
)
HELD_OUT_VOICES = (("en-us+m3", 150), ("en-gb-x-rp", 175), ("en-029", 140), ("en-us-nyc+f2", 190))
# Harvard lists 3 and 4: more held-out speech for the spectral detectors (list 2 has few /v/
# after a vowel, as in "of", which the scored sentences have often)
MORE_HELD_OUT_SENTENCES = (
    "The small pup gnawed a hole in the sock.", "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.", "The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy.", "Two blue fish swam in the tank.",
    "Her purse was full of useless trash.", "The colt reared and threw the tall rider.",
    "It snowed, rained, and hailed the same morning.", "Read verse out loud for pleasure.",
    "Hoist the load to your left shoulder.", "Take the winding path to reach the lake.",
    "Note closely the size of the gas tank.", "Wipe the grease off his dirty face.",
    "Mend the coat before you go out.", "The wrist was badly strained and hung limp.",
    "The stray cat gave birth to kittens.", "The young girl gave no clear response.",
    "The meal was cooked before the bell rang.", "What joy there is in living.",
)

assert not (set(HELD_OUT_SENTENCES) | set(MORE_HELD_OUT_SENTENCES)) & set(SENTENCES)
assert not {v for v, _ in HELD_OUT_VOICES} & {v for v, _ in TRUTH_VOICES}


def held_out_lines(voices=HELD_OUT_VOICES, sentences=HELD_OUT_SENTENCES):
    return [synthesize(" ".join(sentences), voice=v, speed=s) for v, s in voices]


def decodable(samples: np.ndarray) -> np.ndarray:
    """The same -60 dBFS floor the analysis adds (``lipsync.phonemes``)."""
    return samples + np.random.default_rng(0).normal(0.0, NOISE_FLOOR, samples.size).astype(np.float32)


def all_held_out_lines():
    """Lists 2-4 in the four held-out voices: list 2 as one line per voice, then lists 3-4."""
    return held_out_lines() + held_out_lines(sentences=MORE_HELD_OUT_SENTENCES)


def phone_frames(phones, n: int) -> np.ndarray:
    """Base ARPAbet phone at each 10 ms frame's middle (SIL outside phones)."""
    out = np.array(["SIL"] * n, dtype=object)
    t = (np.arange(n) + 0.5) / 100
    for s in phones:
        out[(t >= s.start) & (t < s.end)] = base_phone(s.phone)
    return out


def fv_frames(lines) -> tuple[np.ndarray, np.ndarray]:
    """Every speech frame's frication measures and its phone, pooled over ``lines``."""
    z, ph = [], []
    for u in lines:
        n = int(np.ceil(u.seconds * 100))
        p = phone_frames(u.phones, n)
        z.append(frication.measures(decodable(u.samples), n)[p != "SIL"])
        ph.append(p[p != "SIL"])
    return np.concatenate(z), np.concatenate(ph)


def fit_fv(lines) -> dict:
    """The frication model from the held-out lines: every speech frame's measures, /f/, /v/ or other."""
    return frication.fit(*fv_frames(lines))


def fv_grid(quick: bool) -> dict:
    """The F/V override's threshold and run, leave one voice out: the model fitted on the other
    three voices' lines (lists 2-4) scores the fourth voice's, pooled over the four."""
    lines = all_held_out_lines()
    voice = [i % len(HELD_OUT_VOICES) for i in range(len(lines))]
    off = replace(DEFAULT, fv_threshold=float("inf"))
    cache = [frame_loglik(decodable(u.samples), off) for u in lines]
    frames = [phone_loop_frames(decodable(u.samples), off, cached=c) for u, c in zip(lines, cache)]
    z = [frication.measures(decodable(u.samples), len(f)) for u, f in zip(lines, frames)]
    models = [fit_fv([u for u, w in zip(lines, voice) if w != v]) for v in range(len(HELD_OUT_VOICES))]
    points = [(float("inf"), 0)] + [(th, r) for th in ((10.0, 14.0) if quick else (10.0, 12.0, 14.0, 16.0, 18.0)) for r in (3, 4)]
    results = []
    for th, run in points:
        preds = [frication.mark_fv(f, frication.fv_llr(zz, models[w]), th, run) if np.isfinite(th) else f
                 for f, zz, w in zip(frames, z, voice)]
        r = {"params": {"fv_threshold": th, "fv_min_run": run}, **score_frames(lines, preds)}
        results.append(r)
        print(json.dumps(r), file=sys.stderr, flush=True)
    return {"leave_one_voice_out": results, "pick": pick(results[1:])}


CLOSED_OVER = ("closed", "open", "rounded", "wide", "other")  # never F/V: see lipsync.evidence
OPEN_OVER = ("rounded", "wide", "other")


def evidence_grid(quick: bool) -> dict:
    """The closed and open evidence overrides' (hi, lo) on lists 2-4 in the held-out voices; the
    rest of the loop at its defaults (F/V detector on). The loop's frames without overrides are
    computed once per line; each grid point only applies its overrides to them."""
    lines = all_held_out_lines()
    cache = [frame_loglik(decodable(u.samples), DEFAULT) for u in lines]
    bare = [phone_loop_frames(decodable(u.samples), replace(DEFAULT, overrides=()), cached=c) for u, c in zip(lines, cache)]
    closed = [None] + [(hi, lo) for hi in ((0.0, 2.0) if quick else (-4.0, -2.0, 0.0, 2.0, 4.0, 6.0)) for lo in (hi - 4, hi - 2, hi)]
    opened = [None] + [(hi, lo) for hi in ((-2.0,) if quick else (-4.0, -2.0, 0.0, 2.0)) for lo in (hi - 4, hi - 2)]
    results = []
    for c, o in itertools.product(closed, opened):
        rules = ([Override("closed", c[0], c[1], CLOSED_OVER)] if c else []) + ([Override("open", o[0], o[1], OPEN_OVER)] if o else [])
        preds = []
        for f, (ll, phones, _) in zip(bare, cache):
            for rule in rules:
                f = apply_override(f, ll, phones, rule)
            preds.append(f)
        r = {"params": {"closed": c, "open": o}, **score_frames(lines, preds)}
        results.append(r)
        print(json.dumps(r), file=sys.stderr, flush=True)
    return {"lines": len(lines), "grid": results, "off": results[0], "pick": pick(results)}


def score(lines, cache, params: LoopParams) -> dict:
    """Pooled speech-frame accuracy and change offsets of the phone loop (through the same
    coarticulation as the analysis) on ``lines``."""
    return score_frames(lines, [phone_loop_frames(decodable(u.samples), params, cached=c) for u, c in zip(lines, cache)])


def score_frames(lines, frame_phones) -> dict:
    """``score`` from each line's frame phones."""
    preds, truths, offs = [], [], []
    for u, fr in zip(lines, frame_phones):
        segs = to_segments(fr)
        n = int(np.ceil(u.seconds * 100))
        p = track_frames(phones_to_cues(segs, u.seconds), 100, n)
        t = truth_frames(u.phones, 100, n)
        preds += p
        truths += t
        offs.append(change_offsets(p, t, 100))
    sc = score_classes(preds, truths)
    return {"accuracy": round(sc.accuracy, 4), "offsets": offset_summary(np.concatenate(offs)),
            "per_class": {k: round(v, 3) for k, v in sc.per_class.items()}}


GRID = {
    "acoustic_scale": (0.15, 0.2, 0.3),
    "insertion": (1.0, 2.0, 4.0),
    "lm_weight": (1.0, 1.5, 2.0),
    "quiet": (0.01, 0.02, 0.05),
}
QUICK = {"acoustic_scale": (0.2, 0.3), "insertion": (1.0, 2.0), "lm_weight": (1.5,), "quiet": (0.02,)}
ADAPT = [{"adapt_passes": 0}, {"adapt_passes": 1, "map_tau": 2.0}, {"adapt_passes": 1, "map_tau": 0.5},
         {"adapt_passes": 1, "map_tau": 8.0}, {"adapt_passes": 2, "map_tau": 2.0}]
# second stage, at the first stage's best: a bias toward the classes the model under-hears
FV = [{"fv_threshold": th, "fv_min_run": r} for th in (float("inf"), 10.0, 12.0, 14.0, 16.0) for r in (3, 4)]
BIASES = [(("fv", fv), ("closed", cl), ("rounded", rd)) for fv in (0.0, 1.0, 2.0, 3.0) for cl in (0.0, 1.0, 2.0) for rd in (0.0, 1.0)]
TOLERANCE = 0.003  # settings within this of the best accuracy count as equal: the one missing fewest changes wins


def pick(results: list[dict]) -> dict:
    """The best accuracy; among settings within ``TOLERANCE`` of it, the fewest missed mouth changes."""
    top = max(r["accuracy"] for r in results)
    return min((r for r in results if r["accuracy"] >= top - TOLERANCE), key=lambda r: (r["offsets"]["missed"], -r["accuracy"]))


def run_grid(lines, cache, base: LoopParams, points: list[dict]) -> list[dict]:
    out = []
    for kw in points:
        r = {"params": kw, **score(lines, cache, replace(base, **kw))}
        out.append(r)
        print(json.dumps(r), file=sys.stderr, flush=True)  # progress: a long run keeps what it measured
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small grid (about a minute)")
    ap.add_argument("--fit-fv", action="store_true", help="print the F/V frication model fitted on the held-out lines, nothing else")
    ap.add_argument("--fv-grid", action="store_true", help="only the F/V override's threshold and run, leave one voice out")
    ap.add_argument("--evidence-grid", action="store_true", help="only the closed / open evidence overrides' thresholds")
    args = ap.parse_args()
    if args.fit_fv:
        print(json.dumps(fit_fv(all_held_out_lines())))
        return
    if args.fv_grid or args.evidence_grid:
        name = "--fv-grid" if args.fv_grid else "--evidence-grid"
        out = {"benchmark": f"lipsync_tune {name}", "load_before": [round(x, 2) for x in os.getloadavg()]}
        t0 = time.perf_counter()
        out.update(fv_grid(args.quick) if args.fv_grid else evidence_grid(args.quick))
        out["seconds"], out["load_after"] = round(time.perf_counter() - t0, 1), [round(x, 2) for x in os.getloadavg()]
        print(json.dumps(out, indent=2))
        return
    out: dict = {"benchmark": "lipsync_tune", "load_before": [round(x, 2) for x in os.getloadavg()],
                 "held_out": {"sentences": len(HELD_OUT_SENTENCES), "voices": [f"{v} at {s} wpm" for v, s in HELD_OUT_VOICES]}}
    t0 = time.perf_counter()
    lines = held_out_lines()
    out["audio_seconds"] = round(sum(u.seconds for u in lines), 1)
    # stage 0: speaker adaptation (it changes the acoustic scores, so each setting rescores the lines)
    adapt = []
    for kw in ADAPT[:2] if args.quick else ADAPT:
        p = replace(DEFAULT, **kw)
        r = {"params": kw, **score(lines, [frame_loglik(decodable(u.samples), p) for u in lines], p)}
        adapt.append(r)
        print(json.dumps(r), file=sys.stderr, flush=True)
    out["stage0_adaptation"] = adapt
    base = replace(DEFAULT, **pick(adapt)["params"])
    # the acoustic scores once, adapted with the defaults' posteriors; the grid reruns the loop on them
    cache = [frame_loglik(decodable(u.samples), base) for u in lines]
    out["default"] = {"params": asdict(DEFAULT), **score(lines, cache, DEFAULT)}
    grid = QUICK if args.quick else GRID
    stage1 = run_grid(lines, cache, base, [dict(zip(grid, v)) for v in itertools.product(*grid.values())])
    best = replace(base, **pick(stage1)["params"])
    stage2 = run_grid(lines, cache, best, [{"class_bias": b} for b in (BIASES[:2] if args.quick else BIASES)])
    best = replace(best, **pick(stage2)["params"])
    stage3 = run_grid(lines, cache, best, FV[:4] if args.quick else FV)  # the frication override (inf: off)
    best = replace(best, **pick(stage3)["params"])
    trigram = run_grid(lines, cache, best, [{"order": 3}])  # the trigram prior at the chosen setting
    out["stage1"], out["stage2_class_bias"], out["stage3_fv"], out["trigram"] = stage1, stage2, stage3, trigram
    out["best"] = {"params": asdict(best), **score(lines, cache, best)}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    out["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
