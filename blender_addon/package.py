"""Build the Blender extension zip (no bpy): ``machinima blender package``.

The zip holds the add-on modules, the example set and ``blender_manifest.toml`` at its root, and
under ``wheels/`` a pure-Python wheel of the machinima hub (``machinima/``) that Blender installs
beside the extension (listed in the manifest's ``wheels``). Extra wheels (e.g. OpenCV, needed
to write pass images from inside Blender's own Python) are added with ``extra_wheels``.
Install the zip in Blender: Edit > Preferences > Get Extensions > Install from Disk.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import tomllib
import zipfile
from pathlib import Path

from .errors import PackageError

ADDON_DIR = Path(__file__).parent
HUB_DIR = ADDON_DIR.parent / "machinima"
EXCLUDE = {"cli.py", "package.py"}


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def hub_wheel(version: str, hub_dir: Path = HUB_DIR) -> tuple[str, bytes]:
    """A py3-none-any wheel of the hub package (file name, bytes)."""
    if not (hub_dir / "__init__.py").exists():
        raise PackageError(f"the machinima hub is not at {hub_dir}", hint="run from a machinima checkout or install")
    name = f"machinima-{version}-py3-none-any.whl"
    dist = f"machinima-{version}.dist-info"
    files: dict[str, bytes] = {}
    for p in sorted(hub_dir.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".json", ".toml", ".html", ".js", ".css", ".md"):
            files[f"machinima/{p.relative_to(hub_dir).as_posix()}"] = p.read_bytes()
    files[f"{dist}/METADATA"] = (f"Metadata-Version: 2.1\nName: machinima\nVersion: {version}\n"
                                 "Summary: machinima core (take format, skeleton, passes) for the Blender extension\n").encode()
    files[f"{dist}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: machinima-package\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    rec = io.StringIO()
    w = csv.writer(rec, lineterminator="\n")
    for fname, data in files.items():
        w.writerow([fname, _record_hash(data), len(data)])
    w.writerow([f"{dist}/RECORD", "", ""])
    files[f"{dist}/RECORD"] = rec.getvalue().encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for fname, data in files.items():
            z.writestr(fname, data)
    return name, buf.getvalue()


def build_package(out_dir: str | Path, *, extra_wheels: list[str | Path] = ()) -> Path:
    """Write ``machinima-<version>.zip`` into ``out_dir`` and return its path."""
    manifest_text = (ADDON_DIR / "blender_manifest.toml").read_text()
    manifest = tomllib.loads(manifest_text)
    for key in ("schema_version", "id", "version", "name", "tagline", "maintainer", "type", "blender_version_min", "license"):
        if key not in manifest:
            raise PackageError(f"blender_manifest.toml lacks {key!r}")
    version = manifest["version"]
    wheels: dict[str, bytes] = dict([hub_wheel(version)])
    for w in extra_wheels:
        p = Path(w)
        if not p.exists() or p.suffix != ".whl":
            raise PackageError(f"extra wheel {p} does not exist or is not a .whl file")
        wheels[p.name] = p.read_bytes()
    listed = ", ".join(f'"./wheels/{n}"' for n in sorted(wheels))
    manifest_text = re.sub(r"(?m)^# wheels = .*$", f"wheels = [{listed}]", manifest_text)
    if "wheels = [" not in manifest_text:
        raise PackageError("blender_manifest.toml has no '# wheels = ...' line to fill in")
    tomllib.loads(manifest_text)
    out = Path(out_dir) / f"{manifest['id']}-{version}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("blender_manifest.toml", manifest_text)
        for p in sorted(ADDON_DIR.rglob("*")):
            rel = p.relative_to(ADDON_DIR).as_posix()
            if not p.is_file() or "__pycache__" in p.parts or rel in EXCLUDE or rel == "blender_manifest.toml":
                continue
            if p.suffix in (".py", ".toml", ".json", ".md", ".glb", ".png"):
                z.write(p, rel)
        for name, data in sorted(wheels.items()):
            z.writestr(f"wheels/{name}", data)
    return out
