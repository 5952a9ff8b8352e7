"""Editorial hand-off through OpenTimelineIO: circled takes out as .otio / CMX 3600 EDL / FCP 7
XML (OTIO's own adapters), read back with OTIO and each adapter; source ranges and timecodes
against the take's own timecode at every standard rate; a hand-written EDL marks the takes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from machinima import editorial
from machinima.errors import EditorialError
from machinima.fsutil import atomic_write_json
from machinima.imageseq import frame_path, write_image, write_video
from machinima.take import Take, read_manifest
from machinima.timecode import Timecode

otio = pytest.importorskip("opentimelineio")

# rate, drop frame: the slate starts 10 frames before a minute boundary, where drop frame skips labels
RATES = [("23.976", False), ("24", False), ("25", False), ("29.97", True), ("29.97", False), ("30", False), ("48", False), ("50", False),
         ("59.94", True), ("59.94", False), ("60", False)]


def _tc_in(fps: str, df: bool) -> str:
    nominal = round(float(fps))
    return f"00:00:59{';' if df else ':'}{nominal - 10:02d}"


def _frames(folder, frames):
    img = np.full((16, 16, 3), 90, np.uint8)
    for f in frames:
        write_image(frame_path(folder, f), img)


def make_take(root, shot: str, fps: str, tc_in: str, *, rendered=range(0, 24), step: tuple[str, str, range] | None = None) -> Take:
    """A finished take with rendered frames and optionally a post step (id, kind, frames) with an mp4."""
    take = Take.create(root, production="film", scene="s1", shot=shot, fps=fps, timecode_in=tc_in)
    take.finalize()
    _frames(take.passes_dir("rgb"), rendered)
    if step:
        sid, kind, frames = step
        atomic_write_json(take.post_dir(sid) / "params.json", {"step": kind, "step_id": sid, "params": {}})
        _frames(take.post_dir(sid) / "frames", frames)
        write_video(take.post_dir(sid) / f"{sid}.mp4", (np.full((16, 16, 3), 40, np.uint8) for _ in frames), fps=fps)
    return Take.open(take.path)


@pytest.mark.parametrize("fps,df", RATES, ids=[f"{r}{'df' if d else ''}" for r, d in RATES])
def test_cut_round_trips_timecode_true_through_every_adapter(tmp_path, fps, df):
    root = tmp_path / "takes"
    tc_in = _tc_in(fps, df)
    a = make_take(root, "a", fps, tc_in, rendered=range(3, 27))  # a partial render: frames 3..26
    b = make_take(root, "b", fps, tc_in, step=("stylize-ink", "stylize", range(5, 25)))
    editorial.set_circle(a.path, "render")
    editorial.set_circle(b.path, "stylize", "the ink look")
    takes = editorial.scene_takes(root, "s1")
    picks = [(t, editorial.find_media(t, t.manifest.circle["version"])) for t in takes]
    assert [(m.version, m.kind, m.first, m.count) for _, m in picks] == [("render", "frames", 3, 24), ("stylize-ink", "mp4", 5, 20)]
    timeline = editorial.build_timeline(picks, "s1 cut")
    rate = float(a.fps)
    truth = {}  # take id -> (first take frame, frames, SMPTE in and out in the take's own counting)
    for t, m in picks:
        o = Timecode.parse(tc_in, fps).frames
        truth[t.id] = (m.first, m.count, str(Timecode.at(fps, o + m.first, drop_frame=df)),
                       str(Timecode.at(fps, o + m.first + m.count - 1, drop_frame=df)))
    paths = {s: editorial.write_cut(timeline, tmp_path / f"cut.{s}") for s in ("otio", "edl", "xml")}
    # OTIO's own reader: names, metadata, source ranges in the take's timecode
    back = otio.adapters.read_from_file(str(paths["otio"]))
    for clip in back.find_clips():
        first, n, tc0, tc1 = truth[clip.name]
        sr = clip.source_range
        assert clip.metadata["machinima"]["take_id"] == clip.name and sr.duration.value == n
        assert otio.opentime.to_timecode(sr.start_time, rate, df) == tc0
        assert otio.opentime.to_timecode(sr.end_time_inclusive(), rate, df) == tc1
    assert isinstance(back.find_clips()[0].media_reference, otio.schema.ImageSequenceReference)
    assert back.find_clips()[1].media_reference.target_url.endswith("stylize-ink.mp4")
    # CMX 3600: OTIO's adapter labels 29.97/59.94 in drop frame (and we say so in the FCM line);
    # the frame counts must be the take's either way
    edl = paths["edl"].read_text()
    assert ("FCM: DROP FRAME" if fps in ("29.97", "59.94") else "FCM: NON-DROP FRAME") in edl
    events = re.findall(r"^\d{3}\s+\S+\s+V\s+C\s+(\S+) (\S+) (\S+) (\S+)$", edl, re.M)
    assert len(events) == 2 and "* FROM CLIP NAME:  " + a.id in edl
    for (src_in, _src_out, _rin, _rout), (tid, (first, n, tc0, _)) in zip(events, truth.items()):
        o = Timecode.parse(tc_in, fps).frames
        assert otio.opentime.from_timecode(src_in, rate).value == o + first
        if df or fps not in ("29.97", "59.94"):
            assert src_in == tc0  # the label itself where OTIO counts as the take does
    # FCP 7 XML: each file's timecode in the take's own counting (NDF 29.97 stays NDF)
    files = ET.parse(paths["xml"]).getroot().findall(".//file")
    labels = {f.findtext("name"): (f.findtext("timecode/string"), f.findtext("timecode/displayformat")) for f in files if f.findtext("name")}
    assert sorted(v[0] for v in labels.values()) == sorted(tc0 for _, _, tc0, _ in truth.values())
    assert {v[1] for v in labels.values()} == {"DF" if df else "NDF"}
    # every adapter's reading comes back to the same takes and frames
    for suffix, path in paths.items():
        uses, unknown = editorial.cut_uses(editorial.read_cut(path, root), root)
        assert not unknown, suffix
        assert {u.take_id: u.ranges for u in uses} == {tid: [(f, f + n - 1)] for tid, (f, n, _, _) in truth.items()}, suffix
        assert {u.take_id: u.timecodes for u in uses} == {tid: [(t0, t1)] for tid, (_, _, t0, t1) in truth.items()}, suffix


def run(*args):
    """As a person types it (a process: one-line errors on stderr)."""
    return subprocess.run([sys.executable, "-m", "machinima", *args], capture_output=True, text=True, timeout=120)


def cli(*args):
    """In-process (fast): the result's output, and the error the command raised, if any."""
    from typer.testing import CliRunner

    from machinima.cli import app

    return CliRunner().invoke(app, list(args))


