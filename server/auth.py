"""The server secret and tokens. The secret lives in ``<takes-root>/.stage-secret`` (created
on first use, mode 0600), so tokens stay valid across restarts of the same stage."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from machinima import protocol as P

from .errors import StageError

SECRET_FILE = ".stage-secret"


def secret_path(root: str | Path) -> Path:
    return Path(root) / SECRET_FILE


def load_secret(root: str | Path, *, create: bool = True) -> bytes:
    """The stage secret of a takes root (created when missing and ``create``)."""
    path = secret_path(root)
    if path.exists():
        text = path.read_text(encoding="ascii").strip()
        try:
            data = bytes.fromhex(text)
        except ValueError:
            raise StageError(f"{path} is not a hex secret", hint="delete it to make a new one (old tokens stop working)") from None
        if len(data) < 16:
            raise StageError(f"{path} holds a secret shorter than 16 bytes", hint="delete it to make a new one")
        return data
    if not create:
        raise StageError(f"no stage secret at {path}", hint="start `machinima server --root ...` once or run `machinima server token` there")
    Path(root).mkdir(parents=True, exist_ok=True)
    data = secrets.token_bytes(32)
    # written whole under a temporary name, then linked into place: a server starting while a
    # `server token` runs (a guide does both at once) reads one complete secret, never half of one
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(data.hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:  # the other one won: use its secret
        return load_secret(root, create=False)
    finally:
        tmp.unlink()
    return data


def parse_ttl(text: str | float | int) -> float:
    """``90``, ``90s``, ``15m``, ``12h``, ``7d`` -> seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    s = str(text).strip().lower()
    mult = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if s and s[-1] in mult:
            return float(s[:-1]) * mult[s[-1]]
        return float(s)
    except ValueError:
        raise StageError(f"cannot read the lifetime {text!r}", hint="use e.g. 90s, 15m, 12h or 7d") from None


def issue_token(root: str | Path, role: str, name: str, ttl: str | float = "12h") -> str:
    try:
        return P.make_token(load_secret(root), role, name, ttl_s=parse_ttl(ttl))
    except P.ProtocolError as exc:
        raise StageError(str(exc)) from None
