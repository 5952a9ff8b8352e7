"""Disclosure is on for every synthetic output; turning it off is a decision recorded in the take.

    machinima rights disclosure off TAKE --reason "festival cut, disclosed in the credits"
    machinima rights disclosure on TAKE

The decision is ``<take>/disclosure.json`` (for a step outside any take: ``disclosure.json`` in
the step's own folder), signed with the production's key like a rights record, and keeps its
history: who, when, why, each time it changed. A decision file that is unsigned, edited or
signed by a stranger is not honoured (disclosure stays on) and ``audit`` says so. ``verify``
and ``audit`` report every output made under an "off" decision, with who, when and why.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write_json
from ..rights import DisclosureError
from .sigdoc import DocCheck, check_doc, sign_doc

FILE = "disclosure.json"
SCHEMA = "machinima.disclosure-decision"
VERSION = 1


def decision_home(out_dir: str | Path) -> Path:
    """Where a step's decision lives: its take (``<take>/post/<step>``), else the step folder."""
    p = Path(out_dir)
    take = p.parent.parent
    if p.parent.name == "post" and (take / "take.json").is_file():
        return take
    return p


@dataclass
class Decision:
    disclose: bool
    reason: str
    by: str
    at: str
    path: Path
    check: DocCheck

    @property
    def honoured(self) -> bool:
        return self.check.ok

    def summary(self) -> dict[str, Any]:
        return {"disclose": self.disclose, "reason": self.reason, "by": self.by, "at": self.at, "file": str(self.path),
                "signature": self.check.state}


def read_decision(home: str | Path, trust: Any = None) -> Decision | None:
    """The decision recorded at ``home`` (a take folder or a step folder), or None."""
    path = Path(home) / FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DisclosureError(f"{path} cannot be read ({exc})", hint="remove it, or record the decision again") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise DisclosureError(f"{path} is not a disclosure decision")
    if trust is None:
        from .trust import trust_for

        trust = trust_for(path)
    return Decision(bool(doc.get("disclose", True)), str(doc.get("reason", "")), str(doc.get("by", "")), str(doc.get("at", "")),
                    path, check_doc(doc, trust))


def record_decision(home: str | Path, disclose: bool, reason: str, *, by: str | None = None) -> Decision:
    """Record (and sign) that outputs at ``home`` are, or are not, disclosed; keeps the history."""
    from .trust import signing_for, trust_for

    home = Path(home)
    if not home.is_dir():
        raise DisclosureError(f"{home} is not a folder", hint="give a take folder (or a step's output folder)")
    if not disclose and not reason.strip():
        raise DisclosureError("say why disclosure is turned off", hint="--reason 'festival cut, disclosed in the credits'")
    if by is None:
        try:
            by = getpass.getuser()
        except Exception:  # noqa: BLE001 - no user name in some containers
            by = ""
    path = home / FILE
    history: list[dict[str, Any]] = []
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
            history = list(old.get("history", [])) + [{k: old.get(k) for k in ("disclose", "reason", "by", "at")}]
        except (OSError, ValueError):
            pass
    doc = {"schema": SCHEMA, "version": VERSION, "disclose": bool(disclose), "reason": reason, "by": by,
           "at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "history": history}
    atomic_write_json(path, sign_doc(doc, signing_for(home).identity))
    dec = read_decision(home, trust_for(path))
    assert dec is not None
    return dec
