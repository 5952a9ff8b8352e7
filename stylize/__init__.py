"""stylize: diffusion (or classical) post for takes and footage.

Python API::

    from stylize import stylize_frames, load_look
    out = stylize_frames(frames, load_look("painted"))   # numpy in, numpy out

Commands: ``machinima stylize run TAKE --look look.toml``, ``machinima stylize qc STEP``.
See docs/stylize.md.
"""

from .errors import ControlError, LookError, ModelMissingError, SourceError, StylizeError
from .look import Look, load_look


def stylize_frames(*args, **kwargs):
    """Numpy frames (HxWx3 uint8) in, stylized frames out. See ``stylize.runner.stylize_frames``."""
    from .runner import stylize_frames as _sf

    return _sf(*args, **kwargs)


__all__ = ["stylize_frames", "load_look", "Look", "StylizeError", "LookError", "ModelMissingError", "ControlError", "SourceError"]
