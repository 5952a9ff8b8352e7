"""Multi-layer EXR files as Blender writes them, read into one array per pass (no bpy).

Blender 4.x writes one part whose channels are named ``<view layer>.<pass>.<channel>``; Blender
5.x writes one part per pass with the same channel names. Either way ``read_passes`` returns
``{pass: HxWxC float32}`` with channels in R, G, B, A (or X, Y, Z, W) order, under the pass's
short name (``DiffDir`` and ``Diffuse Direct`` both come back as ``DiffDir``).

Reading needs the OpenEXR Python bindings (``pip install openexr``, in the ``blender`` extra);
OpenCV reads only the plain R, G, B, A channels of an EXR.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import RenderError

ORDER = {c: i for i, c in enumerate("RGBAXYZWV")}
ALIASES = {"Diffuse Direct": "DiffDir", "Diffuse Indirect": "DiffInd", "Diffuse Color": "DiffCol", "Combined": "Combined",
           "Vector": "Vector", "Noisy Image": "Noisy Image"}


def _openexr():
    try:
        import OpenEXR
    except ImportError:
        raise RenderError("the light and motion passes need the OpenEXR Python bindings",
                          hint="pip install 'machinima[blender]' (or openexr==3.5.3)") from None
    return OpenEXR


def read_passes(path: str | Path) -> dict[str, np.ndarray]:
    """{pass short name: HxWxC float32} of a multi-layer EXR (one part or one part per pass)."""
    OpenEXR = _openexr()
    groups: dict[str, dict[str, np.ndarray]] = {}
    try:
        with OpenEXR.File(str(path), separate_channels=True) as f:
            for part in f.parts:
                for full, ch in part.channels.items():
                    pieces = full.split(".")
                    layer = pieces[-2] if len(pieces) >= 2 else "Combined"
                    groups.setdefault(ALIASES.get(layer, layer), {})[pieces[-1]] = np.asarray(ch.pixels, np.float32)
    except (OSError, RuntimeError) as exc:
        raise RenderError(f"cannot read the multi-layer EXR {path}: {exc}") from None
    return {name: np.stack([chans[c] for c in sorted(chans, key=lambda c: ORDER.get(c, 99))], axis=-1)
            for name, chans in groups.items()}

