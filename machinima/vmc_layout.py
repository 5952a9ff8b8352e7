"""The layout side of VMC decoding: walking a bundle's structure, the learned template of a
bundle layout (``_Template``, made by ``learn_template`` from what the general path noted in a
``_Layout``) and the helpers of the single-message path. Kept apart from the decoder
(``machinima.vmc_decode``) so each file has one job; names stay importable from there."""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .osc import BUNDLE_TAG, encode_message
from .skeleton import BONES
from .vmc import ADDR_BLEND, ADDR_BONE, ADDR_ROOT, ADDR_TIME, FLIP7

# --- structure walk -----------------------------------------------------------------------------
_ROOT_TAGS = (",sfffffff", ",sfffffffffffff")  # v2.1 adds scale (3f) and offset (3f)
_BONE_TAGS = ",sfffffff"
_OK_TAGS = (",i", ",iii", ",iiii")


def _walk(data: bytes, start: int, end: int, depth: int, out: list, max_elements: int, max_depth: int) -> str | None:
    """Collect (elem_start, elem_end, timetag, depth) of the messages of a bundle.

    Returns a reason when the rest of the bundle cannot be read (elements before are kept).
    """
    (timetag,) = struct.unpack_from(">Q", data, start + 8)
    pos = start + 16
    while pos < end:
        if len(out) >= max_elements:
            return "too_many_elements"
        if pos + 4 > end:
            return "truncated"
        (n,) = struct.unpack_from(">i", data, pos)
        pos += 4
        if n <= 0 or n % 4 or pos + n > end:
            return "truncated"
        if data.startswith(BUNDLE_TAG, pos):
            if depth + 1 >= max_depth:
                return "nested"
            if n < 16:
                return "truncated"
            why = _walk(data, pos, pos + n, depth + 1, out, max_elements, max_depth)
            if why:
                return why
        else:
            out.append((pos, pos + n, timetag, depth))
        pos += n
    return None


def _arg_words(data: bytes, pos: int, tags: str) -> list[tuple[str, int]] | None:
    """Word indices of each numeric argument of a valid message whose arguments start at
    ``pos`` (None: not templatable)."""
    out: list[tuple[str, int]] = []
    for t in tags[1:]:
        if t in "if":
            out.append((t, pos // 4))
            pos += 4
        elif t in "sS":
            z = data.index(b"\x00", pos)
            pos = (z + 4) & ~3
        elif t in "TFN":
            continue
        else:
            return None  # 8-byte values, blobs, inf markers: general path only
    return out


def _raw_tags(data: bytes, s: int, e: int) -> tuple[str, int]:
    """The type tag string of a message already validated by ``decode_message`` and the
    offset of its first argument (a message without a tag string has tags ',')."""
    z = data.index(b"\x00", s)
    pos = (z + 4) & ~3
    if pos >= e:
        return ",", pos
    z2 = data.index(b"\x00", pos)
    return data[pos:z2].decode("utf-8"), (z2 + 4) & ~3


# --- template (fast) path -----------------------------------------------------------------------
# A packet matches a template when every fixed word is equal: (words & mask) == expected, mask
# zero on every numeric argument and the time tag. Its values must then be finite: one float64
# sum over the gathered values is non-finite exactly when one of them is NaN or inf.
_ALL_BONES = np.arange(len(BONES), dtype=np.int64)  # a template sending every bone in order shares this


@dataclass
class _Template:
    """One valid packet layout: its check mask and where its values are."""

    mask: np.ndarray
    expected: bytes
    expected_words: np.ndarray  # the same as uint32 words (batched checks)
    values: np.ndarray  # word indices of bones (n*7), roots (k*7), times, blendshapes, in that order
    flip: np.ndarray  # per value: the Unity -> canonical mirror for bones and roots, 1 otherwise
    timetag_word: int | None
    bone_index: np.ndarray
    n_roots: int
    root_names: tuple[str, ...]
    n_times: int
    ok_at: tuple[struct.Struct, int] | None  # the OK integers: consecutive words
    blend_names: tuple[str, ...]
    blend_apply: bool
    rejected: Mapping[str, int]
    keys: frozenset
    lead: bool
    trail: bool


# --- single-message path -----------------------------------------------------------------------
_PREFIX_BONE = encode_message(ADDR_BONE, ("", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0))[:32]
_PREFIX_ROOT = encode_message(ADDR_ROOT, ("", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0))[:32]
_PREFIX_BLEND = encode_message(ADDR_BLEND, ("", 0.0))[:24]
_MSG_TIME = encode_message(ADDR_TIME, (0.0,))[:-4]
_BONE_BY_BYTES = {name.encode("ascii"): i for i, name in enumerate(BONES)}
_UNPACK7 = struct.Struct(">7f").unpack_from
_UNPACK1 = struct.Struct(">f").unpack_from
assert tuple(FLIP7.tolist()) == (-1, 1, 1, 1, -1, -1, 1)  # the mirror the single-message path writes out


def _name_end(data: bytes, start: int, n: int, tail: int) -> int:
    """Offset of the values after a padded name at ``start`` when the message has exactly the
    canonical layout (``tail`` value bytes after the name), else -1."""
    z = data.find(b"\x00", start)
    if z <= start:
        return -1
    end = (z + 4) & ~3
    if end + tail != n or data[z:end].strip(b"\x00"):
        return -1
    return end


def _named(data: bytes, start: int, n: int, tail: int) -> tuple[str, int] | None:
    """(the UTF-8 name at ``start``, offset of the values) of a canonical single message."""
    end = _name_end(data, start, n, tail)
    if end < 0:
        return None
    try:
        return bytes(data[start:data.index(b"\x00", start)]).decode("utf-8"), end
    except UnicodeDecodeError:
        return None


class _Layout:
    """What the general path noted about a bundle's words, to learn a template from it."""

    def __init__(self) -> None:
        self.ints: list[int] = []
        self.floats_any: list[int] = []
        self.bone_index: list[int] = []
        self.bone_words: list[list[int]] = []
        self.root_words: list[list[int]] = []
        self.root_names: list[str] = []
        self.time_words: list[int] = []
        self.ok_words: list[int] | None = None
        self.blend_names: list[str] = []
        self.blend_words: list[int] = []
        self.rejected: Counter[str] = Counter()
        self.apply = False
        self.keys: frozenset = frozenset()
        self.lead = False
        self.trail = False
