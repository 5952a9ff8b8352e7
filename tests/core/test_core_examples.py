"""Shipped examples are named, not pathed: resolution by name or path, `machinima examples
list|copy`, and the same from a real wheel installed into a throwaway venv outside the repository
(pip builds and installs it: what a pip user gets)."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

from machinima.errors import MachinimaError
from machinima.examples import ExampleError, copy, find, resolve, shipped

REPO = Path(__file__).resolve().parents[2]


def run(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "machinima", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def test_a_path_wins_then_a_shipped_name_then_one_error_listing_the_names(tmp_path, monkeypatch):
    folder = tmp_path / "looks"
    folder.mkdir()
    (folder / "ink.toml").write_text("x = 1\n")
    (folder / "__init__.py").write_text("")
    assert resolve("ink", folder, "look") == folder / "ink.toml"
    assert resolve("ink.toml", folder, "look") == folder / "ink.toml"  # not in the cwd: the shipped one
    mine = tmp_path / "ink.toml"
    mine.write_text("y = 2\n")
    monkeypatch.chdir(tmp_path)
    assert resolve("ink.toml", folder, "look") == Path("ink.toml")  # a file of one's own wins
    with pytest.raises(ExampleError, match=r"look file nope does not exist.*shipped: ink;"):
        resolve("nope", folder, "look")

    class LookError(MachinimaError):
        pass

    with pytest.raises(LookError, match="is a folder"):
        resolve(tmp_path, folder, "look", LookError)


def test_every_kind_ships_and_names_are_unique_per_kind():
    ex = shipped()
    by_kind = {}
    for e in ex:
        by_kind.setdefault(e.kind, []).append(e.name)
        assert e.summary(), e.path  # each says what it is
    assert {"look", "dream", "archive-preset", "set", "engine", "osc-profile", "settings"} <= set(by_kind)
    assert {"painted", "watercolor-sd15", "animatediff-sd15"} <= set(by_kind["look"]) and "diner" in by_kind["set"]
    assert find("set/diner").path.name == "diner.toml" and find("diner.toml").kind == "set"
    with pytest.raises(ExampleError, match="no shipped example 'dinner'"):
        find("dinner")


def test_kinds_shared_by_spokes_and_files_that_carry_a_licence(tmp_path, monkeypatch):
    """`settings.lora` and `settings.composite` are one kind; a BVH (no comments) is described by
    its licence file, which is copied with it."""
    import machinima.examples as examples

    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    a.mkdir(), b.mkdir(), c.mkdir()
    (a / "lora-train.toml").write_text("# Settings for lora\n")
    (c / "composite.toml").write_text("# Settings for composite\n")
    (b / "walk.bvh").write_text("HIERARCHY\n")
    (b / "walk.LICENSE.txt").write_text("walk.bvh: a captured walk. More.\n\nMIT License\n")
    monkeypatch.setattr(examples, "_folders", lambda: [("motion", b), ("settings", a), ("settings", c)])
    assert examples.kinds() == ["motion", "settings"]
    assert {e.name for e in examples.shipped("settings")} == {"lora-train", "composite"}
    assert examples.find("motion/walk").summary() == "a captured walk"
    made = examples.copy("motion/walk", tmp_path / "out")
    assert made.read_text() == "HIERARCHY\n" and (tmp_path / "out" / "walk.LICENSE.txt").read_text().endswith("MIT License\n")


def test_examples_cli_lists_and_copies_without_overwriting(tmp_path):
    r = run("examples", "list", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert {"kind": "look", "name": "watercolor-sd15"}.items() <= next(x for x in rows if x["name"] == "watercolor-sd15").items()
    r = run("examples", "copy", "diner", "sets", cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "sets" / "diner.toml").read_text() == find("diner").path.read_text()
    (tmp_path / "sets" / "diner.toml").write_text("# mine\n")
    r = run("examples", "copy", "diner", "sets", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "already exists" in r.stderr  # one line, nothing lost
    assert (tmp_path / "sets" / "diner.toml").read_text() == "# mine\n"
    r = run("examples", "list", "--kind", "nope", cwd=tmp_path)
    assert r.returncode == 1 and "kinds: " in r.stderr


def _copy_sources(dest: Path) -> Path:
    """The files a wheel is built from (no build/ or egg-info left in the checkout)."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, dest / name)
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())
    for pattern in cfg["tool"]["setuptools"]["packages"]["find"]["include"]:
        src = REPO / pattern.rstrip("*")
        shutil.copytree(src, dest / src.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


@pytest.mark.slow
def test_a_wheel_installed_outside_the_repository_lists_copies_and_resolves_names(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing of the checkout on the path
    src = _copy_sources(tmp_path / "src")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "-w", str(tmp_path / "whl"), "--no-deps", "--no-build-isolation", "-q"],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    wheel = next((tmp_path / "whl").glob("machinima-*.whl"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False, system_site_packages=True).create(env_dir)
    py = env_dir / "bin" / "python"
    # the dependencies come from this interpreter's site-packages (its .pth files, among them the
    # editable checkout, are not processed from there): machinima itself only from the wheel
    purelib = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    (purelib / "_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q", str(wheel)],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    work = tmp_path / "project"
    work.mkdir()
    exe = env_dir / "bin" / "machinima"
    where = subprocess.run([str(py), "-c", "import machinima, stylize; print(machinima.__file__, stylize.__file__)"],
                           capture_output=True, text=True, cwd=work, env=env)
    assert str(env_dir) in where.stdout and str(REPO) not in where.stdout, where
    r = subprocess.run([str(exe), "examples", "list", "--json"], capture_output=True, text=True, cwd=work, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    names = {(x["kind"], x["name"]) for x in json.loads(r.stdout)}
    assert {("look", "watercolor-sd15"), ("set", "diner"), ("dream", "drift"), ("engine", "mapping"), ("archive-preset", "vhs-1994"),
            ("motion", "walk"), ("settings", "lora-train"), ("settings", "composite")} <= names
    r = subprocess.run([str(exe), "examples", "copy", "walk", "."], capture_output=True, text=True, cwd=work, env=env, timeout=120)
    assert r.returncode == 0 and (work / "walk.bvh").is_file() and "MIT License" in (work / "walk.LICENSE.txt").read_text(), r.stderr
    r = subprocess.run([str(exe), "examples", "copy", "mapping", "."], capture_output=True, text=True, cwd=work, env=env, timeout=120)
    assert r.returncode == 0 and (work / "mapping.toml").is_file(), r.stderr
    # a named look resolves inside the installed package: its needs are listed, nothing is there yet
    r = subprocess.run([str(exe), "models", "check", "--look", "watercolor-sd15", "--json"], capture_output=True, text=True, cwd=work, env=env, timeout=120)
    doc = json.loads(r.stdout)
    assert r.returncode == 1 and not doc["problems"], r.stderr
    assert {n["path"] for n in doc["needs"] if n["user"] == "look watercolor-sd15" and not n["fallback"]} == {
        str(work / "models" / p) for p in ("sd15", "loras/watercolor.safetensors", "controlnets/sd15-depth", "controlnets/sd15-openpose")}
