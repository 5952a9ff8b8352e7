"""A frame's control images as a look asks for them, from a source's passes or from a picture.

One place decides where each control comes from, for the stylize pipeline and for dreams:

- ``depth``, ``normal``: the source's pass (exact) when it has one; a take (rendered passes)
  missing it is an error to fix, unless the control names an ``annotator`` (then, and for
  footage or a picture without passes, ``stylize.annotators`` makes it from the picture)
- ``pose``, ``mask``: the pass (no picture-made fallback: a wrong skeleton is worse than none)
- ``lineart``, ``softedge``: controlnet_aux annotators or their OpenCV fallback
- ``canny``: OpenCV Canny; ``rgb``: the picture as is
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import controls as C
from .annotators import ANNOTATED, Annotator, build_annotator
from .errors import ControlError
from .look import ControlSpec, Look
from .sources import Source

PASS_OF_KIND = {"depth": "depth", "pose": "pose", "normal": "normal"}


class ControlMaker:
    """Control images of one look over one source (``None``: a picture without passes)."""

    def __init__(self, look: Look, source: Source | None, *, config: Any = None) -> None:
        self.look = look
        self.source = source
        self.config = config
        self._annotators: dict[tuple[str, str], Annotator] = {}

    def from_pass(self, c: ControlSpec) -> bool:
        """Whether control ``c`` comes from the source's pass (exact) rather than from the picture."""
        name = PASS_OF_KIND.get(c.kind)
        if name is None or self.source is None:
            return name == "pose"
        if c.kind == "pose":
            return True
        if c.annotator:
            return False
        return self.source.has(name) or self.source.rendered

    def pass_names(self) -> list[str]:
        """The passes the controls read (their files go into each frame's fingerprint)."""
        names = [PASS_OF_KIND[c.kind] for c in self.look.controls if self.from_pass(c)]
        return names + [f"mask/{c.options.get('mask', '')}" for c in self.look.controls if c.kind == "mask"]

    def annotator(self, c: ControlSpec) -> Annotator:
        key = (c.kind, c.annotator)
        if key not in self._annotators:
            self._annotators[key] = build_annotator(c.kind, c.annotator, options=c.options, config=self.config)
        return self._annotators[key]

    def check(self, frame: int) -> None:
        """Every control can be made (passes present, annotators loadable): fail before any work."""
        for c in self.look.controls:
            if c.kind == "mask":
                if not c.options.get("mask"):
                    raise ControlError("a mask control needs options.mask = the mask's name (a performer or object group)")
                if self.source is None:
                    raise ControlError("a mask control needs a take's mask pass")
                self.source.raw(f"mask/{c.options['mask']}", frame)
            elif self.from_pass(c):
                if self.source is None:
                    raise ControlError(f"a {c.kind} control needs a take's {c.kind} pass", hint="give a take, or drop the control")
                try:
                    self.source.raw(PASS_OF_KIND[c.kind], frame)
                except ControlError as exc:
                    if c.kind == "pose":
                        raise
                    raise ControlError(str(exc.args[0]), hint=f"render the {c.kind} pass, or set the control's annotator "
                                       "(a weights folder, or 'opencv') to make it from the picture") from None
            elif c.kind in ANNOTATED:
                self.annotator(c)

    def make(self, frame: int | None, image: np.ndarray, *, depth_range: tuple[float, float] | None = None) -> dict[str, np.ndarray]:
        """Controls of ``frame`` (passes) and ``image`` (picture-made kinds). ``depth_range``:
        the [near, far] metres a depth pass is normalised over (one per shot: no breathing)."""
        out: dict[str, np.ndarray] = {}
        for c in self.look.controls:
            if c.kind in ANNOTATED and not self.from_pass(c):
                out[c.kind] = self.annotator(c)(image)
            elif c.kind == "depth":
                near, far = c.options.get("near"), c.options.get("far")
                depth = self.source.raw("depth", frame)
                if near is None or far is None:
                    near, far = depth_range or C.depth_range([depth])
                out["depth"] = C.depth_control(depth, float(near), float(far))
            elif c.kind == "pose":
                out["pose"] = C._rgb3(self.source.raw("pose", frame))
            elif c.kind == "normal":
                out["normal"] = C.normal_control(self.source.raw("normal", frame))
            elif c.kind == "mask":
                out["mask"] = C.mask_control(self.source.raw(f"mask/{c.options.get('mask', '')}", frame))
            else:
                out[c.kind] = C.image_control(c.kind, image, c.options)
        return out

    def describe(self) -> list[dict[str, Any]]:
        """Where each control image comes from (params.json): a pass, an annotator (and whether it
        is the weight-free fallback), or the picture itself."""
        out: list[dict[str, Any]] = []
        for c in self.look.controls:
            if c.kind == "mask":
                out.append({"kind": c.kind, "from": f"mask/{c.options.get('mask', '')} pass"})
            elif self.from_pass(c):
                out.append({"kind": c.kind, "from": f"{PASS_OF_KIND[c.kind]} pass"})
            elif c.kind in ANNOTATED:
                out.append({**self.annotator(c).describe(), "from": "picture"})
            else:
                out.append({"kind": c.kind, "from": "picture", "annotator": "OpenCV Canny" if c.kind == "canny" else "the picture as is"})
        return out

    def warnings(self) -> list[str]:
        """One line per control made by a weight-free fallback."""
        return [self.annotator(c).warning for c in self.look.controls
                if c.kind in ANNOTATED and not self.from_pass(c) and self.annotator(c).fallback]
