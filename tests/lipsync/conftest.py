import shutil

import numpy as np
import pytest


@pytest.fixture(scope="session")
def speech():
    """Constructed truth: words spoken separately by espeak-ng, silences at known times."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: `./dev test` installs it (apt-get install espeak-ng)")
    from lipsync.truth import build

    samples, spans = build(["pa", "me", "moo", "ma", "pa", "boo"])
    return samples, spans


@pytest.fixture(scope="session")
def face():
    from skimage import data

    return np.ascontiguousarray(data.astronaut())
