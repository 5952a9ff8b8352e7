"""Which take a person means: an id in the takes root, or a folder, relative or absolute.

Every command that names a take resolves it here, so ``demo_1_10_t001``, ``takes/demo_1_10_t001``
and ``/stage/takes/demo_1_10_t001`` work the same in every command, and a typo gets one line that
lists the ids it is close to (difflib) instead of a traceback or a bare "not found".

Paths come back absolute: a take opened from a relative path keeps working if the process (or
a library it calls, such as Blender) changes its working folder later.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from .errors import TakeError
from .take import MANIFEST, iter_take_folders


def find_take(ref: str | Path, root: str | Path) -> Path:
    """The folder of the take ``ref`` names: a folder as typed (relative to the current folder
    or absolute), else an id (or a path) inside ``root``. Raises ``TakeError`` naming the
    close matches when there is no such take."""
    text = str(ref).strip()
    root = Path(root)
    if not text:
        raise TakeError("no take given", hint=f"name a take id or folder; `machinima takes list --root {root}` shows them")
    given = Path(text).expanduser()
    for candidate in (given, root / given):  # root / an absolute path is that path
        if (candidate / MANIFEST).is_file():
            return candidate.absolute()
    if given.is_dir() or (root / given).is_dir():
        folder = given if given.is_dir() else root / given
        raise TakeError(f"{folder} is a folder but not a take (it has no {MANIFEST})",
                        hint="name a take folder or a take id")
    if given.suffix:  # alice.mp4: a file someone meant (take ids are slugs, without dots)
        raise TakeError(f"no file or folder {text!r} (looked in {Path.cwd()}), and no take of that name in {root}",
                        hint="check the file's path; a take is named by its id or its folder")
    raise TakeError(f"no take {text!r} in {root}" + _suggestions(given.name, root),
                    hint=f"`machinima takes list --root {root}` shows the takes")


def find_in_take(ref: str | Path, root: str | Path) -> Path:
    """A path inside a take (``demo_1_10_t001/post/stylize-ink``): as typed when it exists,
    else with its first part resolved as a take (id or folder) by ``find_take``."""
    given = Path(str(ref).strip()).expanduser()
    if given.exists():
        return given.absolute()
    parts = given.parts
    for i in range(len(parts), 0, -1):  # the longest prefix that is a take
        try:
            take = find_take(Path(*parts[:i]), root)
        except TakeError:
            if i == 1:
                raise  # names the take that is missing, with its close matches
            continue
        return take.joinpath(*parts[i:])
    raise TakeError("no path given", hint="name a folder inside a take, e.g. TAKE/post/STEP")


def _suggestions(name: str, root: Path) -> str:
    ids = [p.name for p in iter_take_folders(root)]
    close = difflib.get_close_matches(name, ids, n=3, cutoff=0.6)
    if close:
        return f"; did you mean {', '.join(close)}?"
    if not ids:
        return " (that folder holds no takes)" if root.is_dir() else f" ({root} does not exist)"
    return ""
