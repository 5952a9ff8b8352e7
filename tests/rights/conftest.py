import numpy as np
import pytest


@pytest.fixture(scope="session")
def chain(tmp_path_factory):
    from machinima.provenance import make_test_chain

    return make_test_chain(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def identity(chain):
    from machinima.provenance import load_identity

    return load_identity(chain.cert, chain.key, trust_anchors=chain.root_cert)


@pytest.fixture(scope="session")
def photo():
    """A real photo (scikit-image's astronaut, 512x512 RGB)."""
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut())


@pytest.fixture(scope="session")
def portraits(tmp_path_factory):
    """The real portraits pip packages ship: Eileen Collins (scikit-image's astronaut, NASA,
    public domain) and Grace Hopper (matplotlib's sample, public domain), as files."""
    import shutil

    import cv2
    import matplotlib.cbook
    import skimage.data

    d = tmp_path_factory.mktemp("portraits")
    cv2.imwrite(str(d / "collins.png"), skimage.data.astronaut()[..., ::-1])
    shutil.copy(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), d / "hopper.jpg")
    return {"collins": d / "collins.png", "hopper": d / "hopper.jpg"}


@pytest.fixture(scope="session")
def identities(portraits):
    """Each portrait's identity block (dlib and the mediapipe mesh), computed once."""
    from machinima import rights

    return {who: rights.reference_identity([p]) for who, p in portraits.items()}



@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No MACHINIMA_* variables from the caller's shell; the working directory is the test's."""
    import os

    for k in list(os.environ):
        if k.startswith("MACHINIMA_"):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def take_dir(tmp_path):
    """A finished take (production "film") under ``tmp_path/takes``."""
    from machinima.take import Take

    t = Take.create(tmp_path / "takes", production="film", scene="s1", shot="a")
    t.finalize()
    t.close()
    return t.path


@pytest.fixture
def project(tmp_path, chain, monkeypatch):
    """A project with the production's chain configured, one take, one disclosed step."""
    from machinima.take import Take

    for k in list(__import__("os").environ):
        if k.startswith("MACHINIMA_"):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "machinima.toml").write_text(
        f'production = "film"\n[rights]\ncert = "{chain.cert}"\nkey = "{chain.key}"\ntrust_anchors = "{chain.root_cert}"\n')
    t = Take.create(tmp_path / "takes", production="film", scene="1", shot="a")
    t.finalize()
    t.close()
    return tmp_path, t.path
