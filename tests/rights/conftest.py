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
