"""`rights audit` on a project laid out as the demo lays it out, in seconds (the demo test takes
minutes): machinima.toml naming a chain made by `machinima rights certs`, a take, a post step of
QOI frames under its sequence manifest with its movie (marked with the frames' sequence id), the
film with its line signed as a delivery over that movie. Truth: the CLI's exit status and the
files it names; c2pa-python reads every manifest. Clean: exit 0. Then each way a fresh demo once
went wrong (a step MP4 without a manifest, a frame changed after sealing, a delivery whose
manifest is gone) makes it exit 1 naming the file."""

import shutil
import wave

import numpy as np
import pytest
from typer.testing import CliRunner

from machinima import provenance as pv
from machinima.rights_cli import app as rights_app

pytest.importorskip("qoi")
pytestmark = pytest.mark.usefixtures("isolated")


def _line(path, seconds=0.5, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.3 * 32767 * np.sin(2 * np.pi * 220 * t)).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


@pytest.fixture
def demo_like(tmp_path, photo, monkeypatch):
    from machinima.demo_film import film_with_line
    from machinima.poststep import PostStep, write_video
    from machinima.take import Take

    runner = CliRunner()
    project = tmp_path / "demo"
    res = runner.invoke(rights_app, ["certs", str(project / "certs")])
    assert res.exit_code == 0, res.output
    (project / "machinima.toml").write_text(
        'production = "demo"\ntakes_root = "takes"\n\n'
        '[rights]\ncert = "certs/signer.pem"\nkey = "certs/signer.key"\ntrust_anchors = "certs/root.pem"\n')
    monkeypatch.chdir(project)
    t = Take.create(project / "takes", production="demo", scene="1", shot="a")
    t.finalize()
    t.close()
    step = PostStep(t.path / "post" / "archive-vhs-1994", "archive", {"preset": "vhs-1994"}, intermediate="qoi")
    frames = [np.ascontiguousarray(np.roll(photo[:256, :320], 9 * f, axis=1)) for f in range(4)]
    step.run(range(4), lambda fr: [{"frames": frames[f]} for f in fr], progress=False)
    from machinima.imageseq import list_frames, read_image

    files = list_frames(step.out_dir / "frames")
    write_video(step.out_dir / "archive.mp4", (read_image(files[f]) for f in sorted(files)), fps=24)  # as every step
    made = film_with_line(step.out_dir, _line(project / "line.wav"), fps=24)
    res = runner.invoke(rights_app, ["sign", str(made), "--out", str(project / "film.mp4"), "--take", t.path.name,
                              "--step", "archive-vhs-1994", "--kind", "delivery"])
    assert res.exit_code == 0, res.output
    return project, t.path, step


def _audit(project):
    return CliRunner().invoke(rights_app, ["audit", str(project)])


def test_audit_of_a_demo_like_project_is_clean_then_names_what_is_wrong(demo_like, photo):
    project, take, step = demo_like
    for movie in (step.out_dir / "archive.mp4", step.out_dir / "film.mp4", project / "film.mp4"):
        r = pv.verify_file(movie)
        assert r.status == "ok" and r.sequence_manifests == [step.sequence_manifest_id()], (movie.name, r.to_doc())
    res = _audit(project)
    assert res.exit_code == 0, res.output

    # a step movie encoded the old way (no manifest, no mark)
    from machinima.imageseq import write_video

    plain = write_video(step.out_dir / "plain.mp4", [np.ascontiguousarray(photo[:256, :320])] * 4, 24)
    res = _audit(project)
    assert res.exit_code == 1 and "plain.mp4" in res.output and "no disclosure" in res.output, res.output
    plain.unlink()
    assert _audit(project).exit_code == 0

    # a frame changed after the step sealed its sequence manifest
    frame = step.output_path("frames", 2)
    keep = frame.read_bytes()
    data = bytearray(keep)
    data[len(data) // 2] ^= 0x5A
    frame.write_bytes(bytes(data))
    res = _audit(project)
    assert res.exit_code == 1 and "000002.qoi" in res.output and "tampered" in res.output, res.output
    frame.write_bytes(keep)
    assert _audit(project).exit_code == 0

    # the delivered film re-encoded (manifest gone, the mark still there)
    import av

    shutil.copy(project / "film.mp4", project / "keep.mp4")
    with av.open(str(project / "keep.mp4")) as c:
        pics = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    (project / "film.mp4").unlink()
    write_video(project / "film.mp4", pics, 24)
    res = _audit(project)
    assert res.exit_code == 1 and "film.mp4" in res.output, res.output
