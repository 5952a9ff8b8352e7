"""The shared-storage check a Ray job makes before its first chunk.

Tasks are sent paths, not pixels: every node must see the take's folder at the same path (NFS,
SMB, Lustre, a cloud filesystem mounted the same way everywhere). A node that does not would
fail every chunk it gets, after the retries, with an error about a missing frame. So the driver
writes a token file into the step folder and asks one tiny task on every live node to read it
back; a node that cannot is named in one line, before any work starts.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from .errors import DistributedError


def sees(path: str, token: str) -> str | None:
    """Run on a node: None if ``path`` holds ``token``, else why not (one line)."""
    try:
        got = Path(path).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return f"{path} does not exist there"
    except OSError as exc:
        return f"{path} cannot be read there ({exc.strerror or exc})"
    return None if got == token else f"{path} holds another run's token (a different folder at the same path)"


def probe_shared(ray: Any, folder: str | Path, *, timeout_s: float = 120.0) -> int:
    """Check every live node sees ``folder``; returns how many nodes were checked.

    Raises ``DistributedError`` naming the first node that cannot, with what to do."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(8)
    probe = folder / f".ray-probe-{token}"
    probe.write_text(token, encoding="utf-8")
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        check = ray.remote(num_cpus=0, max_retries=0)(sees)
        refs = {check.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(str(probe), token):
                n.get("NodeManagerAddress", n["NodeID"][:8]) for n in nodes}
        ready, not_ready = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
        for ref in ready:
            why = ray.get(ref)
            if why:
                raise DistributedError(f"node {refs[ref]} cannot see the step folder: {why}",
                                       hint="put the take on storage every node mounts at the same path (NFS, SMB, Lustre); see docs/post.md#ray")
        if not_ready:
            raise DistributedError(f"node {refs[not_ready[0]]} did not answer the storage check in {timeout_s:.0f} s",
                                   hint="check the node is healthy (`ray status`)")
        return len(nodes)
    finally:
        try:
            os.unlink(probe)
        except OSError:
            pass
