"""A take's own audio: ``<take>/audio/``, one file per recording (dialogue, room tone...).

Audio recorded on the stage or imported later lives in the take, so a post step that uses it
(lip sync's mouth stream, a re-synced plate) names an input that travels with the take and whose
hash its provenance records. Any format PyAV reads; files starting with ``.`` are unfinished
writes and are ignored.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .errors import TakeError
from .poststep import file_hash

AUDIO_DIR = "audio"
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aiff", ".aif")


def audio_files(take_path: str | Path) -> list[Path]:
    """The take's audio files, sorted by name."""
    folder = Path(take_path) / AUDIO_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in AUDIO_SUFFIXES)


def take_audio(take_path: str | Path, name: str | None = None) -> Path:
    """The take's audio file called ``name`` (with or without suffix), or its only one."""
    files = audio_files(take_path)
    listing = ", ".join(p.name for p in files) or "none"
    take = Path(take_path).name
    if name is not None:
        hit = [p for p in files if name in (p.name, p.stem)]
        if not hit:
            raise TakeError(f"take {take} has no audio {name!r} (its audio: {listing})")
        return hit[0]
    if not files:
        raise TakeError(f"take {take} has no audio in {AUDIO_DIR}/", hint="give the dialogue with --audio FILE (it is copied into the take)")
    if len(files) > 1:
        raise TakeError(f"take {take} has several audio files ({listing}): say which with --audio NAME")
    return files[0]


def import_audio(take_path: str | Path, source: str | Path) -> Path:
    """Copy ``source`` into ``<take>/audio/`` under its own name (atomically) and return the copy.
    A file already inside the take is returned as it is; the same name with the same content is
    not copied twice; the same name with other content is an error (nothing is overwritten)."""
    take_path, source = Path(take_path), Path(source)
    if not source.is_file():
        raise TakeError(f"no audio file at {source}")
    folder = take_path / AUDIO_DIR
    try:
        if source.resolve().parent == folder.resolve():
            return folder / source.name  # spelled from the take, like every other return
    except OSError:
        pass
    if source.suffix.lower() not in AUDIO_SUFFIXES:
        raise TakeError(f"{source.name} is not an audio file the take keeps ({', '.join(AUDIO_SUFFIXES)})")
    dest = folder / source.name
    if dest.exists():
        if file_hash(dest) == file_hash(source):
            return dest
        raise TakeError(f"take {take_path.name} already has a different {AUDIO_DIR}/{source.name}",
                        hint="rename the new file, or pass the take's own with --audio NAME")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{source.stem}.", suffix=source.suffix, dir=folder)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise TakeError(f"could not copy {source} into {folder}: {exc.strerror or exc}") from None
    return dest


def resolve_audio(take_path: str | Path, given: str | Path | None = None) -> Path:
    """The audio a step uses: the take's only file (``given`` None), a file given by path (copied
    into the take first), or one of the take's files given by name."""
    if given is None:
        return take_audio(take_path)
    if Path(given).is_file():
        return import_audio(take_path, given)
    return take_audio(take_path, str(given))
