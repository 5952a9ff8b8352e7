"""What a Ray task is told: a job described by paths and parameters, never by frames.

A ``FrameJob`` is a small picklable object: where the step writes (``StepSpec``: the step's
folder, kind, params, inputs, notes, rights), how a worker builds the frame function
(``load``: models, plate decoders, tracked landmarks, all read from storage the cluster
shares) and what one task asks of a node (``resources``). The driver never ships pixels: a
10-minute 1080p shot is gigabytes, a job is a few kilobytes.

``load`` runs once per worker process per job (``cache_key``); every chunk after the first
reuses it, and the time it took is reported apart from the time to run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..poststep import Outputs, PostStep

Process = Callable[[list[int]], list[Outputs]]


@dataclass(frozen=True)
class StepSpec:
    """Everything ``PostStep(...)`` needs, JSON-able: a worker opens the same step folder with
    the same params hash (so the same resume keys and the same disclosure) as the driver."""

    out_dir: str
    kind: str
    params: dict[str, Any]
    inputs: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    float_ext: str = "exr"
    rights: dict[str, Any] | None = None
    intermediate: str | None = None  # the driver's frame format (qoi/png): part of the params hash
    exr_half: bool = False

    @classmethod
    def of(cls, step: PostStep) -> "StepSpec":
        """The spec of a step the driver already opened (its params, inputs, rights as set)."""
        return cls(str(step.out_dir), step.kind, step.params, dict(step.inputs), tuple(step.notes), step.float_ext, step.rights,
                   getattr(step, "intermediate", None), bool(getattr(step, "exr_half", False)))

    def open(self) -> PostStep:
        """A fresh ``PostStep`` (its ledger read now: what other workers finished counts)."""
        extra: dict[str, Any] = {}
        if self.intermediate is not None:
            extra = {"intermediate": self.intermediate, "exr_half": self.exr_half}
        return PostStep(Path(self.out_dir), self.kind, self.params, inputs=self.inputs, notes=self.notes,
                        float_ext=self.float_ext, rights=self.rights, **extra)


@dataclass
class Worklet:
    """What ``FrameJob.load`` returns: the frame function and the frame keys' inputs."""

    process: Process
    frame_inputs: Callable[[int], dict[str, Any]] | None = None
    close: Callable[[], None] | None = None
    # what a chunk found besides its frames (frames without a face...): called once after each
    # chunk, JSON-able, returned to the driver in ``JobReport.extras``; it should reset itself
    extra: Callable[[], dict[str, Any]] | None = None


class FrameJob:
    """Base of a post step's Ray job. Subclasses are dataclasses of paths and parameters."""

    step: StepSpec
    batch_size: int = 1
    on_error: str = "raise"  # 'skip': a failing batch is reported, the chunk goes on

    def load(self) -> Worklet:  # pragma: no cover - abstract
        raise NotImplementedError

    def open_step(self) -> PostStep:
        """The step folder, opened fresh for each chunk (so its ledger is current)."""
        return self.step.open()

    def cache_key(self) -> str | None:
        """Jobs with the same key share what ``load`` built in a worker (default: the step and
        its params); None: load again for every chunk."""
        from ..poststep import stable_hash

        return stable_hash({"job": type(self).__qualname__, "step": self.step.out_dir, "params": self.step.params})

    def resources(self) -> dict[str, float]:
        """Ray resources one task declares (``num_cpus``, ``num_gpus``, ``memory`` in bytes)."""
        return {"num_cpus": 1}

    def description(self) -> str:
        return f"{self.step.kind} {Path(self.step.out_dir).name}"


@dataclass
class CallableJob(FrameJob):
    """A job from two picklable factories (``make_step()``, ``make_process()``), for steps that
    build their frame function in a line (``archive``); kept for ``run_on_ray``'s callers."""

    make_step: Callable[[], PostStep]
    make_process: Callable[[], Process]
    frame_inputs_fn: Callable[[int], dict[str, Any]] | None = None
    batch_size: int = 1
    num_cpus: float = 1
    num_gpus: float = 0
    key: str | None = None  # a worker reuses make_process()'s result across chunks under this key

    def __post_init__(self) -> None:
        self.step = StepSpec.of(self.make_step())

    def open_step(self) -> PostStep:
        return self.make_step()

    def load(self) -> Worklet:
        return Worklet(self.make_process(), self.frame_inputs_fn)

    def cache_key(self) -> str | None:
        return self.key  # None: a factory is opaque, built again per chunk

    def resources(self) -> dict[str, float]:
        return {"num_cpus": self.num_cpus, **({"num_gpus": self.num_gpus} if self.num_gpus else {})}
