"""The BVH parser reads what Blender's importer reads (checked against Blender), a few things
more (checked against the same file written plainly), and names the line of every error."""

from __future__ import annotations

import numpy as np
import pytest
from bvh_helpers import DATA, HUMANIK_CM, assert_matches_blender, bvh_text, random_motion

from machinima.bvh import parse_bvh, read_bvh
from machinima.bvhimport import retarget_motion
from machinima.errors import BVHError

SMALL = """HIERARCHY
ROOT Hips
{
\tOFFSET 0 0 0
\tCHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
\tJOINT Spine
\t{
\t\tOFFSET 0 10 0
\t\tCHANNELS 3 Zrotation Xrotation Yrotation
\t\tJOINT Head
\t\t{
\t\t\tOFFSET 0 50 0
\t\t\tCHANNELS 3 Zrotation Xrotation Yrotation
\t\t\tEnd Site
\t\t\t{
\t\t\t\tOFFSET 0 10 0
\t\t\t}
\t\t}
\t\tJOINT LeftShoulder
\t\t{
\t\t\tOFFSET 5 40 0
\t\t\tCHANNELS 0
\t\t\tJOINT LeftArm
\t\t\t{
\t\t\t\tOFFSET 10 0 0
\t\t\t\tCHANNELS 3 Zrotation Xrotation Yrotation
\t\t\t\tJOINT LeftHand_End
\t\t\t\t{
\t\t\t\t\tOFFSET 50 0 0
\t\t\t\t\tCHANNELS 3 Zrotation Xrotation Yrotation
\t\t\t\t\tEnd Site
\t\t\t\t\t{
\t\t\t\t\t\tOFFSET 0 0 0
\t\t\t\t\t}
\t\t\t\t}
\t\t\t}
\t\t}
\t}
}
MOTION
Frames: 3
Frame Time: 0.0333333
1 90 2 10 20 30 5 -5 15 30 40 -50 60 -70 80 11 22 33
2 91 3 -90 45 0 90 0 90 -30 90 10 0 0 0 -45 90 45
3 92 4 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
"""


def _variant(text: str) -> str:
    """The same file as Blender reads it too: blank lines (also between MOTION and Frames:),
    CRLF, End Site spelled in other cases and with a name, a joint name with spaces."""
    text = text.replace("MOTION\n", "MOTION\n\n\n").replace("HIERARCHY\n", "HIERARCHY\n\n")
    text = text.replace("\t\t\tEnd Site", "\t\t\tEnd site", 1).replace("\t\t\t\t\tEnd Site", "\t\t\t\t\tEND SITE HandTip", 1)
    text = text.replace("JOINT LeftArm", "JOINT Left Arm")
    return text.replace("\n", "\r\n")


def test_blender_readable_variants_read_as_blender_reads_them(tmp_path):
    plain = parse_bvh(SMALL)
    assert plain.names == ["Hips", "Spine", "Head", "LeftShoulder", "LeftArm", "LeftHand_End"]
    assert plain.channels[3] == [] and plain.channels[5][0] == "Zrotation"  # 0 channels; channels on an end joint
    path = tmp_path / "variant.bvh"
    path.write_bytes(_variant(SMALL).encode())
    motion = read_bvh(path)
    assert motion.names[4] == "Left_Arm"  # spaces joined with "_", as Blender names the bone
    assert np.array_equal(motion.data, plain.data) and np.array_equal(motion.offsets, plain.offsets)
    result = retarget_motion(motion, {"Hips": "Hips", "Spine": "Spine", "Head": "Head", "LeftShoulder": "LeftShoulder",
                                      "Left_Arm": "LeftUpperArm", "LeftHand_End": "LeftHand"}, units="cm")
    assert_matches_blender(result, path, frames=[0, 1, 2])


def test_more_than_blender_reads(tmp_path):
    plain = parse_bvh(SMALL)
    # braces on the keyword's line, old-Mac CR line ends, a 0-channel End Site with CHANNELS 0
    squeezed = SMALL.replace("ROOT Hips\n{", "ROOT Hips {").replace("\t\t\tEnd Site\n\t\t\t{", "\t\t\tEnd Site {\n\t\t\tCHANNELS 0")
    for text in (squeezed, SMALL.replace("\n", "\r")):
        m = parse_bvh(text)
        assert m.names == plain.names and np.array_equal(m.data, plain.data) and m.end_sites == plain.end_sites
    # a joint without a CHANNELS line has none
    m = parse_bvh(SMALL.replace("\t\t\tCHANNELS 0\n", ""))
    assert m.channels[3] == []
    # channels inside an End Site: read as an extra joint so the motion columns line up
    head, rows = SMALL.split("Frame Time: 0.0333333\n")
    rows = [r.split() for r in rows.splitlines()]
    extra = head.replace("\t\t\t\tOFFSET 0 10 0\n", "\t\t\t\tOFFSET 0 10 0\n\t\t\t\tCHANNELS 1 Yrotation\n") + "Frame Time: 0.0333333\n"
    extra += "".join(" ".join(r[:12] + [str(7 + k)] + r[12:]) + "\n" for k, r in enumerate(rows))
    m = parse_bvh(extra)
    assert m.names[3] == "Head_end" and m.parents[3] == 2 and list(m.data[:, 12]) == [7, 8, 9]
    assert np.array_equal(np.delete(m.data, 12, axis=1), plain.data)
    # duplicate names get Blender's suffixes; a UTF-8 byte order mark is not a token
    dup = parse_bvh(SMALL.replace("JOINT Head", "JOINT Spine"))
    assert dup.names[:3] == ["Hips", "Spine", "Spine.001"]
    path = tmp_path / "bom.bvh"
    path.write_bytes(b"\xef\xbb\xbf" + SMALL.encode())
    assert read_bvh(path).names == plain.names
    # more rows than declared frames: the declared ones, and a warning naming the line
    m = parse_bvh(SMALL + "4 93 5 " + "0 " * 15 + "\n")
    assert m.frames == 3 and m.warnings == ["line 46: 1 motion row(s) after the 3 declared frames ignored"]


