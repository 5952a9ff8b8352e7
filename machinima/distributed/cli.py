"""``--ray [ADDRESS]``: one option on every post step, with or without an address.

Typer (0.29, its own parser) has no option whose value may be left out, so a bare ``--ray``
is rewritten to ``--ray=auto`` before parsing (``BareRayGroup``, the class of every step's
Typer app and of the root ``machinima`` app). A token after ``--ray`` counts as its address only
when it looks like one (``auto``, ``local``, ``host:port``, ``ray://...``): ``composite --ray TAKE``
keeps TAKE a take, not an address. ``auto`` is resolved by ``scheduler.connect``: RAY_ADDRESS,
else a running cluster of this machine, else a new local one.

Only typer is imported here: every CLI module imports this at ``machinima --help`` time.
"""

from __future__ import annotations

import re
from typing import Any, Optional

import typer
from typer.core import TyperGroup

OPT = "--ray"
AUTO = "auto"
_ADDRESS = re.compile(r"^(auto|local|ray://\S+|\[?[\w.\-:]*\]?:\d+)$")

HELP = ("Run on a Ray cluster. Bare --ray: RAY_ADDRESS, else the cluster this machine runs, else a new local one; "
        "or an address: host:6379, ray://host:10001, auto, local (the take on storage every node sees).")


def looks_like_address(token: str) -> bool:
    """``auto``, ``local``, ``ray://...`` or ``host:port`` (Ray needs the port)."""
    return bool(_ADDRESS.match(token))


def bare_ray(args: list[str]) -> list[str]:
    """``--ray`` with no address after it becomes ``--ray=auto``; everything else as given."""
    out: list[str] = []
    for i, a in enumerate(args):
        if a == "--":
            return out + list(args[i:])
        if a == OPT and (i + 1 >= len(args) or not looks_like_address(args[i + 1])):
            out.append(f"{OPT}={AUTO}")
        else:
            out.append(a)
    return out


class BareRayGroup(TyperGroup):
    """A Typer group whose commands accept a bare ``--ray`` (see the module docstring)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # type: ignore[override]
        return super().parse_args(ctx, bare_ray(list(args)))


def ray_option(help: str = HELP) -> Any:
    """The ``--ray [ADDRESS]`` option (None when not given; ``auto`` when given bare)."""
    return typer.Option(None, OPT, help=help, metavar="[ADDRESS]")


RayAddress = Optional[str]