def test_hand_edited_edl_marks_the_takes_used(tmp_path):
    """An EDL as an editor's tool writes it (Avid style, a black slug, a take used twice):
    `edit import` marks exactly those frames, `takes list --used-in` lists them, and a later
    version of the same cut replaces the marks."""
    root = tmp_path / "takes"
    t1 = make_take(root, "a", "24", "01:00:00:00")
    t2 = make_take(root, "b", "24", "02:00:00:00")
    t3 = make_take(root, "c", "24", "03:00:00:00")
    edl = tmp_path / "scene1_v3.edl"
    edl.write_text(
        "TITLE: SCENE 1 V3\r\nFCM: NON-DROP FRAME\r\n\r\n"
        "001  BL       V     C        00:00:00:00 00:00:01:00 01:00:00:00 01:00:01:00\r\n"
        f"002  AX       V     C        02:00:00:10 02:00:01:10 01:00:01:00 01:00:02:00\r\n* FROM CLIP NAME:  {t2.id}\r\n\r\n"
        f"003  AX       V     C        01:00:00:00 01:00:00:12 01:00:02:00 01:00:02:12\r\n* FROM CLIP NAME:  {t1.id}\r\n"
        f"004  AX       V     C        02:00:01:04 02:00:01:20 01:00:02:12 01:00:03:04\r\n* FROM CLIP NAME:  {t2.id}\r\n"
        "* COMMENT: PICKUP\r\n")
    res = cli("edit", "import", str(edl), "--root", str(root))
    assert res.exit_code == 0, res.exception
    assert f"{t2.id}: 10-43 (02:00:00:10-02:00:01:19)" in res.output and f"{t1.id}: 0-11 (01:00:00:00-01:00:00:11)" in res.output
    assert "cut 'scene1_v3': 2 takes used" in res.output
    m2 = read_manifest(t2.path)
    assert m2.used_in[0]["cut"] == "scene1_v3" and m2.used_in[0]["ranges"] == [[10, 43]]  # 10-33 and 28-43 merged
    assert read_manifest(t3.path).used_in == []
    listed = json.loads(cli("takes", "list", "--root", str(root), "--used-in", "scene1_v3", "--json").output)
    assert {r["id"]: r["used"] for r in listed} == {t1.id: "0-11", t2.id: "10-43"}
    assert "used in scene1_v3: 10-43" in cli("takes", "show", t2.id, "--root", str(root)).output
    # the editor drops take 1 from the next version of the same cut
    edl.write_text(edl.read_text().split("003")[0])
    assert cli("edit", "import", str(edl), "--root", str(root)).exit_code == 0
    assert read_manifest(t1.path).used_in == [] and read_manifest(t2.path).used_in[0]["ranges"] == [[10, 33]]
    res = run("edit", "import", str(tmp_path / "nope.edl"), "--root", str(root))
    assert res.returncode == 1 and res.stderr.strip() == f"error: no cut at {tmp_path / 'nope.edl'}"
    bad = tmp_path / "bad.edl"
    bad.write_text("TITLE: X\n001  AX  V  C  01:00:00:00 01:00:00:10\n* FROM CLIP NAME:  " + t1.id + "\n")
    res = run("edit", "import", str(bad), "--root", str(root))
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1 and "cannot read bad.edl" in res.stderr
    for name, text in (("bad.xml", "not xml <"), ("bad.otio", '{"OTIO_SCHEMA": broken')):
        (tmp_path / name).write_text(text)
        with pytest.raises(EditorialError, match=f"cannot read {name}"):
            editorial.read_cut(tmp_path / name, root)


