"""The whole (tiny) film in one command, offline, on embedded defaults.

    stage server + synthetic performers over real VMC UDP -> a scripted director records a take
    -> Blender builds the example set (`--set diner`), imports the take, renders passes through
       the `wide` camera (rgb denoised, depth, mask, pose, light, motion)
    -> a live-action plate (a real public-domain portrait walking on a green screen)
    -> rights records bound to both faces (reference photos) -> face swap (extract, train, merge)
    -> a spoken line (espeak-ng) -> lip sync: the avatar's mouth stream in the take, and the
       swapped actor's mouth re-synced in the plate (a take post step, `post/lipsync/`; the swapped
       face is cleared by the merge's records, inherited from the merge step's signed frames)
    -> depth composite of the lip-synced plate into the rendered set
    -> stylize (painted look; diffusion when a local model is configured) -> archive look
    -> exports: the editor's timeline (OTIO), the take as glb, the picture master (ProRes)
    -> film.mp4 (with the line), contact_sheet.png, a timing table; every output signed and
       watermarked; `rights audit` clean.

Every step is the CLI command a person would type (printed as it runs); each is resumable, so a
second run finishes fast and redoes nothing: ``timings.json`` says, per step, how much work it
did (``done``: frames or iterations made in this run). The demo imports no spoke: it drives them.
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

from rich.console import Console
from rich.table import Table

from .errors import MachinimaError
from .take import iter_take_folders, read_manifest

PRODUCTION = "demo"
FPS = 24
FILM_FRAMES = 72  # take frames 0..71: 3 s at 24 fps, the spoken line (2.6 s) with a breath either side
FRAMES = f"0:{FILM_FRAMES - 1}"
RES = "320x180"
SAMPLES = 8  # with OpenImageDenoise (the render's default): clean at a fraction of the samples
TRAIN_ITERS = 60  # a pipeline check; `--quality` trains QUALITY_ITERS (the identity goal, docs/faceswap.md)
QUALITY_ITERS = 2000  # 0.582 from the source at 14 min of one core; 1,000 sits on the 0.6 line (docs/faceswap.md)
CAMERA = "cam.wide"  # the set's camera "wide" (set objects are named by kind)
ACTOR_PLACE = "0.3,0.35,3.0"  # feet (the plate's lowest matte point) 4 m from the wide camera: the whole bust in frame, ~50 px tall
ACTOR_HEIGHT = "0.85"  # the bust (head and shoulders) is 0.85 m tall
LINE = "Welcome to the diner. Take a seat."
LINE_LEAD = 0.25  # s of silence before the line: the mouth starts closed
PERFORMER = "performer-1"
# The face on the swapped plate is a new face: the merge's blend of two cleared people matches
# neither reference photo (dlib distance ~0.63 to both after the demo's short training). Lip sync
# on the merge step's own (signed) frames inherits the merge's clearance: both records, still
# valid for lip_sync (machinima.rights.inherit); nothing is registered for the swap itself.
SWAPPED_FACE = "grace-hopper"  # the --subject label of the re-synced face (labels clear nothing)


class DemoError(MachinimaError):
    """A demo step failed (the message names the step and the command)."""


@dataclass
class Demo:
    out: Path
    console: Console
    quality: bool = False
    timings: list[dict] = field(default_factory=list)

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

    def step(self, name: str, fn: Callable[[], tuple[str, int]]) -> None:
        self.console.rule(f"[bold]{name}")
        t0 = time.perf_counter()
        result, done = fn()
        dt = time.perf_counter() - t0
        self.timings.append({"step": name, "seconds": round(dt, 2), "done": done, "result": result})
        self.console.print(f"[green]done[/] in {dt:.1f} s ({done} made): {result}")

    # --- steps: each returns (what it did, how many frames / iterations / files it made now) ----
    def setup(self) -> tuple[str, int]:
        certs, made = self.out / "certs", 0
        if not (certs / "signer.pem").exists():
            self.machinima("rights", "certs", certs, quiet=True)
            made += 1
        cfg = self.out / "machinima.toml"
        if not cfg.exists():
            cfg.write_text(
                f'production = "{PRODUCTION}"\ntakes_root = "takes"\nmodels_dir = "models"\nfps = "{FPS}"\n\n'
                '[rights]\ncert = "certs/signer.pem"\nkey = "certs/signer.key"\ntrust_anchors = "certs/root.pem"\n'
            )
            made += 1
        (self.out / "models").mkdir(exist_ok=True)
        return f"project {self.out} (machinima.toml, a local test signing chain in certs/)", made

    def record(self) -> tuple[str, int]:
        if self.take():
            return f"take {self.take().name} exists (skipped)", 0
        port, udp = _free_port(), _free_port(udp=True)
        server = self.machinima("server", "--root", self.takes, "--port", port, "--udp", f"vmc:{udp}", "--fps", FPS, background=True)
        try:
            _wait_port(port, server)
            token = self.machinima("server", "token", "--role", "director", "--name", "demo-director", "--root", self.takes, quiet=True).stdout.strip().splitlines()[-1]
            sender = self.machinima("mocap", "send", "--synthetic", "2", "--motion", "mix", "--vmc", f"127.0.0.1:{udp}", "--fps", "60",
                                    "--seconds", int(FILM_FRAMES / FPS + 5), "--name", "performer", background=True)
            time.sleep(1.5)  # the performers are streaming
            take_id = asyncio.run(_direct(f"ws://127.0.0.1:{port}/stage", token, seconds=FILM_FRAMES / FPS + 2.0))  # a margin: under load the performers start late
            sender.wait(timeout=30)
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
        m = read_manifest(self.takes / take_id)
        samples = {s["name"]: s.get("samples") for s in m.streams}
        return f"recorded {take_id} ({m.status}): {samples}", 1

    def passes(self) -> tuple[str, int]:
        take = self.take()
        rgb = take / "passes" / "rgb"
        before = _count(rgb)
        self.machinima("blender", "render", take, "--set", "diner", "--camera", CAMERA, "--passes", "rgb,depth,mask,pose,light,motion",
                       "--res", RES, "--engine", "cycles", "--samples", SAMPLES, "--denoise", "--frames", FRAMES)
        n = _count(rgb)
        return f"{n} frames x rgb/depth/mask/pose/light/motion in {take.name}/passes (Cycles {SAMPLES} samples + OIDN, {RES})", n - before

    def plate(self) -> tuple[str, int]:
        """A green-screen 'live-action' plate: a real public-domain portrait (scikit-image's
        astronaut) walking across the screen; and the source face (matplotlib's Grace Hopper)."""
        from .demo_plate import SOURCE_FRAMES, write_plate, write_source

        plate, src = self.out / "plate", self.out / "source-face"
        made = 0
        if _count(plate) < FILM_FRAMES:
            write_plate(plate, FILM_FRAMES)
            made += FILM_FRAMES
        if _count(src) < SOURCE_FRAMES:
            write_source(src, SOURCE_FRAMES)
            made += SOURCE_FRAMES
        return f"{FILM_FRAMES} plate frames (astronaut on green) + {SOURCE_FRAMES} source-face frames (Grace Hopper)", made

    def rights(self) -> tuple[str, int]:
        """Records bound to the two faces by reference photos (the portraits the plates are made from)."""
        from .demo_plate import write_release_photos

        releases = self.out / "releases"
        release = releases / "public-domain.txt"
        if not release.exists():
            write_release_photos(releases)
        store = self.out / "rights"  # the default store: <takes-root>/../rights
        added = []
        for subject, photo, by in (("grace-hopper", "grace-hopper.jpg", "public domain (US Navy photograph)"),
                                   ("eileen-collins", "eileen-collins.png", "public domain (NASA photograph)")):
            if not (store / f"{subject}.json").exists():
                self.machinima("rights", "add", subject, "--photo", releases / photo, "--document", release, "--granted-by", by,
                               "--scope", "training", "--scope", "face_replacement", "--scope", "lip_sync", "--expires", "none",
                               "--holder", "public domain", quiet=True)
                added.append(subject)
        return f"rights records bound to reference photos: {', '.join(added) or 'already there'} (production {PRODUCTION})", len(added)

    def faceswap(self) -> tuple[str, int]:
        fs = self.out / "faces"
        made = 0
        if not (fs / "source-faces").exists():
            self.machinima("faceswap", "extract", self.out / "source-face", "--out", fs / "source-faces", "--size", "128")
            made += _count(fs / "source-faces")
        if not (fs / "plate-faces").exists():  # training needs a sample of the actor's face, not every frame
            self.machinima("faceswap", "extract", self.out / "plate", "--out", fs / "plate-faces", "--size", "128", "--every", "3")
            made += _count(fs / "plate-faces")
        iters = QUALITY_ITERS if self.quality else TRAIN_ITERS
        before = _model_iteration(fs / "model")
        if before < iters:
            self.machinima("faceswap", "train", "--src", fs / "source-faces", "--dst", fs / "plate-faces", "--model", fs / "model",
                           "--preset", "cpu", "--iters", iters, "--save-every", min(iters, 250), "--device", "cpu")
        made += max(0, _model_iteration(fs / "model") - before)
        t0 = time.time()
        self.machinima("faceswap", "merge", self.out / "plate", "--model", fs / "model", "--out", self.out / "plate-swapped",
                       "--color", "rct", "--smooth", "zero-lag", "--no-video")
        made += _made(self.out / "plate-swapped" / "rgb", t0)
        return (f"DF model trained to {_model_iteration(fs / 'model')} iterations at 64 px (--preset cpu; a pipeline check: "
                f"`machinima demo --quality` trains {QUALITY_ITERS}, the dlib same-person goal, about 14 min more); "
                "plate faces swapped -> plate-swapped/ (zero-lag tracking)"), made

    def lipsync(self) -> tuple[str, int]:
        """The line is spoken once and used twice: the avatar's mouth stream in the take
        (``lipsync analyze``) and the actor's mouth re-synced in the swapped plate (``lipsync
        video``, a post step of the take), which the composite then uses."""
        if shutil.which("espeak-ng") is None:
            raise DemoError("lip sync needs espeak-ng to speak the demo line",
                            hint="`./dev demo` installs it (root + apt), or apt-get install espeak-ng")
        take = self.take()
        line, text = self.out / "line.wav", self.out / "line.txt"
        made = 0
        if not line.exists():
            raw = self.out / ".line-raw.wav"
            subprocess.run(["espeak-ng", "-w", str(raw), LINE], check=True)
            _pad_wav(raw, line, LINE_LEAD)
            raw.unlink()
            text.write_text(LINE + "\n")
            made += 1
        streams = {s["name"] for s in read_manifest(take).streams}
        if f"blend/{PERFORMER}-mouth" not in streams:
            self.machinima("lipsync", "analyze", line, "--text", text, "--take", take, "--performer", PERFORMER, "--out", self.out)
            made += 1
        t0 = time.time()
        self.machinima("lipsync", "video", take, "--plate", self.out / "plate-swapped" / "rgb", "--audio", line.name, "--text", text,
                       "--subject", SWAPPED_FACE, "--step-id", "lipsync", "--plate-fps", FPS)
        made += _made(take / "post" / "lipsync" / "frames", t0)
        return (f"line spoken (espeak-ng) -> {take.name}/audio/{line.name}; avatar mouth blend/{PERFORMER}-mouth; "
                f"actor's mouth re-synced -> {take.name}/post/lipsync (mouth warp; aligned to the text; the swapped face "
                "cleared by the merge's records, inherited)"), made

    def composite(self) -> tuple[str, int]:
        take, t0 = self.take(), time.time()
        self.machinima("composite", take, "--plate", take / "post" / "lipsync" / "frames", "--key", "green", "--place", ACTOR_PLACE,
                       "--height", ACTOR_HEIGHT, "--plate-fps", FPS, "--step-id", "composite")
        return f"lip-synced, swapped actor composited into the set -> {take.name}/post/composite", _made(take / "post" / "composite" / "rgb", t0)

    def stylize(self) -> tuple[str, int]:
        take = self.take()
        look = self.out / "painted-footage.toml"
        if not look.exists():  # the shipped painted look, with image-derived lines: footage has no depth pass
            look.write_text('schema = "machinima.look"\nversion = 1\nname = "painted"\nengine = "classical"\nseed = 7\n\n'
                            '[classical]\nmethod = "painted"\nsigma_s = 40.0\nsigma_r = 0.4\ncolors = 10\nedges = 0.6\n\n'
                            '[[controls]]\nkind = "lineart"\n\n[cadence]\nmode = "propagate"\nevery = 4\ninit_blend = 0.3\n')
        t0 = time.time()
        self.machinima("stylize", "run", take, "--look", look, "--input", take / "post" / "composite" / "rgb",
                       "--step-id", "stylize-painted")
        return ("painted look by the classical engine (no weights here); for the diffusion look, "
                "`machinima models check --look watercolor-sd15` lists the weights to put under models/, then --look watercolor-sd15"), \
            _made(take / "post" / "stylize-painted" / "frames", t0)

    def archive(self) -> tuple[str, int]:
        take, t0 = self.take(), time.time()
        self.machinima("archive", take, "--from", "post/stylize-painted", "--preset", "vhs-1994", "--seed", "1994")
        return f"VHS 1994 look -> {take.name}/post/archive-vhs-1994", _made(take / "post" / "archive-vhs-1994" / "frames", t0)

    def exports(self) -> tuple[str, int]:
        """What the other departments get: the editor a timeline of the circled take (its
        archive version), the engines the take's animation as glb, finishing a ProRes master."""
        take = self.take()
        otio, glb = self.out / "exports" / "cut.otio", self.out / "exports" / f"{take.name}.glb"
        master = self.out / "exports" / f"{take.name}.mov"
        made = 0
        if not otio.exists():
            self.machinima("takes", "circle", take, "--version", "archive-vhs-1994", "--note", "the demo's take", quiet=True)
            self.machinima("edit", "export", "--take", take, "--out", otio, quiet=True)
            made += 1
        if not glb.exists():
            self.machinima("takes", "export", take, "--format", "glb", "--out", glb, quiet=True)
            made += 1
        if not master.exists():  # the picture master for finishing, with timecode (the film.mp4 carries the line)
            self.machinima("takes", "export", take, "--step", "archive-vhs-1994", "--format", "prores", "--out", master, quiet=True)
            made += 1
        return (f"editorial {otio.relative_to(self.out)} (OpenTimelineIO), engines {glb.relative_to(self.out)}, "
                f"master {master.relative_to(self.out)} (ProRes)"), made

    def deliver(self) -> tuple[str, int]:
        from .demo_film import contact_sheet_rows, film_with_line

        take = self.take()
        film, sheet = self.out / "film.mp4", self.out / "contact_sheet.png"
        last = take / "post" / "archive-vhs-1994"
        inputs = [p.stat().st_mtime for p in (last / "frames").iterdir()] + [(take / "audio" / "line.wav").stat().st_mtime]
        if film.exists() and sheet.exists() and film.stat().st_mtime >= max(inputs):
            return f"{film.name} and {sheet.name} are up to date (skipped)", 0
        # the archive step's frames with the line, disclosed like that step; the delivery copy is
        # signed with that manifest as its parent (its frames' watermark names it)
        for p in (film, sheet):
            p.unlink(missing_ok=True)  # the skip above trusts only deliveries that were verified
        made = film_with_line(last, take / "audio" / "line.wav", fps=FPS)
        sheet_tmp = contact_sheet_rows(self.out, take, self.out / ".contact_sheet.png")
        self.machinima("rights", "sign", made, "--out", film, "--take", take.name, "--step", "archive-vhs-1994", "--kind", "delivery", quiet=True)
        self.machinima("rights", "sign", sheet_tmp, "--out", sheet, "--take", take.name, "--step", "contact-sheet", "--kind", "delivery",
                       "--mark", quiet=True)
        sheet_tmp.unlink()
        try:
            r = self.machinima("verify", film, quiet=True)
        except DemoError:
            film.unlink(missing_ok=True)
            raise
        verdict = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else "verified"
        self.machinima("rights", "audit", self.out, quiet=True)  # every identity, model and output within its rights (exit 0)
        return f"{film.name} with the line ({verdict}); contact_sheet.png; rights audit clean", 2

    def run(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        steps = [("project and signing certificates", self.setup), ("stage: record a take", self.record),
                 ("Blender: set + passes", self.passes), ("live-action plate", self.plate), ("rights records", self.rights),
                 ("face swap", self.faceswap), ("lip sync", self.lipsync), ("depth composite", self.composite),
                 ("stylize", self.stylize), ("archive look", self.archive), ("exports", self.exports), ("deliver", self.deliver)]
        t0 = time.perf_counter()
        for name, fn in steps:
            self.step(name, fn)
        total = time.perf_counter() - t0
        table = Table(title=f"machinima demo: {total:.0f} s")
        for col, just in (("step", "left"), ("s", "right"), ("made", "right"), ("result", "left")):
            table.add_column(col, justify=just)
        for t in self.timings:
            table.add_row(t["step"], f"{t['seconds']:.1f}", str(t["done"]), t["result"])
        self.console.print(table)
        self.console.print(f"[bold]film:[/] {self.out / 'film.mp4'}\n[bold]contact sheet:[/] {self.out / 'contact_sheet.png'}")
        (self.out / "timings.json").write_text(json.dumps({"seconds": round(total, 2), "steps": self.timings}, indent=2))


def _count(folder: Path) -> int:
    """Finished frames in a folder (hidden temporaries left out)."""
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.iterdir() if p.suffix in (".png", ".qoi", ".exr", ".jpg") and not p.name.startswith("."))


def _made(folder: Path, since: float) -> int:
    """Frames a step wrote into ``folder`` since ``since`` (wall clock): 0 when it redid nothing."""
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.iterdir() if not p.name.startswith(".") and p.stat().st_mtime >= since - 1.0)


def _model_iteration(model: Path) -> int:
    """The face model's trained iterations (model.json), 0 before the first checkpoint."""
    try:
        doc = json.loads((model / "model.json").read_text())
    except (OSError, ValueError):
        return 0
    it = doc.get("iteration", doc.get("train", {}).get("iteration", 0))
    return int(it or 0)


def _pad_wav(src: Path, dst: Path, lead: float) -> None:
    """``lead`` seconds of silence before the line (same format), written atomically."""
    import wave

    with wave.open(str(src), "rb") as w:
        params, data = w.getparams(), w.readframes(w.getnframes())
    pad = b"\0" * (int(round(lead * params.framerate)) * params.sampwidth * params.nchannels)
    tmp = dst.with_name(f".{dst.name}.tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setparams(params)
        w.writeframes(pad + data)
    os.replace(tmp, dst)


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


def run_demo(out: Path, console: Console, quality: bool = False) -> None:
    Demo(out.resolve(), console, quality=quality).run()
