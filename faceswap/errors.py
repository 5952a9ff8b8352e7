"""Face swap's exception family (all are ``MachinimaError``: the CLI prints them as one line)::

    FaceswapError
    ├── BackendError     a detector/landmark backend that cannot be loaded or run (names the model path)
    ├── NoFaceError      no face where one was needed (names the image / frame)
    ├── FacesetError     a faceset that is missing, empty or unusable for training
    ├── ModelError       a model folder without a checkpoint, or with another architecture/size
    └── InputError       a merge/extract target that is not a take, a video or an image folder
"""

from __future__ import annotations

from machinima.errors import MachinimaError


class FaceswapError(MachinimaError):
    """Base of face-swap errors."""


class BackendError(FaceswapError):
    """A detection/landmark backend cannot be loaded or run."""


class NoFaceError(FaceswapError):
    """No face found where one was needed."""


class FacesetError(FaceswapError):
    """A faceset that cannot be used."""


class ModelError(FaceswapError):
    """A model folder that cannot be used."""


class InputError(FaceswapError):
    """A source that is not a take, a video file or an image folder."""
