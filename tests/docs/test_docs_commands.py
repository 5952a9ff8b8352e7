"""The docs stay true: every `machinima ...` command shown in README.md and docs/*.md names a real
command, and every --option it uses exists on that command."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest
import typer

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _commands() -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        in_code = False
        for line in doc.read_text(encoding="utf-8").splitlines():
            if line.strip().startswith("```"):
                in_code = not in_code
                continue
            # a code line may chain commands (`a && b`, `a; b`, `a | b`): each is checked on its own
            cells = re.split(r"\s(?:&&|\|\||;|\|)\s", line) if in_code else re.findall(r"`(machinima [^`]+)`", line)
            for cell in cells:
                cell = cell.split("#")[0].strip()
                cell = re.sub(r"^\$\s*", "", cell)
                if cell.startswith("machinima ") and "..." not in cell and "|" not in cell and " / " not in cell:
                    out.append((doc.name, cell))
    return out


@pytest.fixture(scope="module")
def root_command():
    from machinima import cli

    cli._register_plugins()
    return typer.main.get_command(cli.app)


COMMANDS = _commands()


def test_docs_show_commands():
    assert len(COMMANDS) > 40


@pytest.mark.parametrize("doc, line", COMMANDS, ids=[f"{d}:{c[:60]}" for d, c in COMMANDS])
def test_documented_command_exists(root_command, doc, line):
    try:
        words = shlex.split(line)[1:]
    except ValueError:
        words = line.split()[1:]
    cmd = root_command
    path = ["machinima"]
    # typer vendors its own click: groups are recognised by their `commands`
    while hasattr(cmd, "commands") and words and not words[0].startswith("-") and words[0] in cmd.commands:
        cmd = cmd.commands[words[0]]
        path.append(words.pop(0))
    if hasattr(cmd, "commands") and not cmd.params and words and not words[0].startswith("-"):
        pytest.fail(f"{doc}: `{line}`: {' '.join(path)} has no command {words[0]!r}")
    known = {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts)}
    for w in words:
        if w.startswith("--"):
            name = w.split("=", 1)[0]
            assert name in known or name == "--help", f"{doc}: `{line}`: {' '.join(path)} has no option {name}"


def test_docs_name_the_zip_blender_package_writes(tmp_path):
    """Every extension zip the docs name is the file `machinima blender package` writes."""
    from blender_addon.package import build_package

    made = build_package(tmp_path)
    version = made.stem.rsplit("-", 1)[1]
    named = {m for doc in DOCS for m in re.findall(r"[\w./<>-]*machinima[\w<>.-]*\.zip", doc.read_text(encoding="utf-8"))}
    assert named, "the docs name no extension zip"
    for name in named:
        assert Path(name).name.replace("<version>", version) == made.name, f"docs name {name}; `blender package` writes {made.name}"


def test_the_readme_command_table_is_the_cli(root_command):
    """Every command of the CLI has a row in the README's table, and every sub-command a row names
    (`machinima takes list / show / ...`) exists."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("## Commands"):].split("\n## ", 1)[0]
    named: dict[str, set[str]] = {}
    for row in (r for r in table.splitlines() if r.startswith("| `machinima")):
        for span in re.findall(r"`machinima ([^`]+)`", row.split("|")[1]):
            group, _, rest = span.partition(" ")
            subs = named.setdefault(group, set())
            for part in rest.split(" / ") if " / " in rest else [rest]:
                word = part.split()[0] if part.split() else ""
                if word and word.islower() and not word.startswith("-") and word != "...":
                    subs.add(word)
    assert set(root_command.commands) <= set(named), f"not in the README table: {sorted(set(root_command.commands) - set(named))}"
    for group, subs in named.items():
        assert group in root_command.commands, f"README names `machinima {group}`, which does not exist"
        cmd = root_command.commands[group]
        if hasattr(cmd, "commands") and cmd.commands:
            assert subs <= set(cmd.commands), f"README: machinima {group} has no {sorted(subs - set(cmd.commands))}"


EXAMPLE_PATHS = re.compile(r"(stylize/looks|stylize/dreams|stylize/archive_presets|engine_bridge/examples|blender_addon/examples|mocap/profiles|lora/examples)/")


def _messages(path: Path):
    """The string constants of a module that are not docstrings: what it can print."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [(n.lineno, n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]


def test_no_guide_or_message_points_into_the_repository():
    """A pip user has no checkout: guides and messages name shipped examples (`--look painted`,
    `machinima examples copy diner .`), never their place in the source tree."""
    for doc in DOCS:
        if doc.name != "design-changes.md":  # the history of the design may say where things were
            for i, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
                assert not EXAMPLE_PATHS.search(line), f"{doc.name}:{i}: {line.strip()}"
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for pattern in cfg["tool"]["setuptools"]["packages"]["find"]["include"]:
        for py in (ROOT / pattern.rstrip("*")).rglob("*.py"):
            for line, text in _messages(py):
                assert not EXAMPLE_PATHS.search(text), f"{py.relative_to(ROOT)}:{line}: {text[:120]}"
