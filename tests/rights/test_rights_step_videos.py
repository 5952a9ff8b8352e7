"""Every post step's MP4 carries a manifest (read back by c2pa-python) and a watermark naming it:
composite, stylize and the archive look here; face-swap merge and lip re-sync in
test_rights_sites.py; dream and AnimateDiff write theirs through the same
``machinima.poststep.write_video``. The old way (``imageseq.write_video``) is the control."""

import pytest
from typer.testing import CliRunner

from machinima import provenance as pv

pytestmark = pytest.mark.usefixtures("isolated")


def _check(mp4, kind):
    rep = pv.verify_file(mp4)
    assert rep.manifest in ("trusted", "valid") and rep.kind == kind, (kind, rep.to_doc())
    assert rep.status == "ok-local" and rep.watermark.found and rep.watermark_matches and rep.watermark_authentic, (kind, rep.to_doc())


def test_composite_stylize_and_archive_movies_are_signed_and_marked(tmp_path):
    import typer

    from composite.demo_scene import make_demo
    from composite.pipeline import CompositeSettings, run_composite
    from composite.placement import PlacementSettings
    from machinima.imageseq import list_frames, read_image, write_video
    from stylize.archive_cli import archive
    from stylize.look import Look
    from stylize.runner import stylize_take

    take, plate, pos = make_demo(tmp_path, width=192, height=144, frames=4)
    comp = run_composite(take, CompositeSettings(plate=plate, matte="green", placement=PlacementSettings(position=pos)), progress=False)
    _check(comp.video, "composite")
    look = Look.from_doc({"name": "paint", "engine": "classical", "classical": {"sigma_s": 20.0}, "cadence": {"mode": "every"}})
    sty = stylize_take(take, look, progress=False)
    _check(sty.video, "stylize")
    app = typer.Typer()
    app.command()(archive)
    res = CliRunner().invoke(app, [str(take), "--from", "post/stylize-paint", "--preset", "vhs-1994"])
    assert res.exit_code == 0, res.output
    _check(take / "post" / "archive-vhs-1994" / "archive-vhs-1994.mp4", "archive")
    # the control: the same frames through the plain encoder say nothing
    control = write_video(tmp_path / "control.mp4", [read_image(p) for p in list_frames(comp.out_dir / "rgb").values()], fps=24)
    rep = pv.verify_file(control)
    assert rep.manifest == "absent" and rep.bad
