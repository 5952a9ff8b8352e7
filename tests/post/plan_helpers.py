"""Helpers shared by the plan tests: the step kinds they run and the composite -> archive steps
of a shot's plan (TOML), so each test states only what differs."""

from __future__ import annotations

from pathlib import Path

from machinima.postplan import deliver


def kinds() -> dict:
    """The step kinds of a shot without the network: composite, archive, deliver."""
    import composite.plan
    import stylize.plan

    return {"composite": composite.plan.run, "archive": stylize.plan.run_archive, "deliver": deliver}


def composite_archive_steps(plate: Path, pos) -> str:
    """``[[step]]`` blocks: "comp" keys ``plate`` onto the take at ``pos``; "archive" (vhs-1994)
    reads "@comp"."""
    return f'''[[step]]
id = "comp"
kind = "composite"
plate = "{plate}"
key = "green"
place = [{pos[0]}, {pos[1]}, {pos[2]}]
workers = 1
[[step]]
id = "archive"
kind = "archive"
from = "@comp"
preset = "vhs-1994"
'''
