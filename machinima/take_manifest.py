"""A take's manifest (``take.json``: slate, rate, timecode, performers, notes, markers, status),
parsed strictly with messages that say which field is wrong, without opening the take itself
(the catalog and the stage list takes this way)."""

from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from . import schema
from .errors import TakeFormatError
from .timecode import Timecode, parse_rate

MANIFEST = "take.json"
STATUSES = ("recording", "complete", "recovered", "failed")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9]+", "-", str(text)).strip("-").lower()
    return s or "x"


@dataclass
class Slate:
    production: str
    scene: str
    shot: str
    take: int = 0

    def take_id(self) -> str:
        return f"{_slug(self.production)}_{_slug(self.scene)}_{_slug(self.shot)}_t{self.take:03d}"


@dataclass
class Manifest:
    """take.json, validated field by field (errors name the field)."""

    id: str
    slate: Slate
    fps: str
    timecode_in: str
    status: str = "recording"
    timecode_out: str | None = None
    performers: list[dict[str, Any]] = field(default_factory=list)
    streams: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    markers: list[dict[str, Any]] = field(default_factory=list)
    created: str = field(default_factory=_now)
    updated: str = field(default_factory=_now)
    extra: dict[str, Any] = field(default_factory=dict)
    # the director's circle: {"version": "render" | post-step kind or id, "at": ISO time, "note"}, or None
    circle: dict[str, Any] | None = None
    # cuts that use the take: [{"cut", "file", "ranges": [[first, last] take frames], "timecodes", "at"}]
    used_in: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rate(self) -> Fraction:
        return parse_rate(self.fps)

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        return {"schema": "machinima.take", "version": schema.CURRENT["take"], **doc}

    @classmethod
    def from_doc(cls, doc: Any, where: str = MANIFEST) -> "Manifest":
        if not isinstance(doc, dict):
            raise TakeFormatError(f"{where}: expected a JSON object")
        if doc.get("schema") != "machinima.take":
            raise TakeFormatError(f"{where}: field 'schema' is {doc.get('schema')!r}, expected 'machinima.take'")
        version = doc.get("version")
        if not isinstance(version, int):
            raise TakeFormatError(f"{where}: field 'version' must be an integer")
        doc = schema.upgrade("take", dict(doc), version)

        def need(name: str, typ: type | tuple[type, ...], src: dict[str, Any] = doc, prefix: str = "") -> Any:
            if name not in src:
                raise TakeFormatError(f"{where}: field '{prefix}{name}' is missing")
            val = src[name]
            if not isinstance(val, typ):
                tname = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
                raise TakeFormatError(f"{where}: field '{prefix}{name}' must be {tname}, got {type(val).__name__}")
            return val

        slate_doc = need("slate", dict)
        slate = Slate(
            production=need("production", str, slate_doc, "slate."),
            scene=need("scene", str, slate_doc, "slate."),
            shot=need("shot", str, slate_doc, "slate."),
            take=need("take", int, slate_doc, "slate."),
        )
        fps = need("fps", (str, int, float))
        try:
            parse_rate(fps)
        except Exception:
            raise TakeFormatError(f"{where}: field 'fps' is not a frame rate: {fps!r}") from None
        status = need("status", str)
        if status not in STATUSES:
            raise TakeFormatError(f"{where}: field 'status' is {status!r}; one of {', '.join(STATUSES)}")
        tc_in = need("timecode_in", str)
        try:
            Timecode.parse(tc_in, fps)
        except Exception as exc:
            raise TakeFormatError(f"{where}: field 'timecode_in': {exc}") from None
        tc_out = doc.get("timecode_out")
        if tc_out is not None and not isinstance(tc_out, str):
            raise TakeFormatError(f"{where}: field 'timecode_out' must be a string or null")
        circle = doc.get("circle")
        if circle is not None and not (isinstance(circle, dict) and isinstance(circle.get("version"), str)):
            raise TakeFormatError(f"{where}: field 'circle' must be null or an object with a 'version' string")
        used_in = need("used_in", list)
        for k, use in enumerate(used_in):
            if not (isinstance(use, dict) and isinstance(use.get("cut"), str) and isinstance(use.get("ranges"), list)):
                raise TakeFormatError(f"{where}: field 'used_in[{k}]' must be an object with 'cut' and 'ranges'")
        return cls(
            id=need("id", str),
            slate=slate,
            fps=str(fps),
            timecode_in=tc_in,
            status=status,
            timecode_out=tc_out,
            performers=list(doc.get("performers", [])),
            streams=list(doc.get("streams", [])),
            notes=[str(n) for n in doc.get("notes", [])],
            markers=list(doc.get("markers", [])),
            created=str(doc.get("created", "")),
            updated=str(doc.get("updated", "")),
            extra=dict(doc.get("extra", {})),
            circle=circle,
            used_in=used_in,
        )


def read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST
    if not path.exists():
        raise TakeFormatError(f"{folder} has no {MANIFEST}: not a take folder")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TakeFormatError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}): truncated or hand-edited?") from None
    except UnicodeDecodeError:
        raise TakeFormatError(f"{path} is not UTF-8 text") from None
    return Manifest.from_doc(doc, str(path))
