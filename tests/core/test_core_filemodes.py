"""Deliverables follow the user's umask (teammates on shared storage read them); keys alone are private."""

import os
import stat

import numpy as np
import pytest


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_every_writer_follows_the_umask_and_keys_stay_private(tmp_path, umask022):
    from machinima.fsutil import atomic_write_json, file_mode
    from machinima.imageseq import contact_sheet, write_image, write_video
    from machinima.poststep import PostStep
    from machinima.provenance import Disclosure, load_identity, make_test_chain
    from machinima.take import Take

    assert file_mode() == 0o644 and file_mode(private=True) == 0o600
    atomic_write_json(tmp_path / "doc.json", {"a": 1})
    img = np.zeros((64, 96, 3), np.uint8)
    write_image(tmp_path / "f.png", img)
    write_image(tmp_path / "sheet.png", contact_sheet([img, img], columns=2, width=192))
    write_video(tmp_path / "v.mp4", [img] * 3, fps=24)
    t = Take.create(tmp_path / "takes", production="film", scene="1", shot="1")
    t.finalize()
    t.close()
    chain = make_test_chain(tmp_path / "certs")
    step = PostStep(t.path / "post" / "s", "stylize", {}, disclosure=Disclosure.for_step(
        t.path / "post" / "s", "stylize", load_identity(chain.cert, chain.key)))
    step.run([0], lambda fr: [{"rgb": np.full((160, 160, 3), 90, np.uint8), "mask": np.zeros((8, 8), np.uint8)}], progress=False)
    signed = step.disclosure.sign_file(tmp_path / "v.mp4", tmp_path / "v-signed.mp4")
    shared = [tmp_path / "doc.json", tmp_path / "f.png", tmp_path / "sheet.png", tmp_path / "v.mp4", signed,
              t.path / "take.json", step.out_dir / "params.json", step.output_path("rgb", 0), step.output_path("mask", 0),
              chain.cert, chain.root_cert]
    assert {str(p.relative_to(tmp_path)): oct(mode(p)) for p in shared if mode(p) != 0o644} == {}
    assert mode(chain.key) == 0o600 and mode(chain.root_key) == 0o600


def test_a_private_umask_is_followed_too(tmp_path):
    from machinima.fsutil import atomic_write_bytes

    old = os.umask(0o077)
    try:
        atomic_write_bytes(tmp_path / "x", b"1")
    finally:
        os.umask(old)
    assert mode(tmp_path / "x") == 0o600
