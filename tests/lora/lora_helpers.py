"""Fixtures for lora tests: a tiny random SD-shaped base folder and small captioned datasets."""

from __future__ import annotations

import numpy as np
import pytest


def textured(h: int, w: int, seed: int) -> np.ndarray:
    """A sharp, well exposed random colour image (passes the import filters)."""
    import cv2

    rng = np.random.default_rng(seed)
    img = rng.random((h // 4 + 1, w // 4 + 1, 3)).astype(np.float32)
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_NEAREST)
    return (img * 200 + 25).astype(np.uint8)


def make_dataset(path, n: int = 4, *, trigger: str = "ohwx", sizes=None, caption: bool = True):
    from lora.dataset import caption_dataset, open_dataset

    ds = open_dataset(path, create=True, trigger=trigger)
    for i in range(n):
        h, w = (sizes[i] if sizes else (32 + 8 * (i % 2), 32))
        ds.add(textured(h, w, seed=100 + i), rights=["test-subject"], source={"kind": "file", "path": f"/photos/{i}.png"})
    if caption:
        caption_dataset(ds)
    ds.close()
    return path


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory):
    from lora.tiny import tiny_base

    return tiny_base(tmp_path_factory.mktemp("base") / "tiny-sd")


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny models: one thread is fastest and immune to a busy machine's spin-waits."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
