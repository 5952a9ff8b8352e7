"""Face-swap test data without downloads: matplotlib's grace_hopper.jpg and scikit-image's
astronaut, moved and scaled into short "clips"; tiny models trained for a few iterations."""

from __future__ import annotations

import numpy as np
import pytest
from faceswap_testdata import moving_clip, write_clip


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny networks run faster on one thread, and much faster on a busy 2-core machine."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def grace() -> np.ndarray:
    import matplotlib.cbook as cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        return np.ascontiguousarray(np.asarray(Image.open(fh).convert("RGB")))


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut())


@pytest.fixture(scope="session")
def facesets(tmp_path_factory, grace, astronaut):
    """(src faceset = astronaut, dst faceset = grace), whole face at 64 px, 4 faces each."""
    from faceswap.extract import extract

    root = tmp_path_factory.mktemp("facesets")
    write_clip(root / "ast", moving_clip(astronaut, 4))
    write_clip(root / "gh", moving_clip(grace, 4))
    ra = extract(root / "ast", root / "alice", face_type="whole", size=64, progress=False)
    rb = extract(root / "gh", root / "bob", face_type="whole", size=64, progress=False)
    assert ra.added == 4 and rb.added == 4, (ra.messages(), rb.messages())
    return root / "alice", root / "bob"


TINY = dict(e_dims=4, ae_dims=16, d_dims=4, d_mask_dims=2)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, facesets):
    """A DF model at 64 px trained for a few iterations (enough to run merge and export)."""
    import torch

    from faceswap.model import ModelConfig
    from faceswap.train import TrainConfig, Trainer

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("model") / "m"
    t = Trainer(d, src=facesets[0], dst=facesets[1], model_config=ModelConfig(arch="df", res=64, **TINY),
                train_config=TrainConfig(batch=2, lr=1e-3, save_every=1000, log_every=1), rights={"override": "tests"})
    t.train(4, progress=False)
    return d
