"""The whole (tiny) film in one command, offline, on embedded defaults.

    stage server + synthetic performers over real VMC UDP -> a scripted director records a take
    -> Blender builds the example set, imports the take, renders passes
    -> a synthetic live-action plate (a real public-domain portrait on a green screen)
    -> rights records bound to both faces (reference photos) -> face swap (extract, train a tiny model, merge)
    -> depth composite of the swapped plate into the rendered set
    -> stylize (painted look; diffusion when a local model is configured) -> archive look
    -> lip sync of a spoken line into the take (when espeak-ng is installed)
    -> film.mp4, contact_sheet.png, a timing table; every output signed and watermarked; `rights audit` clean.

Every step is the CLI command a person would type (printed as it runs); each is resumable, so a
second run finishes fast and redoes nothing. The demo imports no spoke: it drives them.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from rich.console import Console
from rich.table import Table

from .errors import MachinimaError
from .take import iter_take_folders, read_manifest

PRODUCTION = "demo"
FRAMES = "0:47"  # take frames rendered (2 s at 24 fps), every 2nd
RES = "320x180"
TRAIN_ITERS = 40
ACTOR_PLACE = "0.6,0.45,-0.4"  # the bust sits behind the diner table: its top hides her chest


class DemoError(MachinimaError):
    """A demo step failed (the message names the step and the command)."""


@dataclass
class Demo:
    out: Path
    console: Console
    timings: list[tuple[str, float, str]] = field(default_factory=list)

    # --- helpers -------------------------------------------------------------------------------
    @property
    def takes(self) -> Path:
        return self.out / "takes"

    def take(self) -> Path | None:
        folders = [f for f in iter_take_folders(self.takes) if read_manifest(f).status in ("complete", "recovered")]
        return folders[-1] if folders else None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("MACHINIMA_TAKES_ROOT", None)
        env["MACHINIMA_PROJECT"] = str(self.out)
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("GLOG_minloglevel", "2")  # mediapipe's native logging
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        return env

    def machinima(self, *args: str, background: bool = False, quiet: bool = False):
        cmd = [sys.executable, "-m", "machinima", *map(str, args)]
        self.console.print(f"  $ machinima {' '.join(map(str, args))}", style="dim", highlight=False)
        kw = dict(cwd=self.out, env=self.env())
        if background:
            return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
        r = subprocess.run(cmd, capture_output=quiet, text=True, **kw)
        if r.returncode != 0:
            raise DemoError(f"`machinima {' '.join(map(str, args))}` failed (exit {r.returncode})"
                            + (f": {r.stderr.strip().splitlines()[-1]}" if quiet and r.stderr.strip() else ""))
        return r

    def step(self, name: str, fn: Callable[[], str]) -> None:
        self.console.rule(f"[bold]{name}")
        t0 = time.perf_counter()
        result = fn()
        dt = time.perf_counter() - t0
        self.timings.append((name, dt, result))
        self.console.print(f"[green]done[/] in {dt:.1f} s: {result}")

    # --- steps ---------------------------------------------------------------------------------
    def setup(self) -> str:
        certs = self.out / "certs"
        if not (certs / "signer.pem").exists():
            self.machinima("rights", "certs", certs, quiet=True)
        cfg = self.out / "machinima.toml"
        if not cfg.exists():
            cfg.write_text(
                f'production = "{PRODUCTION}"\ntakes_root = "takes"\nmodels_dir = "models"\nfps = "24"\n\n'
                '[rights]\ncert = "certs/signer.pem"\nkey = "certs/signer.key"\ntrust_anchors = "certs/root.pem"\n'
            )
        (self.out / "models").mkdir(exist_ok=True)
        return f"project {self.out} (machinima.toml, a local test signing chain in certs/)"

    def record(self) -> str:
        if self.take():
            return f"take {self.take().name} exists (skipped)"
        port, udp = _free_port(), _free_port(udp=True)
        server = self.machinima("server", "--root", self.takes, "--port", port, "--udp", f"vmc:{udp}", "--fps", "24", background=True)
        try:
            _wait_port(port, server)
            token = self.machinima("server", "token", "--role", "director", "--name", "demo-director", "--root", self.takes, quiet=True).stdout.strip().splitlines()[-1]
            sender = self.machinima("mocap", "send", "--synthetic", "2", "--motion", "mix", "--vmc", f"127.0.0.1:{udp}", "--fps", "60",
                                    "--seconds", "8", "--name", "performer", background=True)
            time.sleep(1.5)  # the performers are streaming
            take_id = asyncio.run(_direct(f"ws://127.0.0.1:{port}/stage", token, seconds=4.0))
            sender.wait(timeout=30)
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
        m = read_manifest(self.takes / take_id)
        samples = {s["name"]: s.get("samples") for s in m.streams}
        return f"recorded {take_id} ({m.status}): {samples}"

    def passes(self) -> str:
        take = self.take()
        diner = Path(__file__).resolve().parents[1] / "blender_addon" / "examples" / "diner.toml"
        self.machinima("blender", "render", take, "--set", diner, "--passes", "rgb,depth,mask,pose", "--res", RES,
                       "--engine", "cycles", "--samples", "8", "--frames", FRAMES, "--step", "2")
        n = len(list((take / "passes" / "rgb").glob("*.png")))
        return f"{n} frames x rgb/depth/mask/pose in {take.name}/passes (Cycles, {RES})"

    def plate(self) -> str:
        """A green-screen 'live-action' plate: a real public-domain portrait (scikit-image's
        astronaut) walking across the screen; and the source face (matplotlib's Grace Hopper)."""
        plate, src = self.out / "plate", self.out / "source-face"
        if plate.exists() and src.exists():
            return "plates exist (skipped)"
        import cv2
        from matplotlib import cbook
        from skimage import data

        from .imageseq import write_image

        astronaut = data.astronaut()
        person = cv2.resize(astronaut[20:420, 90:390], (210, 280))
        mask = np.zeros(person.shape[:2], np.uint8)
        cv2.ellipse(mask, (105, 105), (70, 92), 0, 0, 360, 255, -1)  # head
        cv2.ellipse(mask, (105, 300), (105, 110), 0, 0, 360, 255, -1)  # shoulders
        mask = cv2.GaussianBlur(mask, (5, 5), 0)[..., None] / 255.0
        for f in range(24):
            frame = np.zeros((360, 640, 3), np.uint8)
            frame[:] = (40, 190, 60)  # green screen
            x = 120 + f * 12
            roi = frame[80:360, x:x + 210]
            roi[:] = (person * mask + roi * (1 - mask)).astype(np.uint8)
            write_image(plate / f"{f:06d}.png", frame)
        with cbook.get_sample_data("grace_hopper.jpg") as fh:
            hopper = cv2.imdecode(np.frombuffer(fh.read(), np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
        for f in range(24):
            s = 0.55 + 0.01 * f
            img = cv2.resize(hopper, None, fx=s, fy=s)
            canvas = np.full((360, 640, 3), 30, np.uint8)
            y0, x0 = 10, 100 + 4 * f
            h, w = min(img.shape[0], 350), min(img.shape[1], 540 - 4 * f)
            canvas[y0:y0 + h, x0:x0 + w] = img[:h, :w]
            write_image(src / f"{f:06d}.png", canvas)
        return "24 plate frames (astronaut on green) + 24 source-face frames (Grace Hopper)"

    def rights(self) -> str:
        """Records bound to the two faces by reference photos (the portraits the plates are made from)."""
        import shutil as _sh

        import cv2
        from matplotlib import cbook
        from skimage import data

        releases = self.out / "releases"
        release = releases / "public-domain.txt"
        if not release.exists():
            releases.mkdir(exist_ok=True)
            release.write_text("Both portraits are public-domain photographs shipped with matplotlib and scikit-image; demo use.\n")
            cv2.imwrite(str(releases / "eileen-collins.png"), data.astronaut()[..., ::-1])
            _sh.copy(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), releases / "grace-hopper.jpg")
        store = self.out / "rights"  # the default store: <takes-root>/../rights
        added = []
        for subject, photo, by in (("grace-hopper", "grace-hopper.jpg", "public domain (US Navy photograph)"),
                                   ("eileen-collins", "eileen-collins.png", "public domain (NASA photograph)")):
            if not (store / f"{subject}.json").exists():
                self.machinima("rights", "add", subject, "--photo", releases / photo, "--document", release, "--granted-by", by,
                               "--scope", "training", "--scope", "face_replacement", "--expires", "none", "--holder", "public domain",
                               quiet=True)
                added.append(subject)
        return f"rights records bound to reference photos: {', '.join(added) or 'already there'} (production {PRODUCTION})"

    def faceswap(self) -> str:
        fs = self.out / "faces"
        if not (fs / "source-faces").exists():
            self.machinima("faceswap", "extract", self.out / "source-face", "--out", fs / "source-faces", "--size", "128")
        if not (fs / "plate-faces").exists():
            self.machinima("faceswap", "extract", self.out / "plate", "--out", fs / "plate-faces", "--size", "128")
        self.machinima("faceswap", "train", "--src", fs / "source-faces", "--dst", fs / "plate-faces", "--model", fs / "model",
                       "--res", "64", "--iters", str(TRAIN_ITERS), "--batch", "8", "--save-every", "20", "--e-dims", "32", "--ae-dims", "128",
                       "--d-dims", "32", "--lr", "0.0005", "--device", "cpu")
        self.machinima("faceswap", "merge", self.out / "plate", "--model", fs / "model", "--out", self.out / "plate-swapped",
                       "--color", "rct", "--smooth", "one-euro")
        return (f"tiny DF model trained {TRAIN_ITERS} iterations at 64 px (a pipeline check: a real swap trains for "
                "hours on a GPU, `--iters 100000`); plate faces swapped -> plate-swapped/")

    def composite(self) -> str:
        take = self.take()
        frames = self.out / "plate-swapped" / "rgb"
        self.machinima("composite", take, "--plate", frames, "--key", "green", "--place", ACTOR_PLACE, "--height", "0.85", "--plate-fps", "12",
                       "--step-id", "composite")
        return f"swapped actor composited into the set -> {take.name}/post/composite"

    def stylize(self) -> str:
        take = self.take()
        look = self.out / "painted-footage.toml"
        if not look.exists():  # the shipped painted look, with image-derived lines: footage has no depth pass
            look.write_text('schema = "machinima.look"\nversion = 1\nname = "painted"\nengine = "classical"\nseed = 7\n\n'
                            '[classical]\nmethod = "painted"\nsigma_s = 40.0\nsigma_r = 0.4\ncolors = 10\nedges = 0.6\n\n'
                            '[[controls]]\nkind = "lineart"\n\n[cadence]\nmode = "propagate"\nevery = 4\ninit_blend = 0.3\n')
        self.machinima("stylize", "run", take, "--look", look, "--input", take / "post" / "composite" / "rgb",
                       "--step-id", "stylize-painted")
        return ("painted look by the classical engine (no weights here); for the diffusion look, "
                "`machinima models check --look watercolor-sd15` lists the weights to put under models/, then --look watercolor-sd15")

    def archive(self) -> str:
        take = self.take()
        self.machinima("archive", take, "--from", "post/stylize-painted", "--preset", "vhs-1994", "--seed", "1994")
        return f"VHS 1994 look -> {take.name}/post/archive-vhs-1994"

    def lipsync(self) -> str:
        if shutil.which("espeak-ng") is None:
            return "skipped: espeak-ng is not installed (apt-get install espeak-ng) to speak the demo line"
        take = self.take()
        line = self.out / "line.wav"
        if not line.exists():
            subprocess.run(["espeak-ng", "-w", str(line), "Welcome to the diner. Take a seat."], check=True)
            (self.out / "line.txt").write_text("welcome to the diner take a seat")
        streams = {s["name"] for s in read_manifest(take).streams}
        performer = "performer-1"
        if f"blend/{performer}-mouth" not in streams:
            self.machinima("lipsync", "analyze", line, "--text", self.out / "line.txt", "--take", take, "--performer", performer,
                           "--out", self.out)
        return f"mouth animation for {performer} in the take (blend/{performer}-mouth) + line.mouth.tsv/json (Rhubarb)"

    def deliver(self) -> str:
        from .imageseq import contact_sheet, read_image

        take = self.take()
        film = self.out / "film.mp4"
        shutil.copyfile(take / "post" / "archive-vhs-1994" / "archive-vhs-1994.mp4", film)
        rows = [("render", take / "passes" / "rgb"), ("depth", take / "passes" / "depth"), ("plate", self.out / "plate"),
                ("face swap", self.out / "plate-swapped" / "rgb"), ("composite", take / "post" / "composite" / "rgb"),
                ("stylized", take / "post" / "stylize-painted" / "frames"), ("archive", take / "post" / "archive-vhs-1994" / "frames")]
        images, labels = [], []
        for label, folder in rows:
            files = sorted(p for p in folder.glob("*.*") if p.suffix in (".png", ".exr") and not p.name.startswith("."))
            if files:
                img = read_image(files[len(files) // 2])
                if img.dtype.kind == "f":  # depth in metres: show inverse depth, near = bright
                    d = np.where(img < 1e3, img, np.nan)
                    inv = 1.0 / np.clip(d, 0.1, None)
                    lo, hi = np.nanmin(inv), np.nanmax(inv)
                    img = np.nan_to_num((inv - lo) / (hi - lo + 1e-9) * 255).astype(np.uint8)
                images.append(img)
                labels.append(label)
        from .imageseq import write_image

        write_image(self.out / "contact_sheet.png", contact_sheet(images, columns=4, width=1280, labels=labels))
        # C2PA on the deliveries: the film keeps the archive step's manifest (its watermark names it) as parent
        self.machinima("rights", "sign", film, "--take", take.name, "--step", "archive-vhs-1994", "--kind", "delivery", quiet=True)
        self.machinima("rights", "sign", self.out / "contact_sheet.png", "--take", take.name, "--step", "contact-sheet", "--kind", "delivery",
                       "--mark", quiet=True)
        r = self.machinima("verify", film, quiet=True)
        verdict = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else "verified"
        self.machinima("rights", "audit", self.out, quiet=True)  # every identity, model and output within its rights (exit 0)
        return f"{film.name} ({verdict}); contact_sheet.png; rights audit clean"

    def run(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        steps = [("project and signing certificates", self.setup), ("stage: record a take", self.record),
                 ("Blender: set + passes", self.passes), ("live-action plate", self.plate), ("rights records", self.rights),
                 ("face swap", self.faceswap), ("depth composite", self.composite), ("stylize", self.stylize),
                 ("archive look", self.archive), ("lip sync", self.lipsync), ("deliver", self.deliver)]
        t0 = time.perf_counter()
        for name, fn in steps:
            self.step(name, fn)
        table = Table(title=f"machinima demo: {time.perf_counter() - t0:.0f} s")
        table.add_column("step")
        table.add_column("s", justify="right")
        table.add_column("result")
        for name, dt, result in self.timings:
            table.add_row(name, f"{dt:.1f}", result)
        self.console.print(table)
        self.console.print(f"[bold]film:[/] {self.out / 'film.mp4'}\n[bold]contact sheet:[/] {self.out / 'contact_sheet.png'}")
        (self.out / "timings.json").write_text(json.dumps([{"step": n, "seconds": round(s, 2), "result": r} for n, s, r in self.timings], indent=2))


async def _direct(url: str, token: str, seconds: float) -> str:
    """The scripted director: slate, record, a marker, stop."""
    from .client import StageClient

    async with StageClient(url, token) as stage:
        await stage.slate(production=PRODUCTION, scene="1", shot="10")
        res = await stage.record()
        await asyncio.sleep(seconds / 2)
        await stage.marker("action", note="the waiter turns")
        await asyncio.sleep(seconds / 2)
        done = await stage.stop()
    return str(done.get("take") or res.get("take"))


def _free_port(udp: bool = False) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise DemoError(f"the stage server exited: {proc.stderr.read().decode()[-500:] if proc.stderr else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise DemoError(f"the stage server did not open port {port} in {timeout:.0f} s")


def run_demo(out: Path, console: Console) -> None:
    Demo(out.resolve(), console).run()
