"""The director console in real headless Chromium: join, live skeletons, record, stop, notes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from server_helpers import ServerProcess, synthetic_pose, token
from machinima.client import StageClient
from machinima.take import Take

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _performers(url: str, root, stop: threading.Event, names=("alice", "bob"), xs=(-0.6, 0.6)) -> threading.Thread:
    """Performers walking in place at ``xs`` metres (the hips' x; synthetic_pose sways 0.3 m)."""
    async def main():
        clients = [StageClient(url, token(root, "performer", n)) for n in names]
        for c in clients:
            await c.open()
        i = 0
        while not stop.is_set():
            for k, c in enumerate(clients):
                await c.send_pose(synthetic_pose(i / 60, phase=k * 2.0) + np.array([xs[k], 0, 0, 0, 0, 0, 0], np.float32) * (np.arange(55) == 0)[:, None])
            i += 1
            await asyncio.sleep(1 / 60)
        for c in clients:
            await c.close()

    th = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    th.start()
    return th


@contextlib.contextmanager
def _console(root, role=("director", "dana"), xs=(-0.6, 0.6)):
    """Headless Chromium on the console of `machinima server --root takes` (the docs' first
    example) with two performers streaming at ``xs``: yields (browser, page, page errors, server)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which("chromium") and not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    srv = ServerProcess(Path(root.name), cwd=root.parent)
    stop = threading.Event()
    perf = _performers(srv.url, root, stop, xs=xs)
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"http://127.0.0.1:{srv.port}/#token={token(root, *role)}")
            yield browser, page, errors, srv
            browser.close()
    finally:
        stop.set()
        perf.join(10)
        srv.stop()


def test_director_console_records_a_take_in_chromium(root, tmp_path):
    with _console(root) as (browser, page, errors, srv):
        page.wait_for_selector("#conn.on", timeout=15000)
        page.wait_for_function("document.querySelectorAll('#performers tbody tr').length == 2", timeout=15000)
        page.fill("#scene", "7")
        page.fill("#shot", "C")
        time.sleep(0.5)  # a few frames of live view
        shot = tmp_path / "console.png"
        page.locator("#view").screenshot(path=str(shot))
        page.click("#record")
        page.wait_for_selector("#recstate.recording", timeout=10000)
        rec_text = page.inner_text("#recstate")
        time.sleep(1.0)
        page.fill("#markername", "nice fall")
        page.click("#markerbtn")
        page.wait_for_function("[...document.querySelectorAll('#log li')].some(li => li.textContent.includes('marker ok'))", timeout=5000)
        page.click("#stop")
        page.wait_for_selector("#recstate.standby", timeout=10000)
        page.fill("#notetext", "keeper")
        page.click("#notebtn")
        page.wait_for_function("document.querySelector('#takes tbody tr') && document.querySelector('#takes tbody tr').textContent.includes('keeper')", timeout=10000)
        row = page.inner_text("#takes tbody tr")
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        # An observer sees the stage but cannot roll; a forged token is refused in words.
        obs = browser.new_page()
        obs.goto(f"http://127.0.0.1:{srv.port}/#token={token(root, 'observer', 'olga')}")
        obs.wait_for_selector("#conn.on", timeout=15000)
        observer_can_record = obs.is_enabled("#record")
        bad = browser.new_page()
        bad.goto(f"http://127.0.0.1:{srv.port}/#token=abc.def")
        bad.wait_for_function("[...document.querySelectorAll('#log li')].some(li => li.textContent.includes('bad token'))", timeout=10000)
    assert not errors, errors
    assert not observer_can_record
    take_id = rec_text.split()[2]
    assert take_id == "untitled_7_c_t001" and "complete" in row and "nice fall" in row
    take = Take.open(root / take_id)
    assert take.manifest.status == "complete" and take.manifest.notes == ["keeper"]
    assert sorted(take.store.performers()) == ["alice", "bob"]
    assert len(take.store.read_mocap("alice")) > 30  # about a second at 60 Hz
    # The live view shows skeletons: the canvas is not blank and has performer colours.
    from machinima.imageseq import read_image

    img = read_image(shot)
    assert img.std() > 5
    coloured = (np.abs(img[..., 0].astype(int) - img[..., 2].astype(int)) > 80).sum()
    assert coloured > 200, coloured


def test_the_live_view_frames_every_performer_even_far_from_the_centre(root, tmp_path):
    """A performer at 3.1 m and one at -4 m (the view used to stop at about +-2.3 m): both drawn,
    each in its own colour, and both listed live."""
    with _console(root, ("observer", "olga"), xs=(3.1, -4.0)) as (_, page, errors, _srv):
        page.wait_for_function("[...document.querySelectorAll('#performers tbody tr')].filter(r => r.textContent.includes('live')).length == 2",
                               timeout=15000)
        time.sleep(1.0)  # the framing settles
        shot = tmp_path / "view.png"
        page.locator("#view").screenshot(path=str(shot))
    assert not errors, errors
    from machinima.imageseq import read_image

    img = read_image(shot)[..., :3].astype(int)
    for rgb in ((0xFF, 0x70, 0x43), (0x4F, 0xC3, 0xF7)):  # the console's first two performer colours
        near = (np.abs(img - np.array(rgb)).sum(axis=-1) < 60)
        cols = np.nonzero(near.any(axis=0))[0]
        assert near.sum() > 150, (rgb, near.sum())
        assert 0 < cols.min() and cols.max() < img.shape[1] - 1, (rgb, cols.min(), cols.max())  # whole, not cut by an edge
