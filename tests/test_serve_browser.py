"""The web page of emofuse serve in a real browser: Debian's Chromium driven by Playwright, its fake camera and
microphone fed a real face video and real speech."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

pytest.importorskip("fastapi")
playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                                   "(make test installs it: apt-get install chromium)")]


def _y4m(src: Path, dst: Path, fps: int = 10) -> Path:
    """A video as YUV4MPEG2 (what Chromium's fake camera reads), 640x360, ``fps`` frames a second."""
    import cv2

    from emofuse.media import MediaOptions, iter_frames, probe

    frames = [cv2.resize(f, (640, 360)) for _, f in iter_frames(probe(src), MediaOptions(fps=fps))]
    with dst.open("wb") as f:
        f.write(f"YUV4MPEG2 W640 H360 F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            f.write(b"FRAME\n" + cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())
    return dst


def _wav16(src: Path, dst: Path, seconds: float = 12.0) -> Path:
    """Speech as 16-bit 16 kHz mono WAV (what Chromium's fake microphone reads), then silence to close it."""
    from emofuse.media import decode_audio, probe

    a = decode_audio(probe(src))[0][: int(seconds * 16000)]
    a = np.concatenate([a, np.zeros(16000 * 3, np.float32)])
    with wave.open(str(dst), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(a, -1, 1) * 32767).astype("<i2").tobytes())
    return dst


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    from test_serve import _Server

    from emofuse.pipeline import Analyzer
    from emofuse.serve import ServeOptions, create_app

    a = Analyzer()
    s = _Server(create_app(ServeOptions(), analyzers=[a]))
    yield s.url
    s.stop()
    a.close()


def _browser(pw: Any, tmp: Path, media: Path) -> Any:
    wav = _wav16(media / "beckett.wav", tmp / "speech.wav")
    y4m = _y4m(media / "single_face.mp4", tmp / "face.y4m")
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={wav}",
        f"--use-file-for-fake-video-capture={y4m}", "--autoplay-policy=no-user-gesture-required"])


def test_the_page_analyses_a_file_and_a_live_stream(server: str, media: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = _browser(pw, tmp_path, media)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server + "/")
            # a file: the table shows its segment and the face's label
            page.set_input_files("#file", str(media / "single_face.jpg"))
            page.wait_for_selector("#segments tbody tr", timeout=60_000)
            assert "1 analysed" in page.inner_text("#file-status")
            assert page.locator("#segments tbody tr td:nth-child(7) .tag").count() == 1
            assert page.locator("#bars .bar-group").count() >= 2  # face and fused probabilities
            # text
            page.fill("#text", "You never listen to me!")
            page.click("#text-form button")
            page.wait_for_selector("#segments tbody tr td:nth-child(3):has-text('never listen')", timeout=30_000)
            # a bad file: the server's message, shown
            bad = tmp_path / "broken.mp4"
            bad.write_bytes(b"not a video" * 50)
            page.set_input_files("#file", str(bad))
            page.wait_for_selector("#file-status.error", timeout=30_000)
            assert "broken.mp4: cannot be decoded" in page.inner_text("#file-status")
            # live: the fake camera's face gets a label, the fake microphone's words come back as an utterance
            page.click("#start")
            page.wait_for_selector("#face-label .tag", timeout=60_000)
            page.wait_for_function("document.querySelectorAll('#utterances li').length >= 2", timeout=90_000)
            words = page.inner_text("#utterances").lower()
            assert any(w in words for w in ("tried", "fail", "again", "better")), words
            assert page.locator("#utterances li .tag").count() >= 1  # each with its fused label
            page.click("#stop")
            page.wait_for_function("document.getElementById('live-status').textContent.startsWith('stopped')",
                                   timeout=60_000)
            assert not errors, errors
        finally:
            browser.close()
