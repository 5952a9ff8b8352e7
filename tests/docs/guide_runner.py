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

Ports: the guides name the documented ports (the stage's 8765, VMC's 39539, ...), which a
developer's running stage or another CI job may hold. Each guide gets free ports of its own:
every documented port in a block (``127.0.0.1:39541``, ``--vmc 39541``, ``ws://...:8765/``) is
replaced by that guide's port, the same one in every block, and the stage's default port (a
server started without ``--port``) comes from ``MACHINIMA_SERVER__PORT``. So guides can run side
by side (``run_guides``), each in its own folder with its own ports.
"""

from __future__ import annotations

import os
import re
import socket
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LANGS = ("bash", "console", "sh", "shell")
DEFAULT_TIMEOUT = 90.0
_FENCE = re.compile(r"^```(\S*)\s*$")
_MARK = re.compile(r"^<!--\s*guide:\s*(\w+)\s*(.*?)\s*-->$")
# the documented ports: the stage (8765), VMC (39539; 39540-39542 in the guides' examples), the
# VRChat OSC target (9000), Xsens (9763)
PORTS = (8765, 39539, 39540, 39541, 39542, 9000, 9763)
_GIVEN: set[int] = set()  # ports free_ports handed out in this process
_GIVEN_LOCK = threading.Lock()
_PORT = re.compile(r"(?<![\w.])(" + "|".join(map(str, PORTS)) + r")(?!\d)")


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


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports that are free for both TCP and UDP on 127.0.0.1 now (a stage listens
    on TCP, its mocap sources on UDP). The sockets are held until all are chosen, so no port is
    handed out twice (in this process: guides side by side never share one); another program could
    still take one before the guide binds it."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < n:
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.bind(("127.0.0.1", 0))
            held.append(tcp)
            port = tcp.getsockname()[1]
            with _GIVEN_LOCK:
                if port in _GIVEN:
                    continue
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                udp.close()
                continue
            held.append(udp)
            ports.append(port)
        with _GIVEN_LOCK:
            _GIVEN.update(ports)
    finally:
        for sock in held:
            sock.close()
    return ports


def rewrite_ports(text: str, ports: dict[int, int]) -> str:
    """``text`` with every documented port replaced by its stand-in (``127.0.0.1:39541``,
    ``--vmc 39541``, ``:8765/stage``); numbers that only contain one (``139539``, ``1.8765``) stay."""
    return _PORT.sub(lambda m: str(ports[int(m.group(1))]), text)


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
        self.ports = dict(zip(PORTS, free_ports(len(PORTS))))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MACHINIMA_", "PYTEST_"))}
        env.update(
            HOME=str(base / "home"),
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            PYTHONPATH=os.pathsep.join([str(meta), str(ROOT)]),
            PYTHONUNBUFFERED="1",
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            COLUMNS="120",
            MACHINIMA_SERVER__PORT=str(self.ports[8765]),  # a stage started without --port, and the bridge's feedback check
            # four guides side by side on a shared 2-core machine: one OpenMP thread a process. torch's
            # default (a thread a core) spin-waits under load: the LoRA guide's 4 tiny training steps
            # took 95 s against 24 s with one thread (load 7)
            OMP_NUM_THREADS="1",
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
            target.write_text(rewrite_ports(block.text, self.ports) + "\n", encoding="utf-8")
            return Result(block, 0, "", "", time.monotonic() - t0)
        n = len(self._groups)
        out_path, err_path = self.logs / f"{n}.out", self.logs / f"{n}.err"
        with open(out_path, "w") as out, open(err_path, "w") as err:
            proc = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", rewrite_ports(block.script(), self.ports)], cwd=self.cwd, env=self.env,
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


@dataclass
class Outcome:
    """What happened to one block in ``run_guides``: passed, skipped (with the reason) or failed
    (with what a person needs to see)."""
    block: Block
    status: str              # passed | skipped | failed
    message: str = ""
    seconds: float = 0.0


def run_guide(blocks: list[Block]) -> list[Outcome]:
    """One guide's blocks in order, in one fresh folder; after a failed block the rest of the
    guide is skipped (they build on it). The folder and what the guide started are gone after."""
    outcomes: list[Outcome] = []
    run: GuideRun | None = None
    failed = False
    try:
        for block in blocks:
            if block.skip:
                outcomes.append(Outcome(block, "skipped", f"{block.id}: {block.skip}"))
                continue
            if failed:
                outcomes.append(Outcome(block, "skipped", f"{block.id}: an earlier block of {block.doc} failed"))
                continue
            run = run or GuideRun(block.doc)
            r = run.run(block)
            problems = run.problems(r)
            if problems:
                failed = True
                outcomes.append(Outcome(block, "failed", f"{block.id} ({r.seconds:.1f} s): {'; '.join(problems)}\n--- block ---\n"
                                        f"{block.text}\n--- stdout (end) ---\n{r.out[-3000:]}\n--- stderr (end) ---\n{r.err[-3000:]}",
                                        r.seconds))
            else:
                outcomes.append(Outcome(block, "passed", "", r.seconds))
    finally:
        if run is not None:
            run.close()
    return outcomes


def run_guides(blocks: list[Block], jobs: int | None = None) -> dict[str, Outcome]:
    """Every guide's blocks, ``jobs`` guides at a time (default ``GUIDE_JOBS`` or 4), each in its
    own folder with its own ports; outcomes by block id. ``GUIDE_TIMES=FILE`` writes each
    guide's and block's seconds there (JSON). Side by side because most of a guide's
    time is waiting (a stage starting, a 3-second recording, a sender's --seconds), not CPU.
    The guides with the most blocks start first, so the longest does not start last."""
    by_doc: dict[str, list[Block]] = {}
    for b in blocks:
        by_doc.setdefault(b.doc, []).append(b)
    order = sorted(by_doc.values(), key=lambda bs: -sum(b.timeout for b in bs if not b.skip))
    jobs = jobs or int(os.environ.get("GUIDE_JOBS", "4"))  # GUIDE_JOBS=1: one guide at a time (to read a failure's timing alone)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        done = list(pool.map(run_guide, order))
    if os.environ.get("GUIDE_TIMES"):  # where the time goes: each guide's blocks, slowest guide first
        import json

        rows = sorted(({"guide": os_[0].block.doc, "seconds": round(sum(o.seconds for o in os_), 1),
                        "blocks": {o.block.id: [o.status, round(o.seconds, 1)] for o in os_}} for os_ in done if os_),
                      key=lambda r: -r["seconds"])
        Path(os.environ["GUIDE_TIMES"]).write_text(json.dumps({"jobs": jobs, "load": os.getloadavg(), "guides": rows}, indent=1))
    return {o.block.id: o for outcomes in done for o in outcomes}
