"""Fixtures for AnimateDiff tests: tiny random motion models (built once per module); the
helpers (moving frames, synthetic takes, tiny model folders) are in ``animatediff_helpers``. Torch runs on one thread here: on a
busy 2-core machine two threads per process make these tiny models several times slower."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def threads():
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def motion_comps(threads):
    """Tiny models whose motion modules average over their window (uniform temporal attention,
    strong output): which window a frame was in shows in the pixels, so seams are measurable."""
    import torch

    from stylize.animatediff import tiny_motion_components

    comps = tiny_motion_components(1)
    with torch.no_grad():
        for name, p in comps["unet"].named_parameters():
            if "motion_modules" in name and "proj_out" in name:
                p.normal_(0, 0.5)
            if "motion_modules" in name and (".to_q." in name or ".to_k." in name):
                p.zero_()
    return comps
