"""Lip-sync test helpers and fixtures (re-exported by conftest.py): speech with exact truth from
libespeak-ng's phoneme events, a real portrait, WAV writing, a take with a performer."""

from __future__ import annotations

import shutil
import wave

import numpy as np
import pytest


def need_espeak() -> None:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: `./dev test` installs it (apt-get install espeak-ng)")


@pytest.fixture(scope="session")
def truth_lines():
    """The truth set (10 sentences as one line, 4 voices and speeds) with its phoneme timelines."""
    need_espeak()
    from lipsync.truth import truth_set

    return truth_set()


@pytest.fixture(scope="session")
def speech():
    """One short line with its truth: (samples at 16 kHz, Utterance)."""
    need_espeak()
    from lipsync.truth import synthesize

    u = synthesize("Bob moved five heavy boxes of purple paper.", voice="en-us", speed=160)
    return u.samples, u


@pytest.fixture(scope="session")
def face():
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def write_wav(path, samples, rate=16000, width=2, channels=1):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        if width == 1:
            data = (np.clip(samples, -1, 1) * 127 + 128).astype(np.uint8)
        else:
            data = (np.clip(samples, -1, 1) * 32767).astype("<i2")
        w.writeframes(np.repeat(data[:, None], channels, axis=1).tobytes())
    return path


def make_take(root, performers=("ada",), fps=24):
    """A finished take whose manifest names ``performers``."""
    from machinima.take import Take

    take = Take.create(root, production="p", scene="1", shot="1", fps=fps)
    take.manifest.performers.extend({"name": p} for p in performers)
    take.finalize()
    return take.path