def test_circle_and_export_commands(tmp_path):
    root = tmp_path / "takes"
    a = make_take(root, "a", "25", "10:00:00:00", step=("composite", "composite", range(0, 24)))
    make_take(root, "a", "25", "10:01:00:00")
    res = cli("edit", "export", "--scene", "s1", "--out", str(tmp_path / "cut.otio"), "--root", str(root))
    assert isinstance(res.exception, EditorialError) and "no takes to cut" in str(res.exception) and "takes circle" in str(res.exception)
    res = run("takes", "circle", a.id, "--version", "archive", "--root", str(root))
    assert res.returncode == 1 and res.stderr.strip() == f"error: take {a.id} has no 'archive' version; it has: render, composite"
    assert read_manifest(a.path).circle is None  # nothing changed
    res = cli("takes", "circle", a.id, "--version", "composite", "--note", "best fall", "--root", str(root))
    assert res.exit_code == 0 and "circled (composite)" in res.output, res.exception
    assert read_manifest(a.path).circle["note"] == "best fall"
    assert "circled: composite best fall" in cli("takes", "show", a.id, "--root", str(root)).output
    assert [r["id"] for r in json.loads(cli("takes", "list", "--circled", "--json", "--root", str(root)).output)] == [a.id]
    outs = [tmp_path / f"cut.{s}" for s in ("otio", "edl", "xml")]
    res = cli("edit", "export", "--scene", "s1", *sum((["--out", str(p)] for p in outs), []), "--root", str(root))
    assert res.exit_code == 0 and "1 clips" in res.output and "composite (mp4)" in res.output, res.exception
    clip = otio.adapters.read_from_file(str(outs[0])).find_clips()[0]
    assert clip.name == a.id and clip.metadata["machinima"]["version"] == "composite"
    res = cli("edit", "export", "--scene", "s1", "--all", "--media", "frames", "--out", str(tmp_path / "all.otio"), "--root", str(root))
    assert res.exit_code == 0 and "2 clips" in res.output, res.exception
    (a.post_dir("composite") / "frames" / "000007.png").unlink()  # a sparse step: its mp4 runs off the take's clock
    m = editorial.find_media(a, "composite")
    assert (m.kind, m.first, m.count, m.gaps) == ("frames", 0, 24, 1)
    with pytest.raises(EditorialError, match="skips 1 frames, so its mp4 is not on the take's clock"):
        editorial.find_media(a, "composite", "mp4")
    bare = Take.create(root, production="film", scene="s2", shot="a", fps="25")
    bare.finalize()
    res = cli("edit", "export", "--take", bare.id, "--out", str(tmp_path / "bare.otio"), "--root", str(root))
    assert isinstance(res.exception, EditorialError) and f"take {bare.id} is not rendered yet" in str(res.exception)
    res = cli("edit", "export", "--scene", "s1", "--out", str(tmp_path / "cut.mov"), "--root", str(root))
    assert "use .otio, .edl or .xml" in str(res.exception)
    assert cli("takes", "circle", a.id, "--off", "--root", str(root)).exit_code == 0 and read_manifest(a.path).circle is None