def test_real_file_with_a_blank_line_between_motion_and_frames():
    text = (DATA / "bvhio_example.bvh").read_text()
    assert "MOTION\n\nFrames:" in text.replace("\r\n", "\n")
    assert parse_bvh(text).frames == 2


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda t: t.replace("1 90 2 10 20 30", "1 90 2 10 20", 1), "line 43: 17 values, the hierarchy declares 18 channels"),
        (lambda t: t.replace("2 91 3 -90", "2 91 3 x90", 1), "line 44: motion value 'x90' is not a number"),
        (lambda t: t.replace("3 92 4 0", "3 92 4 inf", 1), "line 45: motion value 'inf' is NaN or infinite"),
        (lambda t: t.replace("Frames: 3", "Frames: 4"), "line 45: BVH declares 4 frames but has 3: truncated file"),
        (lambda t: t.replace("Frames: 3", "Frames 3"), "line 41: expected 'Frames: N'"),
        (lambda t: t.replace("Frame Time: 0.0333333", "Frame Time: fast"), "line 42: frame time 'fast' is not a number"),
        (lambda t: t.replace("OFFSET 0 10 0\n\t\tCHANNELS", "OFFSET 0 1O 0\n\t\tCHANNELS"), "line 8: offset '1O' is not a number"),
        (lambda t: t.replace("CHANNELS 0", "CHANNELS 2 Xrotation"), "line 22: CHANNELS 2 lists 1 channel names"),
        (lambda t: t.replace("CHANNELS 0", "CHANNELS 1 Qrotation"), "line 22: unknown channel 'Qrotation'"),
        (lambda t: t.replace("CHANNELS 0", "CHANNELS 7"), "line 22: channel count 7 out of range"),
        (lambda t: t.replace("\t\tJOINT Head\n\t\t{", "\t\tJOINT Head\n\t\t(", 1), "line 11: expected '{' after line 10"),
        (lambda t: t.replace("\t\t\tOFFSET 0 50 0\n", "\t\t\tOFFSETS 0 50 0\n"), "line 12: unexpected 'OFFSETS' in joint 'Head'"),
        (lambda t: t.split("MOTION")[0][:-40], "the file ends where"),
        (lambda t: t.replace("MOTION", "MOTIONS"), "line 40: expected MOTION after the hierarchy"),
        (lambda t: "", "no MOTION section"),
    ],
)
def test_errors_name_the_line(edit, match):
    with pytest.raises(BVHError, match=match):
        parse_bvh(edit(SMALL))


def test_read_errors_name_the_file(tmp_path):
    bad = tmp_path / "walk.bvh"
    bad.write_text(SMALL.replace("2 91 3 -90", "2 91 3 x90", 1))
    with pytest.raises(BVHError, match="^walk.bvh: line 44: motion value 'x90'"):
        read_bvh(bad)
    with pytest.raises(BVHError, match="is a folder"):
        read_bvh(tmp_path)
    bad.write_bytes(b"\x00\x01\xff")
    with pytest.raises(BVHError, match="not a text BVH file"):
        read_bvh(bad)


def test_constructed_file_round_trips_through_the_parser():
    motion = random_motion(HUMANIK_CM, n=5)
    m = parse_bvh(bvh_text(HUMANIK_CM, motion, newline="\r\n"))
    assert m.frames == 5 and m.data.shape[1] == 3 + 3 * len(HUMANIK_CM)
    assert np.allclose(m.data[:, :3], motion[:, :3], atol=1e-6)


def test_position_channels_on_a_joint_read_as_blender_reads_them(tmp_path):
    """A non-root joint with some position channels: they replace the offset, a component
    without a channel is 0 (Blender's reading), and Blender agrees on every position."""
    text = SMALL.replace("\t\tOFFSET 0 10 0\n\t\tCHANNELS 3 Zrotation Xrotation Yrotation",
                         "\t\tOFFSET 0 10 0\n\t\tCHANNELS 5 Yposition Zposition Zrotation Xrotation Yrotation")
    head, rows = text.split("Frame Time: 0.0333333\n")
    rows = [r.split() for r in rows.splitlines()]
    text = head + "Frame Time: 0.0333333\n" + "".join(" ".join(r[:6] + [str(11 + k), str(k - 1)] + r[6:]) + "\n" for k, r in enumerate(rows))
    path = tmp_path / "pos.bvh"
    path.write_text(text)
    motion = read_bvh(path)
    trans, _ = motion.local_transforms()
    assert np.allclose(trans[:, 1], [[0, 11, -1], [0, 12, 0], [0, 13, 1]])
    result = retarget_motion(motion, {"Hips": "Hips", "Spine": "Spine", "Head": "Head", "LeftArm": "LeftUpperArm"}, units="cm")
    assert_matches_blender(result, path, frames=[0, 1, 2])
