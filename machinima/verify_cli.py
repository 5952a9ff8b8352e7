"""The body of the top-level ``machinima verify FILE|FOLDER [--json]``: disclosure, not take
integrity (that is ``machinima takes verify``).

Trust comes from the target's project (its machinima.toml's ``[rights] trust_anchors`` and
``crl``, and the project's local chain) and the working directory's. One line per file, the
reason on every failing one, a summary; exit 1 when any file is not ``ok``/``ok-local``/
``unwatermarked`` (see ``machinima.provenance.verify`` for every status).
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from .rights import DisclosureError

console = Console(soft_wrap=True)  # one line per file and per finding, never wrapped
COLORS = {"ok": "green", "ok-local": "green", "unwatermarked": "yellow"}


def run_verify(target: Path, *, as_json: bool = False, watermark: bool = True) -> int:
    """Print a report per file and a summary; return the exit code."""
    from .provenance import trust_for, verify_path

    trust = trust_for(target)
    reports = verify_path(target, trust=trust, watermark=watermark)
    if not reports:
        raise DisclosureError(f"no pictures or videos under {target}",
                              hint="verify checks PNG/JPEG/MP4 outputs; a take's render passes and masks are not disclosure")
    bad = [r for r in reports if r.bad]
    if as_json:
        print(json.dumps({"files": [r.to_doc() for r in reports], "bad": len(bad), "total": len(reports),
                          "anchors": [a.name for a in trust.anchors], "notes": trust.problems}, indent=2, default=str))
        return 1 if bad else 0
    single = len(reports) == 1
    for r in reports:
        c = COLORS.get(r.status, "red")
        line = f"[{c}]{r.status:<14}[/] {r.path}"
        if r.source_type:
            line += f" source={r.source_type}"
        if r.take:
            line += f" take={r.take} step={r.step} ({r.kind})"
        if r.records:
            line += f" rights={','.join(r.records)}"
        if r.watermark is not None and (single or r.bad):
            w = r.watermark
            line += (f" watermark=production#{w.production_tag} manifest#{w.manifest_tag} "
                     f"{'authentic' if r.watermark_authentic else 'not checked (no key)' if r.watermark_authentic is None else 'NOT authentic'}"
                     if w.found else " watermark=none")
        if r.decision:
            line += f" [yellow]disclosure off by {r.decision.get('by')} ({r.decision.get('reason')})[/]"
        if single and r.actions:
            line += f" actions={','.join(r.actions)}"
        if single and r.signer:
            line += f" signer={r.signer}"
        if r.reason and (single or r.bad or r.status == "ok-local"):
            line += f": {r.reason}"
        console.print(line, highlight=False, soft_wrap=True)
    counts: dict[str, int] = {}
    for r in reports:
        counts[r.status] = counts.get(r.status, 0) + 1
    for note in trust.problems:
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    console.print(f"{len(reports)} file(s): " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), highlight=False)
    return 1 if bad else 0