@pytest.mark.parametrize("fps", ["72", "100", "120"])
def test_rates_above_smpte_go_out_as_otio_and_edl_xml_say_why_not(tmp_path, fps):
    """A BVH import keeps 72-1000 fps; SMPTE timecode (EDL, FCP XML) stops at 60. The .otio cut
    keeps the take's frames and its own timecode labels; .edl/.xml are one-line refusals, and a
    command asked for several formats writes none of them (OTIO's adapters raised a bare ValueError)."""
    root = tmp_path / "takes"
    a = make_take(root, "a", fps, "00:00:59:10", rendered=range(2, 14))
    timeline = editorial.build_timeline([(a, editorial.find_media(a))], "hfr")
    back = otio.adapters.read_from_file(str(editorial.write_cut(timeline, tmp_path / "hfr.otio")))
    (clip,) = back.find_clips()
    assert clip.source_range.start_time.rate == float(fps) and clip.source_range.duration.value == 12
    uses, _ = editorial.cut_uses(editorial.read_cut(tmp_path / "hfr.otio", root), root)
    assert [(u.ranges, u.timecodes) for u in uses] == [([(2, 13)], [("00:00:59:12", "00:00:59:23")])]
    for suffix, what in ((".edl", "CMX 3600"), (".xml", "FCP 7 XML")):
        with pytest.raises(EditorialError, match=f"cannot write hfr{suffix}: {what} timecode does not exist at {fps} fps"):
            editorial.write_cut(timeline, tmp_path / f"hfr{suffix}")
    outs = [tmp_path / "cli" / n for n in ("cut.otio", "cut.edl")]
    res = cli("edit", "export", "--take", a.id, *sum((["--out", str(p)] for p in outs), []), "--root", str(root))
    assert isinstance(res.exception, EditorialError) and "write a .otio cut" in str(res.exception)
    assert not (tmp_path / "cli").exists()  # the .otio was not written either


def test_trimmed_and_reordered_in_an_editor_comes_back(tmp_path):
    """The editor trims and reorders the clips (here with OTIO's API, as Resolve's OTIO export
    would leave them) and hands back FCP XML: the marks follow the trims."""
    root = tmp_path / "takes"
    a = make_take(root, "a", "25", "10:00:00:00")
    b = make_take(root, "b", "25", "10:00:30:00")
    timeline = editorial.build_timeline([(t, editorial.find_media(t)) for t in (a, b)], "rough")
    track = timeline.tracks[0]
    clip_a, clip_b = track[0], track[1]
    track.remove(clip_b)
    track.insert(0, clip_b)  # b now opens the scene
    sr = clip_a.source_range
    clip_a.source_range = otio.opentime.TimeRange(sr.start_time + otio.opentime.RationalTime(5, 25),
                                                  otio.opentime.RationalTime(10, 25))
    xml = tmp_path / "fine.xml"
    editorial.write_cut(timeline, xml)  # frames become movie-file references: FCP XML has no image sequences
    uses, unknown = editorial.cut_uses(editorial.read_cut(xml, root), root)
    assert not unknown and {u.take_id: u.ranges for u in uses} == {a.id: [(5, 14)], b.id: [(0, 23)]}
    assert {u.take_id: u.timecodes for u in uses}[a.id] == [("10:00:00:05", "10:00:00:14")]
