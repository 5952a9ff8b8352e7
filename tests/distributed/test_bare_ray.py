"""A bare ``--ray`` (no address) on every step: parsed as ``auto``, and ``auto`` resolved as the
docs say (RAY_ADDRESS, else a live cluster of this machine, else a new local one); the real
composite run from the command line with a bare ``--ray`` gives the local run's frames."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from machinima.distributed.cli import bare_ray, looks_like_address
from machinima.distributed.scheduler import live_local_cluster, resolve_address

from ray_helpers import frame_files, record_off


def _parsed(argv: list[str]) -> tuple[object, str]:
    """What ``machinima ARGV`` hands its command as ``ray`` (parsing only, nothing runs)."""
    from machinima import cli

    cli._register_plugins()
    cmd = typer.main.get_command(cli.app)
    ctx = cmd.make_context("machinima", list(argv), resilient_parsing=True)
    while hasattr(cmd, "resolve_command"):
        args = [*getattr(ctx, "_protected_args", []), *getattr(ctx, "protected_args", []), *ctx.args]
        if not args:  # a group that is its own command (composite): its callback took the arguments
            break
        name, sub, rest = cmd.resolve_command(ctx, args)
        ctx, cmd = sub.make_context(name, rest, parent=ctx, resilient_parsing=True), sub
    return ctx.params.get("ray", "MISSING"), cmd.name


@pytest.mark.parametrize("argv", [
    ["composite", "T", "--ray"],
    ["faceswap", "merge", "T", "--model", "m", "--ray"],
    ["lipsync", "video", "T", "--plate", "p", "--ray", "--chunk", "4"],
    ["stylize", "run", "T", "--look", "l", "--ray", "--gpus", "1"],
    ["stylize", "T", "--look", "l", "--ray"],
    ["dream", "a.png", "--ray"],
    ["animate", "T", "--look", "l", "--ray"],
    ["archive", "S", "--ray"],
    ["lora", "train", "D", "--base", "b", "--out", "o", "--sweep", "lr=1e-4", "--ray"],
    ["post", "run", "p.toml", "--ray"],
])
def test_every_step_takes_a_bare_ray(argv):
    assert _parsed(argv)[0] == "auto"
    assert _parsed([a if a != "--ray" else "--ray=h:6379" for a in argv])[0] == "h:6379"
    assert _parsed([a for a in argv if a != "--ray"])[0] is None


def test_what_counts_as_an_address():
    assert bare_ray(["T", "--ray"]) == ["T", "--ray=auto"]
    assert bare_ray(["--ray", "T"]) == ["--ray=auto", "T"]  # a take id is not an address: TAKE stays TAKE
    assert bare_ray(["--ray", "10.0.0.5:6379", "T"]) == ["--ray", "10.0.0.5:6379", "T"]
    for ok in ("auto", "local", "ray://head:10001", "head:6379", "[::1]:6379"):
        assert looks_like_address(ok)
    for no in ("takes/a-b-c-001", "head", "--chunk", ""):
        assert not looks_like_address(no)


def test_auto_means_env_then_a_live_cluster_then_a_new_one(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.1.2.3:6379")
    assert resolve_address("auto") == "10.1.2.3:6379"
    assert resolve_address("local") is None and resolve_address(None) is None
    assert resolve_address("h:1") == "h:1"
    monkeypatch.delenv("RAY_ADDRESS")
    with socket.socket() as srv:  # something answering where the address file points: a live cluster
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        (tmp_path / "ray_current_cluster").write_text(f"127.0.0.1:{port}\n")
        assert live_local_cluster(str(tmp_path)) == f"127.0.0.1:{port}"
    # the same file after the cluster was killed: nothing answers, so a new local cluster, no hang
    assert live_local_cluster(str(tmp_path)) is None
    assert live_local_cluster(str(tmp_path / "none")) is None
    monkeypatch.setattr("machinima.distributed.scheduler.live_local_cluster", lambda *a, **k: None)
    assert resolve_address("auto") is None


def test_composite_with_a_bare_ray_runs_on_a_new_local_cluster(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    from composite.cli import app
    from composite.demo_scene import make_demo

    if ray.is_initialized():
        ray.shutdown()
    take, plate, pos = make_demo(tmp_path, width=96, height=64, frames=6)
    record_off(take)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr("machinima.distributed.scheduler.live_local_cluster", lambda *a, **k: None)  # not another engineer's cluster
    base = [str(take), "--plate", str(plate), "--key", "green", "--place", ",".join(map(str, pos)), "--no-video", "--workers", "1"]
    runner = CliRunner()
    local = runner.invoke(app, [*base, "--step-id", "local"])
    assert local.exit_code == 0, local.output
    try:
        r = runner.invoke(app, [*base, "--step-id", "bare", "--chunk", "3", "--ray"])
        assert r.exit_code == 0, r.output
        assert ray.is_initialized()  # the bare --ray started a cluster of this machine
    finally:
        ray.shutdown()
    a, b = frame_files(Path(take) / "post" / "local", "rgb"), frame_files(Path(take) / "post" / "bare", "rgb")
    assert len(a) == 6 and a == b
    chunks = [line for line in (Path(take) / "post" / "bare" / "chunks.jsonl").read_text().splitlines() if '"end"' in line]
    assert len(chunks) == 2  # 6 frames in chunks of 3: it really ran as Ray tasks
