"""Bone names for exported armatures (no bpy): the canonical Unity HumanBodyBones names, or the
VRM humanoid names that VRM tools (UniVRM, the VRM add-on for Blender, VSeeFace, VRChat's VRM
converters) map onto a humanoid without a hand-made bone map.

VRM 0.x names are the Unity names in lowerCamelCase. VRM 1.0 renamed the thumb: Unity's
``ThumbProximal/Intermediate/Distal`` are VRM 1.0's ``thumbMetacarpal/Proximal/Distal`` (the
same three joints, counted from the wrist).
"""

from __future__ import annotations

from machinima import skeleton

from .errors import ExportError

BONE_NAMINGS = ("canonical", "vrm0", "vrm1")

_VRM1_THUMB = {"ThumbProximal": "ThumbMetacarpal", "ThumbIntermediate": "ThumbProximal"}


def _lower_camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def bone_names(naming: str = "canonical") -> dict[str, str]:
    """{canonical bone: exported name} for every canonical bone."""
    if naming not in BONE_NAMINGS:
        raise ExportError(f"unknown bone naming {naming!r}; one of {', '.join(BONE_NAMINGS)}")
    out = {}
    for bone in skeleton.BONES:
        name = bone
        if naming == "vrm1":
            for old, new in _VRM1_THUMB.items():
                if bone.endswith(old):
                    name = bone[: -len(old)] + new
        out[bone] = name if naming == "canonical" else _lower_camel(name)
    return out
