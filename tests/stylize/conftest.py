"""Fixtures for stylize tests: tiny random diffusion models, built once per module."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def tiny():
    """Tiny random models with two ControlNets, shared by a test module."""
    import torch

    from stylize.tiny import tiny_components

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest, and immune to a busy machine's spin-waits
    yield tiny_components(2)
    torch.set_num_threads(threads)
