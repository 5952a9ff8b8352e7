"""Run the guides as written: every fenced ```bash / ```console / ```sh block of README.md and
docs/*.md, in order, in one fresh project folder per guide OUTSIDE the repository, as a pip user
would type it.

Why a runner and not a list of commands: a guide is a sequence (a take is made, then exported);
only running it in order, from an empty folder, shows a missing step, a path into the checkout,
or a traceback.

What a doc may say about the block that follows it, in an HTML comment (invisible when rendered)
on the lines just above the fence::

    <!-- guide: skip GPU: needs CUDA and SD 1.5 weights -->   not run; the reason is reported
    <!-- guide: fails -->                                    must exit non-zero with a one-line error
    <!-- guide: makes out/x.glb diner.blend -->             files (or folders) it must leave behind
    <!-- guide: timeout 120 -->                              seconds (default 90)
    <!-- guide: save studio.toml -->                         (any language) the file a person saves

A ```console block runs its ``$ `` lines (the rest is output); ```bash/```sh blocks run whole,
under ``bash -e -o pipefail``. Commands a guide starts in the background (``... &``) share the
block's process group and are stopped (SIGINT, then SIGTERM, then SIGKILL) when the guide ends.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LANGS = ("bash", "console", "sh", "shell")
DEFAULT_TIMEOUT = 90.0
_FENCE = re.compile(r"^```(\S*)\s*$")
_MARK = re.compile(r"^<!--\s*guide:\s*(\w+)\s*(.*?)\s*-->$")


@dataclass
class Block:
    doc: str                 # README.md, docs/artist.md
    line: int                # the fence's line (1-based)
    lang: str
    text: str                # the block as written
    skip: str | None = None  # the reason, when the doc says it cannot run in CI
    fails: bool = False
    makes: list[str] = field(default_factory=list)
    timeout: float = DEFAULT_TIMEOUT
    save: str | None = None  # a shown file (```toml) the guide has you save under this name

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"

    def script(self) -> str:
        """What bash runs: the block, or a console block's ``$`` lines (with their ``\\``
        continuations)."""
        if self.lang != "console":
            return self.text
        out, more = [], False
        for line in self.text.splitlines():
            if more or line.startswith("$ "):
                out.append(line[2:] if line.startswith("$ ") and not more else line)
                more = line.rstrip().endswith("\\")
        return "\n".join(out)


class GuideSyntaxError(ValueError):
    """A guide marker the runner does not know (a typo would silently run or skip a block)."""


def parse(path: Path) -> list[Block]:
    """The runnable blocks of one doc, with what the doc says about each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    doc = str(path.relative_to(ROOT))
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        block = Block(doc, i + 1, m.group(1), "\n".join(lines[i + 1:end]))
        j = i - 1
        while j >= 0 and (not lines[j].strip() or _MARK.match(lines[j].strip())):
            mark = _MARK.match(lines[j].strip())
            if mark:
                _apply(block, mark.group(1), mark.group(2), f"{doc}:{j + 1}")
            j -= 1
        if block.lang in LANGS or block.save:
            blocks.append(block)
        i = end + 1
    return blocks


def _apply(block: Block, word: str, rest: str, where: str) -> None:
    if word == "skip":
        if not rest:
            raise GuideSyntaxError(f"{where}: `guide: skip` needs a reason")
        block.skip = rest
    elif word == "fails":
        block.fails = True
    elif word == "makes":
        block.makes += rest.split()
    elif word == "save":
        block.save = rest
    elif word == "timeout":
        block.timeout = float(rest)
    else:
        raise GuideSyntaxError(f"{where}: unknown guide marker {word!r} (skip, fails, makes, timeout)")


def guides() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _metadata_dir(into: Path) -> Path:
    """A ``machinima`` dist-info built from this checkout's pyproject.toml, first on the path:
    shipped examples, plugins and model probes are found through entry points, and an older
    install's metadata must not stand in for the checkout being tested."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    project = cfg["project"]
    info = into / f"machinima-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: machinima\nVersion: {project['version']}\n")
    groups = {"console_scripts": project.get("scripts", {}), **project.get("entry-points", {})}
    text = "".join(f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n" for g, eps in groups.items())
    (info / "entry_points.txt").write_text(text)
    return into


@dataclass
class Result:
    block: Block
    rc: int
    out: str
    err: str
    seconds: float


class GuideRun:
    """One guide's project folder and the processes its blocks left running."""

    def __init__(self, doc: str) -> None:
        self.doc = doc
        self._tmp = tempfile.TemporaryDirectory(prefix="guide-")
        base = Path(self._tmp.name)
        if base.resolve().is_relative_to(ROOT):
            raise RuntimeError(f"{base} is inside the repository; set TMPDIR elsewhere")
        self.cwd = base / "project"
        self.cwd.mkdir()
        (base / "home").mkdir()
        self.logs = base / "logs"
        self.logs.mkdir()
        meta = _metadata_dir(base / "meta")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MACHINIMA_", "PYTEST_"))}
        env.update(
            HOME=str(base / "home"),
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            PYTHONPATH=os.pathsep.join([str(meta), str(ROOT)]),
            PYTHONUNBUFFERED="1",
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            COLUMNS="120",
        )
        self.env = env
        self._groups: list[subprocess.Popen] = []

    def run(self, block: Block) -> Result:
        """Run one block; its output goes to files, not pipes, so a server it leaves running in
        the background does not hold the block open."""
        t0 = time.monotonic()
        if block.save:
            target = self.cwd / block.save
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.text + "\n", encoding="utf-8")
            return Result(block, 0, "", "", time.monotonic() - t0)
        n = len(self._groups)
        out_path, err_path = self.logs / f"{n}.out", self.logs / f"{n}.err"
        with open(out_path, "w") as out, open(err_path, "w") as err:
            proc = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", block.script()], cwd=self.cwd, env=self.env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
        self._groups.append(proc)
        note = ""
        try:
            rc = proc.wait(timeout=block.timeout)
        except subprocess.TimeoutExpired:
            _stop_group(proc.pid)
            rc = proc.wait()
            note = f"\n[guide runner] timed out after {block.timeout:.0f} s"
        return Result(block, rc if not note else -1, out_path.read_text(errors="replace"),
                      err_path.read_text(errors="replace") + note, time.monotonic() - t0)

    def problems(self, r: Result) -> list[str]:
        """What is wrong with a finished block, for a person: empty when it did as the doc says."""
        out = []
        if r.block.fails:
            if r.rc == 0:
                out.append("the doc says it fails, and it exited 0")
            elif r.err.strip().count("\n") > 3:
                out.append("it failed, but not with a short error")
        elif r.rc != 0:
            out.append(f"exit {r.rc}")
        if "Traceback (most recent call last)" in r.err + r.out:
            out.append("a traceback")
        for name in r.block.makes:
            if not (self.cwd / name).exists():
                out.append(f"it did not make {name}")
        return out

    def close(self) -> None:
        """Stop what the guide left running (its servers and senders), then drop the folder."""
        for proc in self._groups:
            _stop_group(proc.pid)
        self._groups.clear()
        self._tmp.cleanup()


def _stop_group(pgid: int) -> None:
    for sig, wait in ((signal.SIGINT, 5.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
