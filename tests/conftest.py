"""Shared test setup: no network, no GPU assumptions; each test works in its own tmp_path."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

# bpy (Blender as a module) loads its own native libraries; importing triton (which diffusers
# pulls in) *after* bpy segfaults the process. Import it first, whatever order tests run in.
try:
    import diffusers  # noqa: F401
except ImportError:
    pass


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``gpu`` where CUDA is not available (the only tests CI may skip)."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        # the marker, not ``"gpu" in item.keywords``: keywords hold the folder names too, so a
        # checkout in a folder named gpu would skip every test
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)
