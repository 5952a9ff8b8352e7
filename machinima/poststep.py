"""The frame loop every post step shares: resumable, interruptible, with progress and provenance.

A post step (stylize, face swap merge, composite, archive look, lip re-sync) writes into
``<take>/post/<step-id>/``:

    params.json        what made these frames: step kind, params, versions, inputs, seed rule
    ledger.jsonl       one line per finished frame: frame, key hash, outputs, seconds
    <output>/NNNNNN.qoi|png|exr   frames, each written atomically (per-process temp + rename)
    disclosure.png     the step's sequence manifest (QOI frames), see below

Frames: 8-bit RGB(A) pictures go out as QOI (``intermediate='qoi'``, the fast lossless
intermediate: ~18 ms a 1080p frame against ~150-230 ms for PNG) unless a person or a tool asked
for PNG (``intermediate='png'``); masks and 16-bit data as PNG; float data as EXR with PIZ
(``exr_half=True``: half floats, for linear colour). The choice is in params.json (``frames``).
``run`` writes behind (``frameio.WriteBehind``): encoding overlaps the kernel, at most a few
frames (from their size) wait in memory, and a frame's ledger line is appended only once its
files are renamed into place, so a killed run never takes a half-written frame as done.

Resume rule: a frame is skipped when its outputs exist and the ledger records them under the
same key (a hash of the step params and the frame's own inputs: seed, cadence phase, source
hashes). Change a param and exactly the frames it affects are redone. Ctrl-C finishes the frame
in hand, then stops with ``Interrupted``: nothing is ever half-written (writes are atomic) and
the next run picks up where this one stopped.

Disclosure (``machinima.provenance``) is on for every step: every 8-bit RGB output gets an
invisible watermark before its atomic write; PNG/JPEG frames carry their own signed C2PA
manifest, QOI frames are covered by one signed manifest per step (``disclosure.png``, over the
SHA-256 of every frame, which are marked with its id: the same guarantees for one signature
per step instead of one per frame); masks and EXR data are left alone. It is signed with the production certificate of the project the output
belongs to, else the project's own local chain. Turning it off is a decision recorded in the
take (``machinima rights disclosure off TAKE --reason ...``), never a flag or a variable. A step
folder that was signed with the production's certificate is not silently rewritten with
another signer (a run from outside the project): that stops with the reason.
``rights=`` (a ``rights.require_cleared(...)`` result) lists the rights records relied on in
params.json and in each manifest. ``write_video`` encodes a step's movie disclosed the same way.

Each frame's work is a pure function of the frame number (and the frames it reads), so the
same step can run its frames in chunks on Ray (``--ray``) with identical results.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .errors import MachinimaError
from .frameio import WriteBehind, in_flight
from .fsutil import atomic_write_json
from .imageseq import encode_qoi, frame_path, qoi_available, write_image
from .stepdisclosure import _discloses, _disclosure_of, _live, _video, write_still, write_video  # noqa: F401 - part of this module's API
from .stepdisclosure import sequence_manifest_id as _sequence_manifest_id
from .stepfiles import check_step_folder, file_hash, stable_hash, versions  # noqa: F401 - part of this module's API
from .stepfiles import write_frame_bytes as _write_bytes
from .steploop import StepReport, StopFlag  # noqa: F401 - part of this module's API
from .steploop import progress_bar as _progress
from .steploop import say as _say

Outputs = dict[str, np.ndarray]

# Benchmarks set these to measure the old path beside the new in one run (bench/post_io.py):
DEFAULT_INTERMEDIATE: str | None = None  # None: QOI when the codec is installed, else PNG
WRITE_BEHIND = True  # False: each frame written before the next is computed (the old loop)


class Interrupted(MachinimaError):
    """The run was stopped by Ctrl-C (or SIGTERM) after finishing the frame in hand."""


class PostStep:
    """One post step's output folder and frame loop.

    ``params`` must hold everything that changes the pixels (models and their hashes, prompts,
    strengths, seeds...). ``kind`` names the step type (``stylize``, ``faceswap-merge``...).
    """

    def __init__(
        self,
        out_dir: str | Path,
        kind: str,
        params: dict[str, Any],
        *,
        inputs: dict[str, Any] | None = None,
        notes: Sequence[str] = (),
        float_ext: str = "exr",
        rights: Any = None,
        disclosure: Any = None,
        intermediate: str | None = None,
        exr_half: bool = False,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.kind = kind
        self.params = params
        self.inputs = dict(inputs or {})
        self.notes = list(notes)
        self.float_ext = float_ext
        # 8-bit pictures: QOI between steps (when the reference codec is installed), PNG where asked
        intermediate = intermediate or DEFAULT_INTERMEDIATE
        self.intermediate = (intermediate or ("qoi" if qoi_available() else "png")).lower().lstrip(".")
        if self.intermediate not in ("qoi", "png"):
            raise MachinimaError(f"{kind}: intermediate frames are 'qoi' or 'png', not {intermediate!r}")
        self.exr_half = exr_half
        # rights: a machinima.rights.Clearance (or a list of them) from rights.require_cleared(...):
        # the records this step relies on, written into params.json and every manifest.
        from .rights import provenance_of

        self.rights = provenance_of(rights)
        # disclosure: None = the project's signer (see the module docstring), or a
        # machinima.provenance.Disclosure made by hand. There is no "off" here.
        self.decision: dict[str, Any] | None = None
        self.disclosure = self._make_disclosure(disclosure)
        base = {"kind": kind, "params": params}
        if self.disclosure is not None:  # the watermark changes the pixels: part of the key
            base["disclosure"] = self.disclosure.fingerprint()
        if self.intermediate != "png" or exr_half:  # other files, other marks (PNG steps keep their keys)
            base["frames"] = self.frames_format()
        self.params_hash = stable_hash(base)
        if self.disclosure is not None:
            self.disclosure.params_hash = self.params_hash
            if self.intermediate == "qoi":  # the step's movie keeps its frames' mark (Disclosure.write_video)
                self.disclosure.sequence_id = self.sequence_manifest_id()
        self._marker: Any = None  # provenance.SequenceMarker: QOI frames marked in frame order (``run``)
        # the frames the sequence preview will show (``run`` plans them), kept as written until
        # ``seal``: four frames, not the shot, so memory stays bounded
        self._preview_want: set[int] = set()
        self._preview_held: dict[str, tuple[str, np.ndarray]] = {}  # name -> (SHA-256 of its file, pixels)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        _live[self.out_dir.resolve()] = self
        import threading

        from .fsutil import sweep_stale_temps

        sweep_stale_temps(self.out_dir)  # temps of killed writers (never a live chunk's: see fsutil)
        self._ledger_lock = threading.Lock()
        self._inflight: dict[int, Any] = {}  # frame -> its pending write (Future)
        self._ledger_path = self.out_dir / "ledger.jsonl"
        self._ledger = self._read_ledger()
        self.write_params(frames=self.frames_format())

    def frames_format(self) -> dict[str, str]:
        """What each kind of output is written as (params.json ``frames``)."""
        return {"rgb8": self.intermediate, "mask": "png", "float": f"{self.float_ext}-{'half' if self.exr_half else 'float'}-piz"
                if self.float_ext == "exr" else self.float_ext,
                "disclosure": ("sequence manifest (disclosure.png)" if self.intermediate == "qoi" else "manifest per frame")
                if self.disclosure is not None else "off"}

    def sequence_manifest_id(self) -> str:
        """The manifest id every QOI frame of this step is marked with (same params, same id)."""
        assert self.disclosure is not None
        return _sequence_manifest_id(self.disclosure, self.step_id)

    @property
    def step_id(self) -> str:
        return self.out_dir.name

    def _make_disclosure(self, disclosure: Any) -> Any:
        from . import provenance

        if disclosure is False:
            raise MachinimaError(
                f"{self.kind}: disclosure cannot be switched off in code",
                hint="record the decision in the take: machinima rights disclosure off TAKE --reason '...' (who, when and why are kept)",
            )
        home = provenance.decision_home(self.out_dir)
        decision = provenance.read_decision(home)
        if decision is not None and not decision.disclose and decision.honoured:
            self.decision = decision.summary()
            return None
        if disclosure is None:
            disclosure = provenance.disclosure_for_step(self.out_dir, self.kind, rights=self.rights, inputs=self.inputs)
        elif not isinstance(disclosure, provenance.Disclosure):
            raise MachinimaError(f"{self.kind}: disclosure must be a machinima.provenance.Disclosure or None")
        if disclosure.rights is None and self.rights is not None:
            disclosure.rights = self.rights
        self._refuse_other_signer(disclosure)
        return disclosure

    def _refuse_other_signer(self, disclosure: Any) -> None:
        """A step signed with a production certificate is not rewritten by another signer."""
        try:
            old = json.loads((self.out_dir / "params.json").read_text(encoding="utf-8")).get("disclosure") or {}
        except (OSError, ValueError):
            return
        old_fp = (old.get("signer") or {}).get("fingerprint")
        new_fp = disclosure.identity.fingerprint()
        if old_fp and old_fp != new_fp and not str(old.get("signed_with", "")).startswith("local chain"):
            raise MachinimaError(
                f"{self.out_dir} was signed with {old.get('signed_with') or old_fp}; this run would sign with "
                f"{disclosure.signer_note or new_fp} and replace it",
                hint="run from the project folder (or set MACHINIMA_PROJECT to it), or write to another --step-id",
            )

    def set_rights(self, rights: Any) -> None:
        """The rights this step relies on, once known (face checks need the tracked faces)."""
        from .rights import provenance_of

        self.rights = provenance_of(rights)
        if self.disclosure is not None:
            self.disclosure.rights = self.rights
        self.write_params()

    def write_video(self, path: str | Path, frames: Iterable[np.ndarray], fps: float | str = 24, *, crf: int = 18,
                    before_signing: Callable[[Path], None] | None = None) -> Path:
        """The step's movie, disclosed like its frames, the file signed: QOI frames keep their
        mark (the step's sequence id, which the movie's manifest records), PNG-era frames are
        marked with the movie's own id (``Disclosure.write_video``). ``before_signing(path)``
        may rewrite the encoded file (e.g. mux audio in) without touching the pixels."""
        return _video(self.disclosure, path, frames, fps, crf, before_signing)

    # --- bookkeeping ----------------------------------------------------------------------
    def write_params(self, **extra: Any) -> None:
        """params.json; ``extra`` fields are kept across later writes (``run`` adds its own)."""
        self._extra = {**getattr(self, "_extra", {}), **extra}
        doc = {
            "step": self.kind,
            "step_id": self.step_id,
            "params_hash": self.params_hash,
            "params": self.params,
            "inputs": self.inputs,
            "versions": versions(),
            "notes": self.notes,
            **({"rights": self.rights} if self.rights is not None else {}),
            **({"disclosure": self.disclosure.summary()} if self.disclosure is not None else {}),
            **({"disclosure_off": self.decision} if self.decision is not None else {}),
            "updated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            **self._extra,
        }
        atomic_write_json(self.out_dir / "params.json", doc)

    def _read_ledger(self) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        if not self._ledger_path.exists():
            return out
        for line in self._ledger_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                rec = json.loads(line)
                out[int(rec["frame"])] = rec
            except (ValueError, KeyError, TypeError):
                continue  # a line cut by a crash: that frame is simply redone
        return out

    def frame_key(self, frame: int, frame_inputs: dict[str, Any] | None = None) -> str:
        return stable_hash({"params": self.params_hash, "frame": frame, "inputs": frame_inputs or {}})

    def output_path(self, name: str, frame: int, ext: str | None = None) -> Path:
        """Where output ``name`` of ``frame`` is (``ext`` None: the file the ledger records, else
        an 8-bit picture's: the step's intermediate)."""
        if ext is None:
            fut = self._inflight.get(frame)
            if fut is not None:  # a kernel reading back an earlier frame (a feedback loop): let its write land first
                fut.result()
            for rel in (self._ledger.get(frame) or {}).get("outputs", []):
                if Path(rel).parts[0] == name:
                    return self.out_dir / rel
            ext = self.intermediate
        return frame_path(self.out_dir / name, frame, ext)

    def is_done(self, frame: int, key: str) -> bool:
        rec = self._ledger.get(frame)
        if not rec or rec.get("key") != key:
            return False
        return all((self.out_dir / rel).exists() for rel in rec.get("outputs", []))

    def record(self, frame: int, key: str, outputs: Outputs, seconds: float, meta: dict[str, Any] | None = None) -> list[Path]:
        """Write a frame's outputs atomically, then append its ledger line (fsynced)."""
        written, _ = self._write_frame(frame, key, outputs, seconds, meta)
        return written

    def _ext_of(self, img: Any) -> str:
        a = np.asarray(img)
        if a.dtype.kind == "f":
            return self.float_ext
        return self.intermediate if _discloses(a) else "png"

    def _write_frame(self, frame: int, key: str, outputs: Outputs, seconds: float,
                     meta: dict[str, Any] | None = None, premarked: frozenset[str] = frozenset()) -> tuple[list[Path], int]:
        """Encode and write one frame's outputs, then commit its ledger line. Thread-safe: the
        write-behind pool calls it for several frames at once. ``premarked``: outputs the step
        loop already marked (``SequenceMarker``). Returns (files, bytes written)."""
        written: list[Path] = []
        disclosed: list[str] = []
        hashes: dict[str, str] = {}
        nbytes = 0
        for name, img in outputs.items():
            ext = self._ext_of(img)
            path = frame_path(self.out_dir / name, frame, ext)
            rel = str(path.relative_to(self.out_dir))
            if self.disclosure is not None and _discloses(img) and ext == "qoi":
                # watermark naming the step's sequence manifest; the frame's hash goes into it
                marked = img if name in premarked else self.disclosure.mark(img, self.sequence_manifest_id())
                data = encode_qoi(marked, path.name)
                _write_bytes(path, data)
                hashes[rel] = hashlib.sha256(data).hexdigest()
                if frame in self._preview_want:
                    self._preview_held[rel] = (hashes[rel], marked)
                disclosed.append(rel)
            elif self.disclosure is not None and _discloses(img):
                # watermark in the pixels, then a signed C2PA manifest, then one atomic write
                data = self.disclosure.encode(img, f"{self.step_id}/{name}/{path.name}", frame=frame)
                _write_bytes(path, data)
                disclosed.append(rel)
            else:
                write_image(path, img, half=self.exr_half and ext == "exr")
            written.append(path)
            try:
                nbytes += path.stat().st_size
            except OSError:
                pass
        rec: dict[str, Any] = {"frame": frame, "key": key, "outputs": [str(p.relative_to(self.out_dir)) for p in written],
                               "seconds": round(seconds, 4)}
        if disclosed:
            rec["disclosed"] = disclosed
        if hashes:
            rec["sha256"] = hashes
        if meta:
            rec["meta"] = meta
        line = json.dumps(rec) + "\n"
        with self._ledger_lock:
            with open(self._ledger_path, "a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            self._ledger[frame] = rec
        return written, nbytes

    def _seal_stale(self) -> bool:
        """The ledger changed after disclosure.png was signed (a run killed before it sealed)."""
        from .provenance.sequence import SIDECAR

        if self.disclosure is None or self.intermediate != "qoi" or not self._ledger_path.exists():
            return False
        side = self.out_dir / SIDECAR
        return not side.exists() or side.stat().st_mtime < self._ledger_path.stat().st_mtime

    def seal(self) -> Path | None:
        """Sign the step's sequence manifest over every QOI frame in the ledger (``disclosure.png``:
        a preview marked with the same id, its C2PA manifest listing each frame's SHA-256).
        Under a lock and from the ledger on disk, so chunks run by several processes each seal
        what all of them finished."""
        if self.disclosure is None or self.intermediate != "qoi":
            return None
        from .fsutil import FileLock
        from .provenance.sequence import SIDECAR, write_sidecar

        lock = FileLock(self.out_dir / ".disclosure.lock", "the step's disclosure").acquire_wait()
        try:
            hashes: dict[str, str] = {}
            for rec in self._read_ledger().values():
                hashes.update(rec.get("sha256") or {})
            if not hashes:
                return None
            held = {rel: img for rel, (sha, img) in self._preview_held.items() if hashes.get(rel) == sha}  # the very bytes listed
            return write_sidecar(self.out_dir / SIDECAR, self.disclosure, self.sequence_manifest_id(), hashes, self.out_dir, held)
        finally:
            self._preview_held.clear()
            lock.release()

    def frames_done(self) -> list[int]:
        return sorted(self._ledger)

    def outputs_of(self, name: str) -> dict[int, Path]:
        """Finished frames of one output, frame -> file."""
        out = {}
        for f, rec in sorted(self._ledger.items()):
            for rel in rec.get("outputs", []):
                if Path(rel).parts[0] == name:
                    out[f] = self.out_dir / rel
        return out

    # --- the loop -------------------------------------------------------------------------
    def run(
        self,
        frames: Iterable[int],
        process: Callable[[list[int]], list[Outputs]],
        *,
        frame_inputs: Callable[[int], dict[str, Any]] | None = None,
        batch_size: int = 1,
        progress: bool = True,
        description: str | None = None,
        on_error: str = "raise",
    ) -> StepReport:
        """Process every frame not already done, ``batch_size`` frames per ``process`` call.

        ``process(frames) -> [outputs per frame]``. ``frame_inputs(frame)`` gives the frame's
        own inputs for its key (seed, phase, source hashes). ``on_error='skip'`` records a
        failing batch in the report and goes on (a corrupt source frame must not stop a
        night's batch); ``'raise'`` stops.
        """
        frames = list(frames)
        if self.disclosure is not None and self.intermediate == "qoi":  # a fresh memory each run
            from .provenance.sequence import SequenceMarker

            self._marker = SequenceMarker(self.disclosure, self.sequence_manifest_id(),
                                          lambda a: _discloses(a) and self._ext_of(a) == "qoi")
            from .provenance.sequence import preview_picks

            # the frames the preview will likely show (one output: the same picks by frame)
            self._preview_want = set(preview_picks(set(self._ledger) | set(frames)))
        report = StepReport(self.step_id, self.out_dir)
        keys = {f: self.frame_key(f, frame_inputs(f) if frame_inputs else None) for f in frames}
        todo = [f for f in frames if not self.is_done(f, keys[f])]
        report.skipped = [f for f in frames if f not in set(todo)]
        t_start = time.perf_counter()
        bar = _progress(progress, description or f"{self.kind} {self.step_id}", len(frames), len(report.skipped))
        writer: WriteBehind | None = None
        finished = False
        try:
            with StopFlag() as flag:
                for i in range(0, len(todo), batch_size):
                    if flag.stop:
                        if writer is not None:
                            writer.drain()  # every frame computed is written and recorded first
                        raise Interrupted(
                            f"stopped after {len(report.done)} new frames ({len(report.skipped) + len(report.done)}/{len(frames)} done)",
                            hint="run the same command again to resume",
                        )
                    batch = todo[i:i + batch_size]
                    t0 = time.perf_counter()
                    try:
                        results = process(batch)
                        if len(results) != len(batch):
                            raise MachinimaError(f"{self.kind}: process returned {len(results)} outputs for {len(batch)} frames")
                    except (MachinimaError, ValueError, OSError) as exc:
                        if on_error != "skip":
                            raise
                        for f in batch:
                            report.failed[f] = str(exc)
                        bar.advance(len(batch))
                        continue
                    dt = (time.perf_counter() - t0) / len(batch)
                    report.kernel_seconds += dt * len(batch)
                    if writer is None:  # the queue's depth from the frame's size: memory stays bounded
                        nbytes = sum(np.asarray(o).nbytes for o in results[0].values()) or 1
                        writer = WriteBehind(in_flight(nbytes) if WRITE_BEHIND else 1, 1 if not WRITE_BEHIND else None)
                    for f, outs in zip(batch, results):
                        # a copy (~1 ms a 1080p frame): a kernel may reuse its buffers for the next frame;
                        # QOI pictures marked here, in frame order (a still mark on a still picture)
                        if self._marker is not None:
                            outs, premarked = self._marker.mark(outs)
                        else:
                            outs, premarked = {k: np.array(v, copy=True) for k, v in outs.items()}, frozenset()
                        self._inflight[f] = writer.submit(self._write_done, report, f, keys[f], outs, dt, premarked)
                        if not WRITE_BEHIND:
                            writer.drain()
                    bar.advance(len(batch))
            if writer is not None:
                writer.drain()
            finished = True
        finally:
            if writer is not None:
                try:
                    writer.close()  # frames already queued are written (and recorded) even on an error
                except Exception:
                    if finished:
                        raise
                report.write_wait_seconds = writer.wait_s
            bar.close()
            if report.done or self._seal_stale():
                t_seal = time.perf_counter()
                self.seal()
                report.seal_seconds = time.perf_counter() - t_seal
            report.seconds = time.perf_counter() - t_start
            if progress and report.done:  # every step's CLI: frames/s disk to disk beside the kernel's
                _say(report.summary(description or f"{self.kind} {self.step_id}"))
            self.write_params(
                frames_total=len(frames),
                frames_done=len(self._ledger),
                last_run={"done": len(report.done), "skipped": len(report.skipped), "failed": len(report.failed), "seconds": round(report.seconds, 3),
                          "kernel_seconds": round(report.kernel_seconds, 3), "bytes_written": report.bytes_written},
            )
        report.done.sort()
        return report

    def _write_done(self, report: StepReport, frame: int, key: str, outputs: Outputs, seconds: float,
                    premarked: frozenset[str] = frozenset()) -> None:
        try:
            _, nbytes = self._write_frame(frame, key, outputs, seconds, premarked=premarked)
            with self._ledger_lock:
                report.done.append(frame)
                report.bytes_written += nbytes
        finally:
            self._inflight.pop(frame, None)
