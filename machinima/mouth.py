"""Mouth channel names of a take's blend streams: lip sync writes them, Blender and the engine
bridge read them, so they are defined once here.

``blend/<performer>-mouth`` holds VRM ``A I U E O`` weights, a one-hot Rhubarb shape
(``rhubarb_A`` ... ``rhubarb_X``) and the 15 Oculus viseme weights (``viseme_sil`` ...
``viseme_ou``, the names VRChat's ``vrc.v_*`` shape keys follow).
"""

from __future__ import annotations

VRM_CHANNELS = ("A", "I", "U", "E", "O")
RHUBARB_SHAPES = ("A", "B", "C", "D", "E", "F", "G", "H", "X")
OCULUS_VISEMES = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou")
VISEME_PREFIX = "viseme_"
BLEND_CHANNELS = VRM_CHANNELS + tuple(f"rhubarb_{s}" for s in RHUBARB_SHAPES) + tuple(f"{VISEME_PREFIX}{v}" for v in OCULUS_VISEMES)


def vrchat_key(viseme: str) -> str:
    """VRChat's shape key for an Oculus viseme (``aa`` -> ``vrc.v_aa``)."""
    return f"vrc.v_{viseme.lower()}"
