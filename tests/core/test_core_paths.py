"""Paths a person types (issue 19): every path relative to the current folder, a take named by
id or by folder in every command that names one, and one line for every error a person can
cause. Commands run in this process through the same wiring as the ``machinima`` script."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
import typer

from machinima import cli
from machinima.errors import DiskFullError, TakeError
from machinima.skeleton import rest_pose
from machinima.take import LOCK, Take

DATA = Path(__file__).resolve().parents[1] / "data"
REPO = Path(__file__).resolve().parents[2]


def machinima(capsys, *args: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``machinima ARGS``."""
    try:
        cli.main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(code: int, err: str) -> str:
    assert code == 1, err
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("error: "), err
    return err


def _make(root: str | Path) -> Take:
    t = Take.create(root, production="p", scene="1", shot="1", fps=24, performers=["ada"])
    t.add_performer("ada")
    t.store.append("mocap/ada", t.store.origin_ns + np.arange(24) * 41_666_667, np.broadcast_to(rest_pose(), (24, 55, 7)))
    t.finalize()
    return t


def test_a_new_user_works_in_relative_paths(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    shutil.copy(DATA / "pymo_walk_meredith_60.bvh", "walk.bvh")  # a real capture, 60 frames
    code, out, err = machinima(capsys, "takes", "import", "walk.bvh", "--performer", "meredith", "--production", "film", "--root", "takes")
    assert code == 0, err
    tid = out.split()[-1]
    assert tid == "film_imported_bvh_t001" and Path("takes", tid, "take.json").is_file()
    take = Take.open(f"takes/{tid}")  # the API too
    assert take.manifest.status == "complete" and len(take.store.read_mocap("meredith")) == 60
    for ref in (tid, f"takes/{tid}", f"./takes/{tid}/", str(tmp_path / "takes" / tid)):
        code, out, err = machinima(capsys, "takes", "show", ref, "--root", "takes")
        assert code == 0 and tid in out, err
        code, out, err = machinima(capsys, "takes", "verify", ref, "--root", "takes")
        assert (code, out.strip()) == (0, f"ok {tid}"), err  # no false problem
    code, out, err = machinima(capsys, "takes", "export", tid, "--root", "takes", "--performer", "meredith", "--out", "out/walk.bvh")
    assert code == 0 and Path("out/walk.bvh").stat().st_size > 1000, err
    assert tid in machinima(capsys, "takes", "list", "--root", "takes")[1]
    assert machinima(capsys, "takes", "rebuild-catalog", "--root", "takes")[1].strip().endswith("indexed 1 take(s)")
    # A take left recording by a crash (lock gone with its process) is recovered by folder.
    crashed = Take.create("takes", production="film", scene="2", shot="A", fps=24, performers=["ada"])
    crashed.add_performer("ada")
    crashed.store.append("mocap/ada", crashed.store.origin_ns + np.arange(5) * 41_666_667, np.broadcast_to(rest_pose(), (5, 55, 7)))
    crashed.store.flush()
    crashed.store._db.close()
    crashed._store, crashed._lock = None, crashed._lock.release()
    code, out, err = machinima(capsys, "takes", "recover", f"takes/{crashed.id}", "--root", "takes")
    assert (code, out.strip()) == (0, f"{crashed.id}: recovered"), err
    code, out, err = machinima(capsys, "takes", "rm", f"takes/{tid}", "--root", "takes")
    assert code == 0 and not Path("takes", tid).exists() and any(Path("takes/.trash").iterdir()), err


def test_a_typo_lists_close_matches_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _make("takes")
    err = one_line_error(*machinima(capsys, "takes", "show", "p_1_1_t01", "--root", "takes")[::2])
    assert "no take 'p_1_1_t01'" in err and "did you mean p_1_1_t001?" in err
    err = one_line_error(*machinima(capsys, "takes", "show", "zzz", "--root", "takes")[::2])
    assert "did you mean" not in err and "takes list" in err
    err = one_line_error(*machinima(capsys, "takes", "show", "x", "--root", "nowhere")[::2])
    assert "does not exist" in err and not Path("nowhere").exists()


# Every command that names a take resolves it through the hub (machinima.takeref): a typo gets
# the same one-line answer everywhere. The takes root comes from MACHINIMA_TAKES_ROOT, relative.
TAKE_COMMANDS = [
    ["takes", "show", "{t}"], ["takes", "verify", "{t}"], ["takes", "export", "{t}", "--out", "x.bvh"],
    ["takes", "rm", "{t}"], ["takes", "recover", "{t}"], ["takes", "circle", "{t}"], ["mocap", "stats", "{t}"],
    ["edit", "export", "--take", "{t}", "--out", "cut.otio"], ["blender", "export", "--take", "{t}", "--glb", "x.glb"],
    ["lipsync", "video", "{t}", "--plate", "plate.mp4"], ["verify", "{t}"], ["verify", "{t}/post/stylize-ink"],
    ["rights", "disclosure", "off", "{t}", "--reason", "credits"], ["rights", "audit", "{t}"],
    ["dataset", "import", "{t}", "--out", "ds"],
    ["blender", "import-take", "{t}", "--out", "x.blend"], ["blender", "render", "{t}"],
    ["composite", "{t}", "--plate", "plate.mp4"], ["stylize", "run", "{t}", "--look", "painted"],
    ["stylize", "qc", "{t}/post/stylize-painted"], ["animate", "{t}", "--look", "animatediff-sd15"],
    ["archive", "{t}"], ["dream", "{t}"], ["faceswap", "merge", "{t}", "--engine", "none"],
    ["lipsync", "analyze", "line.wav", "--take", "{t}", "--performer", "ada"],
    ["bridge", "play", "{t}"], ["bridge", "check", str(REPO / "engine_bridge/examples/mapping.toml"), "--take", "{t}"],
]


@pytest.mark.parametrize("command", TAKE_COMMANDS, ids=[" ".join(c[:3] if c[1] in ("export", "disclosure") else c[:2]) + ("/post" if "/post" in c[1] else "")
                                             for c in TAKE_COMMANDS])
def test_every_command_that_names_a_take_resolves_it_the_same_way(command, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MACHINIMA_TAKES_ROOT", "takes")
    _make("takes")
    with wave.open("line.wav", "wb") as w:  # half a second of silence for lipsync
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000), w.writeframes(b"\0\0" * 8000)
    err = one_line_error(*machinima(capsys, *[a.replace("{t}", "p_1_1_t01") for a in command])[::2])
    assert "no take 'p_1_1_t01'" in err and "did you mean p_1_1_t001?" in err


def test_mocap_stats_reads_a_relative_take_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    t = _make("takes")
    code, out, err = machinima(capsys, "mocap", "stats", f"takes/{t.id}", "--json")
    assert code == 0 and '"frames": 24' in out, err


def test_a_failed_create_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _make("takes")
    before = sorted(p.name for p in Path("takes").iterdir())
    with pytest.raises(UnicodeEncodeError):  # a note no file can hold (the stage refuses it earlier)
        Take.create("takes", production="p", scene="1", shot="1", notes=["\ud800"])

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr("machinima.take.StreamStore", full)
        with pytest.raises(DiskFullError, match="nothing was created"):
            Take.create("takes", production="p", scene="1", shot="1")
    with monkeypatch.context() as m:
        m.setattr("os.posix_fallocate", full)  # not even the reserve fits
        with pytest.raises(DiskFullError, match="no room to start take p_1_1_t002"):
            Take.create("takes", production="p", scene="1", shot="1")
    assert sorted(p.name for p in Path("takes").iterdir()) == before


def test_takes_rm_on_a_folder_that_is_not_a_take_leaves_no_lock(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("photos").mkdir()
    err = one_line_error(*machinima(capsys, "takes", "rm", "photos")[::2])
    assert "not a take" in err and not Path("photos", LOCK).exists()
    with pytest.raises(TakeError, match="not a take"):
        Take.open("photos", writable=True)
    assert list(Path("photos").iterdir()) == []


def test_os_errors_are_one_line_in_every_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    shutil.copy(DATA / "pymo_walk_meredith_60.bvh", "walk.bvh")
    err = one_line_error(*machinima(capsys, "takes", "import", "walk.bvh", "--performer", "m", "--root", "walk.bvh/takes")[::2])
    assert "Not a directory" in err
    err = one_line_error(*machinima(capsys, "takes", "list", "--root", "missing")[::2])
    assert "no takes folder missing" in err and not Path("missing").exists()
    # The wiring itself: any command's OSError (here a permission error) is one line.
    app = typer.Typer()

    @app.command()
    def save() -> None:
        raise PermissionError(13, "Permission denied", "/stage/takes/catalog.sqlite")

    with pytest.raises(SystemExit) as exit_:
        cli.run(app, [])
    assert exit_.value.code == 1
    assert capsys.readouterr().err == "error: Permission denied: /stage/takes/catalog.sqlite\n"


def test_a_takes_root_that_may_only_be_read_is_still_listed(tmp_path, monkeypatch, capsys):
    from fs_helpers import remount_read_only, tmpfs

    with tmpfs(tmp_path / "archive", "4m") as root:
        t = _make(root)
        (root / "catalog.sqlite").unlink()
        remount_read_only(root)  # even root cannot write here now
        monkeypatch.chdir(tmp_path)
        code, out, err = machinima(capsys, "takes", "list", "--root", "archive")
        assert code == 0 and t.id in out, err
        code, out, err = machinima(capsys, "takes", "show", t.id, "--root", "archive")
        assert code == 0 and "mocap/ada" in out, err
        err = one_line_error(*machinima(capsys, "takes", "import", str(DATA / "pymo_walk_meredith_60.bvh"), "--performer", "m", "--root", "archive")[::2])
        assert "Read-only file system" in err


# Commands that take a take *or* a file: a missing file is a missing file, not "no take".
FILE_COMMANDS = [["faceswap", "extract", "alice.mp4", "--out", "faces"], ["faceswap", "merge", "alice.mp4", "--engine", "none"],
                 ["archive", "alice.mp4"], ["dream", "alice.png"]]


@pytest.mark.parametrize("command", FILE_COMMANDS, ids=[" ".join(c[:2]) for c in FILE_COMMANDS])
def test_a_missing_file_is_reported_as_a_missing_file(command, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _make("takes")
    err = one_line_error(*machinima(capsys, *command)[::2])
    name = next(a for a in command if "." in a)
    assert f"no file or folder '{name}' (looked in {tmp_path})" in " ".join(err.split()) and "no take '" not in err, err
    assert not Path("faces").exists()


def test_rights_and_verify_take_an_id_like_every_take_command(tmp_path, monkeypatch, capsys):
    """``rights disclosure``, ``rights audit`` and ``verify`` took only folders; an id works now
    and lands on the same take folder (a takes root or any other path is used as typed)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MACHINIMA_TAKES_ROOT", "takes")
    t = _make("takes")
    code, out, err = machinima(capsys, "rights", "disclosure", "off", t.id, "--reason", "credits", "--by", "ana")
    assert code == 0 and (t.path / "disclosure.json").is_file(), err
    code, out, err = machinima(capsys, "rights", "disclosure", "on", f"takes/{t.id}")
    assert code == 0 and '"disclose": true' in (t.path / "disclosure.json").read_text(), err
    err = one_line_error(*machinima(capsys, "verify", t.id)[::2])  # the take, which has no outputs yet
    assert "no pictures or videos under" in err and t.id in err
