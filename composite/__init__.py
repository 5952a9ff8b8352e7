"""Depth re-integration: filmed actors (plates) composited into rendered takes, occluded and lit by the set.

Small modules of pure array logic (``keyer``, ``placement``, ``ztest``, ``lighting``,
``lightwrap``, ``colormatch``, ``grain``, ``shadow``, ``timing``), one per-frame ``chain``, one
readable ``pipeline`` with numbered steps, and the ``machinima composite`` command (``cli``).
Heavy imports (cv2, torch, transformers) stay inside the functions that need them.
"""

from .errors import CompositeError, ModelError, PassMismatchError, PlacementError, PlateError, SettingsError

__all__ = ["CompositeError", "ModelError", "PassMismatchError", "PlacementError", "PlateError", "SettingsError"]
