"""The lora package's exception family (all ``MachinimaError``: the CLI prints one line)::

    LoraError
    ├── DatasetError        a dataset folder that cannot be used as asked (lists every bad item)
    ├── ImportSourceError   an import source (folder, video, take pass) that is missing or unreadable
    ├── BaseModelError      the base model path is missing or is not a diffusers model / checkpoint
    ├── TrainConfigError    settings that do not fit together (batch > dataset, bad preset, resume mismatch)
    └── CaptionerError      the captioning model folder is missing or cannot be loaded
"""

from __future__ import annotations

from machinima.errors import MachinimaError


class LoraError(MachinimaError):
    """Base of micro-dataset and LoRA training errors."""


class DatasetError(LoraError):
    """A dataset that cannot be used: missing captions, corrupt images, too few items..."""

    def __init__(self, message: str, *, hint: str | None = None, problems: list[str] | None = None) -> None:
        super().__init__(message, hint=hint)
        self.problems = list(problems or [])


class ImportSourceError(LoraError):
    """An import source that is missing or unreadable."""


class BaseModelError(LoraError):
    """A base model path that is missing or not a model."""


class TrainConfigError(LoraError):
    """Training settings that do not fit together."""


class CaptionerError(LoraError):
    """A captioning model that is missing or cannot be loaded."""
