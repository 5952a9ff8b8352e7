"""Deforum-style keyframe schedules, parsed and evaluated safely (no Python ``eval``).

    0:(1.0), 30:(1.02 + 0.01*sin(t/4)), 90:(1.0)

Each entry is ``frame:(expression)``. An expression may use numbers, ``t`` (the frame being
evaluated), ``pi``, ``e``, the operators ``+ - * / % **`` and unary minus, parentheses, and the
functions ``sin cos tan asin acos atan abs sqrt exp log log10 floor ceil round min max pow
clamp``. Anything else (names, attribute access, calls of other functions, strings, huge
exponents) is refused with the position of the offending token.

Between keyframes the value is interpolated (``linear`` default, ``cubic`` Catmull-Rom through
the neighbours, or ``step``); each keyframe's expression is evaluated at the frame being asked
for, so ``30:(1.02+0.01*sin(t/4))`` keeps oscillating after frame 30. Prompt schedules use the
same ``frame: text`` form and hold each text until the next key.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Union

import numpy as np

from .errors import StylizeError

MAX_LENGTH = 4000
MAX_DEPTH = 40
MAX_EXPONENT = 64.0


class ScheduleError(StylizeError):
    """A schedule string that cannot be parsed or evaluated (gives the position)."""


FUNCTIONS: dict[str, tuple[int, Callable[..., np.ndarray]]] = {
    "sin": (1, np.sin), "cos": (1, np.cos), "tan": (1, np.tan), "asin": (1, np.arcsin), "acos": (1, np.arccos),
    "atan": (1, np.arctan), "abs": (1, np.abs), "sqrt": (1, np.sqrt), "exp": (1, np.exp), "log": (1, np.log),
    "log10": (1, np.log10), "floor": (1, np.floor), "ceil": (1, np.ceil), "round": (1, np.round),
    "min": (2, np.minimum), "max": (2, np.maximum), "pow": (2, None), "clamp": (3, None),
}
CONSTANTS = {"pi": math.pi, "e": math.e}


# --- AST ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Var:
    pass


@dataclass(frozen=True)
class Unary:
    op: str
    arg: "Node"


@dataclass(frozen=True)
class Binary:
    op: str
    left: "Node"
    right: "Node"
    pos: int


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple["Node", ...]
    pos: int


Node = Union[Num, Var, Unary, Binary, Call]

_TOKEN = re.compile(r"\s*(?:(?P<num>\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z_0-9]*)|(?P<op>\*\*|[-+*/%(),])|(?P<bad>\S))")


def _tokens(text: str, base: int = 0) -> list[tuple[str, str, int]]:
    out = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            break
        kind = m.lastgroup
        val = m.group(kind)
        start = m.start(kind) + base
        if kind == "bad":
            raise ScheduleError(f"character {val!r} at position {start} is not allowed in a schedule expression")
        out.append((kind, val, start))
        pos = m.end()
    out.append(("end", "", len(text) + base))
    return out


class _Parser:
    """Precedence climbing: + - < * / % < unary - < ** (right-assoc) < atoms."""

    def __init__(self, text: str, base: int) -> None:
        self.toks = _tokens(text, base)
        self.i = 0
        self.depth = 0

    def peek(self) -> tuple[str, str, int]:
        return self.toks[self.i]

    def next(self) -> tuple[str, str, int]:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, val: str) -> None:
        kind, v, pos = self.next()
        if v != val:
            raise ScheduleError(f"expected {val!r} at position {pos}, found {v or 'the end'!r}")

    def parse(self) -> Node:
        node = self.expr()
        kind, v, pos = self.peek()
        if kind != "end":
            raise ScheduleError(f"unexpected {v!r} at position {pos}")
        return node

    def _nest(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ScheduleError(f"expression nested too deeply at position {pos}")

    def expr(self) -> Node:
        node = self.term()
        while self.peek()[1] in ("+", "-"):
            _, op, pos = self.next()
            node = Binary(op, node, self.term(), pos)
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.peek()[1] in ("*", "/", "%"):
            _, op, pos = self.next()
            node = Binary(op, node, self.unary(), pos)
        return node

    def unary(self) -> Node:
        if self.peek()[1] in ("-", "+"):
            _, op, pos = self.next()
            self._nest(pos)
            node = self.unary()
            self.depth -= 1
            return Unary(op, node)
        return self.power()

    def power(self) -> Node:
        base = self.atom()
        if self.peek()[1] == "**":
            _, _, pos = self.next()
            self._nest(pos)
            exp = self.unary()
            self.depth -= 1
            return Binary("**", base, exp, pos)
        return base

    def atom(self) -> Node:
        kind, v, pos = self.next()
        if kind == "num":
            return Num(float(v))
        if v == "(":
            self._nest(pos)
            node = self.expr()
            self.expect(")")
            self.depth -= 1
            return node
        if kind == "name":
            if v == "t":
                return Var()
            if v in CONSTANTS:
                return Num(CONSTANTS[v])
            if v in FUNCTIONS:
                if self.peek()[1] != "(":
                    raise ScheduleError(f"function {v!r} at position {pos} must be called, e.g. {v}(t)")
                self.next()
                self._nest(pos)
                args = [self.expr()]
                while self.peek()[1] == ",":
                    self.next()
                    args.append(self.expr())
                self.expect(")")
                self.depth -= 1
                want = FUNCTIONS[v][0]
                if len(args) != want:
                    raise ScheduleError(f"{v}() at position {pos} takes {want} argument(s), got {len(args)}")
                return Call(v, tuple(args), pos)
            raise ScheduleError(f"name {v!r} at position {pos} is not allowed (use t, pi, e and the listed functions)")
        raise ScheduleError(f"unexpected {v or 'end of expression'!r} at position {pos}")


def parse_expression(text: str, base: int = 0) -> Node:
    if len(text) > MAX_LENGTH:
        raise ScheduleError(f"expression longer than {MAX_LENGTH} characters")
    return _Parser(text, base).parse()


def evaluate(node: Node, t: np.ndarray) -> np.ndarray:
    """Vectorised over frames ``t``; non-finite results raise with the frame."""
    with np.errstate(all="ignore"):
        out = _eval(node, np.asarray(t, dtype=np.float64))
    out = np.broadcast_to(out, np.shape(t)).astype(np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        frame = np.asarray(t).reshape(-1)[np.argmax(bad.reshape(-1))] if np.ndim(t) else t
        raise ScheduleError(f"expression is not a finite number at frame {float(frame):g} (division by zero, log of a negative...)")
    return out


def _eval(node: Node, t: np.ndarray) -> np.ndarray:
    if isinstance(node, Num):
        return np.float64(node.value)
    if isinstance(node, Var):
        return t
    if isinstance(node, Unary):
        v = _eval(node.arg, t)
        return -v if node.op == "-" else v
    if isinstance(node, Binary):
        a, b = _eval(node.left, t), _eval(node.right, t)
        if node.op == "+":
            return a + b
        if node.op == "-":
            return a - b
        if node.op == "*":
            return a * b
        if node.op == "/":
            return a / b
        if node.op == "%":
            return np.mod(a, b)
        if np.any(np.abs(b) > MAX_EXPONENT):
            raise ScheduleError(f"exponent at position {node.pos} is larger than {MAX_EXPONENT:g}")
        return np.power(a, b)
    if isinstance(node, Call):
        args = [_eval(a, t) for a in node.args]
        if node.name == "pow":
            if np.any(np.abs(args[1]) > MAX_EXPONENT):
                raise ScheduleError(f"exponent of pow() at position {node.pos} is larger than {MAX_EXPONENT:g}")
            return np.power(args[0], args[1])
        if node.name == "clamp":
            return np.clip(args[0], args[1], args[2])
        return FUNCTIONS[node.name][1](*args)
    raise ScheduleError("invalid expression tree")  # pragma: no cover


# --- schedules ------------------------------------------------------------------------------
@dataclass
class Schedule:
    """Keyframes (frame -> expression AST) with an interpolation rule."""

    keys: list[tuple[int, Node]]
    interpolation: str = "linear"
    text: str = ""

    def __call__(self, frames: np.ndarray | int) -> np.ndarray:
        f = np.atleast_1d(np.asarray(frames, dtype=np.float64))
        kf = np.array([k for k, _ in self.keys], dtype=np.float64)
        vals = np.stack([evaluate(node, f) for _, node in self.keys])  # (K, N): every key at every frame
        idx = np.clip(np.searchsorted(kf, f, side="right") - 1, 0, len(kf) - 1)
        cols = np.arange(f.shape[0])
        v0 = vals[idx, cols]
        if self.interpolation == "step" or len(kf) == 1:
            out = v0
        else:
            nxt = np.clip(idx + 1, 0, len(kf) - 1)
            span = np.where(kf[nxt] > kf[idx], kf[nxt] - kf[idx], 1.0)
            w = np.clip((f - kf[idx]) / span, 0.0, 1.0)
            w = np.where(nxt == idx, 0.0, w)
            v1 = vals[nxt, cols]
            if self.interpolation == "linear":
                out = v0 + (v1 - v0) * w
            else:  # cubic: Catmull-Rom through the neighbouring keys
                vm = vals[np.clip(idx - 1, 0, len(kf) - 1), cols]
                vp = vals[np.clip(idx + 2, 0, len(kf) - 1), cols]
                w2, w3 = w * w, w * w * w
                out = 0.5 * ((2 * v0) + (-vm + v1) * w + (2 * vm - 5 * v0 + 4 * v1 - vp) * w2 + (-vm + 3 * v0 - 3 * v1 + vp) * w3)
        return out if np.ndim(frames) else out[:1]

    def at(self, frame: int) -> float:
        return float(self(np.array([frame]))[0])


_KEY = re.compile(r"\s*(-?\d+)\s*:\s*")


def _split_entries(text: str) -> list[tuple[int, str, int]]:
    """(frame, expression text, offset of the expression) for each ``frame:(expr)`` entry."""
    entries = []
    pos = 0
    while pos < len(text):
        m = _KEY.match(text, pos)
        if not m:
            raise ScheduleError(f"expected 'frame:(expression)' at position {pos}")
        frame = int(m.group(1))
        if frame < 0:
            raise ScheduleError(f"keyframe {frame} at position {m.start(1)} is negative")
        pos = m.end()
        if pos >= len(text) or text[pos] != "(":
            raise ScheduleError(f"expected '(' after '{frame}:' at position {pos}")
        depth, start = 0, pos
        while pos < len(text):
            if text[pos] == "(":
                depth += 1
            elif text[pos] == ")":
                depth -= 1
                if depth == 0:
                    break
            pos += 1
        if depth != 0:
            raise ScheduleError(f"unbalanced parentheses in the entry starting at position {start}")
        entries.append((frame, text[start + 1:pos], start + 1))
        pos += 1
        m2 = re.compile(r"\s*(,|$)").match(text, pos)
        if not m2 or (m2.group(1) == "" and m2.end() < len(text)):
            raise ScheduleError(f"expected ',' between entries at position {pos}")
        pos = m2.end()
    return entries


def parse_schedule(text: str | float | int, interpolation: str = "linear") -> Schedule:
    """Parse ``"0:(1.0), 30:(1.02+0.01*sin(t/4))"``; a bare number is a constant schedule."""
    if interpolation not in ("linear", "cubic", "step"):
        raise ScheduleError(f"interpolation {interpolation!r}: use linear, cubic or step")
    if isinstance(text, (int, float)):
        return Schedule([(0, Num(float(text)))], interpolation, str(text))
    text = str(text)
    if len(text) > MAX_LENGTH:
        raise ScheduleError(f"schedule longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise ScheduleError("empty schedule")
    entries = _split_entries(text)
    keys: dict[int, Node] = {}
    for frame, expr, offset in entries:
        if frame in keys:
            raise ScheduleError(f"keyframe {frame} appears twice")
        keys[frame] = parse_expression(expr, offset)
    return Schedule(sorted(keys.items(), key=lambda kv: kv[0]), interpolation, text)


def parse_prompt_schedule(text: str | dict[int, str]) -> Callable[[int], str]:
    """``"0: a forest at dawn | 48: a flooded city"`` (or a dict) -> prompt at frame, held."""
    if isinstance(text, dict):
        keys = sorted((int(k), str(v)) for k, v in text.items())
    else:
        keys = []
        for part in str(text).split("|"):
            m = re.match(r"\s*(\d+)\s*:\s*(.*\S)\s*$", part, re.S)
            if not m:
                raise ScheduleError(f"prompt entry {part.strip()!r} is not 'frame: text'")
            keys.append((int(m.group(1)), m.group(2)))
        keys.sort()
    if not keys:
        raise ScheduleError("empty prompt schedule")

    def at(frame: int) -> str:
        current = keys[0][1]
        for k, v in keys:
            if k <= frame:
                current = v
        return current

    return at


def seeds(behaviour: str, base: int, frames: np.ndarray, schedule: Schedule | None = None) -> np.ndarray:
    """Per-frame seeds: ``fixed`` (same every frame), ``iter`` (+1 a frame), ``random`` (drawn
    from ``base``, reproducible), ``schedule`` (rounded values of a schedule)."""
    f = np.asarray(frames, dtype=np.int64)
    if behaviour == "fixed":
        return np.full(f.shape, base, np.int64)
    if behaviour == "iter":
        return base + f
    if behaviour == "random":
        return np.array([np.random.default_rng([base, int(x)]).integers(0, 2**31 - 1) for x in f], np.int64)
    if behaviour == "schedule":
        if schedule is None:
            raise ScheduleError("seed behaviour 'schedule' needs a seed schedule")
        return np.round(schedule(f)).astype(np.int64)
    raise ScheduleError(f"seed behaviour {behaviour!r}: use fixed, iter, random or schedule")
