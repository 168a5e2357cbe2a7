"""emofuse serve: a real uvicorn server on loopback, driven with httpx; the analyzer is the real one."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest

from emofuse.errors import InputError

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")


def test_options_are_checked_with_their_fix() -> None:
    from emofuse.pipeline import AnalyzerOptions
    from emofuse.serve import ServeOptions

    for kw, msg in (({"port": 70000}, "--port"), ({"queue": -1}, "--queue"), ({"concurrency": 0}, "--concurrency"),
                    ({"token": "a b"}, "--token"), ({"timeout": 0}, "--timeout"), ({"max_upload_mb": "big"}, "--max-upload")):
        with pytest.raises(InputError, match=msg):
            ServeOptions(**kw)
    o = ServeOptions(token="t0k", analyzer=AnalyzerOptions(modalities=("text",), fps=2.0))
    assert ServeOptions.from_json(o.to_json()) == o


def test_upload_names_are_base_names_the_server_chooses() -> None:
    from emofuse.serve.limits import upload_name

    assert upload_name("../../etc/passwd", 0) == "passwd"
    assert upload_name("C:\\Users\\me\\clip one.mp4", 1) == "clip_one.mp4"
    assert upload_name("..", 2) == "upload-2" and upload_name(None, 3) == "upload-3"
    assert upload_name(".hidden.wav", 4) == "hidden.wav"
    long = upload_name("x" * 300 + ".mp4", 5)
    assert len(long) <= 120 and long.endswith(".mp4")


def test_the_cli_refuses_bad_options_before_loading_models() -> None:
    r = subprocess.run([sys.executable, "-c", "from emofuse.cli import app; app()", "serve", "--port", "70000"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--port must be an integer in 0..65535" in r.stderr


# ------------------------------------------------------------------------------------------------ a live server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                break
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def analyzer() -> Iterator[Any]:
    from emofuse.pipeline import Analyzer

    a = Analyzer()
    yield a
    a.close()


@pytest.fixture(scope="module")
def serve(analyzer: Any) -> Iterator[Any]:
    """serve(**ServeOptions fields) -> base URL of a running server sharing the module's analyzer."""
    from emofuse.serve import ServeOptions, create_app

    servers: list[_Server] = []

    def start(**kw: Any) -> str:
        servers.append(_Server(create_app(ServeOptions(**kw), analyzers=[analyzer])))
        return servers[-1].url

    yield start
    for s in servers:
        s.stop()


def _file(path: Path, name: str | None = None) -> tuple[str, tuple[str, bytes]]:
    return ("file", (name or path.name, path.read_bytes()))


@pytest.mark.slow
def test_health_models_schema_and_text(serve: Any, analyzer: Any) -> None:
    url = serve()
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{url}/readyz").json()["status"] == "ready"
    m = httpx.get(f"{url}/v1/models").json()
    assert {c["name"] for c in m["components"]} >= {"whisper-base", "minilm-l6"}
    assert any(f["name"] == "text-minilm-l6-emo.safetensors" and len(f["sha256"]) == 64 for f in m["shipped"])
    schema = httpx.get(f"{url}/openapi.json").json()
    assert "multipart/form-data" in schema["paths"]["/v1/analyze"]["post"]["requestBody"]["content"]
    r = httpx.post(f"{url}/v1/analyze", json={"text": ["You never listen to me!", "What a lovely surprise."]})
    assert r.status_code == 200, r.text
    docs = r.json()["results"]
    assert r.json()["failed"] == 0 and len(docs) == 2
    for doc, t in zip(docs, ["You never listen to me!", "What a lovely surprise."]):
        want = analyzer.analyze_text(t, name="<text>").to_dict()
        assert doc["segments"] == want["segments"] and doc["input"] == "<text>" == want["input"]


@pytest.mark.slow
def test_uploads_answer_what_the_cli_answers(serve: Any, analyzer: Any, media: Path, tmp_path: Path) -> None:
    url = serve()
    r = httpx.post(f"{url}/v1/analyze", files=[_file(media / "single_face.jpg"), _file(media / "beckett.wav")],
                   timeout=120)
    assert r.status_code == 200, r.text
    img, wav = r.json()["results"]
    assert img["input"] == "single_face.jpg" and img["kind"] == "image" and wav["kind"] == "audio"
    want = analyzer.analyze(media / "single_face.jpg").to_dict()
    assert img["segments"] == want["segments"]
    assert any(s["text"] for s in wav["segments"]) and wav["input"] == "beckett.wav"
    # a broken file alone: 422 with the message the CLI prints for a file of that name
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x01 not a video" * 100)
    r = httpx.post(f"{url}/v1/analyze", files=[_file(bad)])
    assert r.status_code == 422
    cli = analyzer.safe_analyze(bad).error.replace(str(tmp_path) + "/", "")
    assert r.json()["detail"] == cli and "broken.mp4: cannot be decoded" in cli and str(tmp_path) not in r.text
    # ... beside a good one: it costs its own result only
    r = httpx.post(f"{url}/v1/analyze", files=[_file(bad), _file(media / "single_face.jpg", "face.jpg")])
    assert r.status_code == 200 and r.json()["failed"] == 1
    assert r.json()["results"][0]["error_type"] == "InputError" and r.json()["results"][1]["input"] == "face.jpg"
    # a client's path is reduced to a base name: nothing is written or read outside the server's folder
    r = httpx.post(f"{url}/v1/analyze", files=[_file(media / "single_face.jpg", "../../../tmp/evil.jpg")])
    assert r.status_code == 200 and r.json()["results"][0]["input"] == "evil.jpg"


@pytest.mark.slow
def test_bad_requests_get_named_4xx(serve: Any) -> None:
    url = serve(max_upload_mb=0.05)
    for kw, status, msg in (
            ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "cannot be parsed"),
            ({"json": {"text": 5}}, 422, "a string or a non-empty list"),
            ({"json": {"text": []}}, 422, "a string or a non-empty list"),
            ({"json": {"text": "   "}}, 422, "no text to analyse"),
            ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 422, "unsupported Content-Type"),
            ({"files": [("upload", ("a.jpg", b"x"))]}, 422, "unknown form field"),
            ({"data": {"file": "not a file"}, "files": [("other", ("a.jpg", b"x"))]}, 422, "unknown form field"),
            ({"files": [("file", ("big.wav", b"\x00" * 200_000))]}, 413, "over the server's limit of 0.05 MiB")):
        r = httpx.post(f"{url}/v1/analyze", **kw)
        assert r.status_code == status and msg in r.json()["detail"], (kw.keys(), r.status_code, r.text)

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused once the limit is crossed, not read whole
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'
        for _ in range(1000):
            yield b"\x00" * 10_000

    r = httpx.post(f"{url}/v1/analyze", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413 and "--max-upload-mb" in r.json()["detail"]
    r = httpx.post(f"{url}/v1/analyze", content=b"--x\r\ngarbage", headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 422 and "no file in the upload" in r.json()["detail"]
    assert httpx.get(f"{url}/readyz").status_code == 200  # still serving


@pytest.mark.slow
def test_token_busy_and_timeout(serve: Any, media: Path) -> None:
    url = serve(token="s3cret")
    assert httpx.post(f"{url}/v1/analyze", json={"text": "hi"}).status_code == 401
    assert httpx.get(f"{url}/healthz").status_code == 200  # health needs no token
    ok = httpx.post(f"{url}/v1/analyze", json={"text": "hi"}, headers={"authorization": "Bearer s3cret"})
    assert ok.status_code == 200
    # one analysis at a time and no queue: of two concurrent requests for a 44 s recording, one is refused
    busy = serve(queue=0)
    with ThreadPoolExecutor(2) as pool:
        rs = list(pool.map(lambda _: httpx.post(f"{busy}/v1/analyze", files=[_file(media / "two_cities.wav")],
                                                timeout=300), range(2)))
    codes = sorted(r.status_code for r in rs)
    assert codes == [200, 429], codes
    refused = next(r for r in rs if r.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1 and "busy" in refused.json()["detail"]
    # a timeout shorter than the analysis: 504 naming the option, and the server goes on
    short = serve(timeout=1.0)
    r = httpx.post(f"{short}/v1/analyze", files=[_file(media / "two_cities.wav")], timeout=300)
    assert r.status_code == 504 and "request timeout" in r.json()["detail"]
    assert httpx.post(f"{short}/v1/analyze", json={"text": "still here"}).status_code == 200


def test_no_fastapi_import_on_plain_use() -> None:
    code = "import emofuse, emofuse.serve, sys; assert 'fastapi' not in sys.modules, 'fastapi imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)



# ------------------------------------------------------------------------------------------------ live


def _pcm(path: Path, seconds: float | None = None) -> bytes:
    import numpy as np

    from emofuse.media import decode_audio, probe

    a = decode_audio(probe(path))[0]
    a = a[: int(seconds * 16000)] if seconds else a
    a = np.concatenate([a, np.zeros(16000, np.float32)])  # a second of silence closes the last utterance
    return (np.clip(a, -1, 1) * 32767).astype("<i2").tobytes()


def _jpegs(path: Path, fps: float = 5.0) -> list[bytes]:
    import cv2

    from emofuse.media import MediaOptions, iter_frames, probe

    return [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes()
            for _, f in iter_frames(probe(path), MediaOptions(fps=fps))]


def _events(ws: Any) -> list[dict[str, Any]]:
    import json

    from websockets.exceptions import ConnectionClosed

    out = []
    try:
        while True:
            out.append(json.loads(ws.recv(timeout=120)))
    except ConnectionClosed:
        return out


@pytest.mark.slow
def test_live_stream_protocol(serve: Any, media: Path) -> None:
    import json

    from websockets.sync.client import connect

    url = serve(max_live=2).replace("http", "ws") + "/v1/live"
    pcm, frames = _pcm(media / "beckett.wav"), _jpegs(media / "single_face.mp4")
    with connect(url, max_size=None) as ws:
        ws.send(json.dumps({"type": "start", "sample_rate": 16000, "format": "pcm16"}))
        assert json.loads(ws.recv(timeout=30))["type"] == "ready"
        step = 3200  # 100 ms of PCM16
        for k, i in enumerate(range(0, len(pcm), step)):
            ws.send(b"\x01" + pcm[i:i + step])
            if k % 4 == 0 and k // 4 < len(frames):
                ws.send(b"\x02" + frames[k // 4])
        ws.send(json.dumps({"type": "stop"}))
        events = _events(ws)
        assert ws.close_code == 1000
    kinds = [e["type"] for e in events]
    assert kinds[-1] == "end" and "utterance" in kinds and "face" in kinds, kinds
    utts = [e["segment"] for e in events if e["type"] == "utterance" and e["segment"]]
    text = " ".join(u["text"] for u in utts).lower()
    assert any(w in text for w in ("tried", "fail", "again", "better")), text
    assert all(u["fused"]["label"] and "voice" in u["modalities"] for u in utts), utts
    assert any("text" in u["modalities"] for u in utts), [(u["text"], u.get("transcript")) for u in utts]  # (a transcript the quality score distrusts is not read)
    assert [u["start"] for u in utts] == sorted(u["start"] for u in utts) and utts[-1]["end"] <= len(pcm) / 32000 + 0.5
    faces = [e for e in events if e["type"] == "face"]
    assert any(e.get("label") for e in faces) and all(e["latency_ms"] >= 0 for e in faces)


@pytest.mark.slow
def test_live_bad_messages_close_only_their_stream(serve: Any, media: Path) -> None:
    import json

    from websockets.sync.client import connect

    base = serve(max_live=2, token="tk").replace("http", "ws") + "/v1/live"
    with connect(base) as ws:  # no token
        assert "needs its token" in _events(ws)[-1]["detail"] and ws.close_code == 1008
    url = base + "?token=tk"
    for first, then, msg in (("hello", None, "first message must be JSON"),
                             (json.dumps({"type": "start", "format": "opus"}), None, "not supported"),
                             (json.dumps({"type": "start", "sample_rate": 4000}), None, "sample_rate must be"),
                             (json.dumps({"type": "start", "modalities": ["smell"]}), None, "modalities must be"),
                             (json.dumps({"type": "start", "partials": "yes"}), None, "partials must be"),
                             (json.dumps({"type": "start", "asr_window": 2}), None, "asr_window must be"),
                             (json.dumps({"type": "start", "asr_window": 20}), None, "no voice head was trained"),
                             (json.dumps({"type": "start"}), b"\x07abc", "must start with 0x01"),
                             (json.dumps({"type": "start"}), b"\x01abc", "not whole 16-bit samples"),
                             (json.dumps({"type": "start"}), b"\x02not a jpeg", "not a JPEG"),
                             (json.dumps({"type": "start"}), "pause", "must be {\"type\": \"stop\"}")):
        with connect(url) as good, connect(url) as bad:
            good.send(json.dumps({"type": "start"}))
            ready = json.loads(good.recv(timeout=30))
            assert ready["type"] == "ready" and ready["asr_window"] == 10.0  # the live default
            bad.send(first)
            if then is not None:
                assert json.loads(bad.recv(timeout=30))["type"] == "ready"
                bad.send(then)
            ev = _events(bad)
            assert ev[-1]["type"] == "error" and msg in ev[-1]["detail"] and bad.close_code == 1003, (msg, ev)
            good.send(b"\x01" + _pcm(media / "beckett.wav", 1.0))  # the other stream goes on
            good.send(json.dumps({"type": "stop"}))
            assert _events(good)[-1]["type"] == "end" and good.close_code == 1000
    with connect(url) as a, connect(url) as b, connect(url) as c:  # max_live = 2
        for ws in (a, b):
            ws.send(json.dumps({"type": "start"}))
            assert json.loads(ws.recv(timeout=30))["type"] == "ready"
        assert "already serves 2 live streams" in _events(c)[-1]["detail"] and c.close_code == 1013


@pytest.mark.slow
def test_live_capture_from_devices(analyzer: Any, media: Path) -> None:
    """`emofuse live --mic/--camera`: capture devices opened by PyAV. lavfi sources (a real recording and a
    real face video behind `amovie` / `movie`) stand in for a microphone and a webcam, which CI has not."""
    from emofuse.errors import InputError
    from emofuse.live import LiveEngine, capture, open_device

    with pytest.raises(InputError, match="FORMAT:NAME"):
        open_device("default", "mic")
    with pytest.raises(InputError, match="no 'nosuchfmt' input; it has .*lavfi"):
        open_device("nosuchfmt:x", "mic")
    with pytest.raises(InputError, match="cannot be opened"):
        open_device("lavfi:amovie=/nonexistent.wav", "mic")
    with pytest.raises(InputError, match="has no video stream"):
        open_device("lavfi:sine=frequency=440:duration=1", "camera")
    session = LiveEngine(analyzer).session()
    events = capture(session, mic=f"lavfi:amovie={media / 'beckett.wav'}", camera=f"lavfi:movie={media / 'single_face.mp4'}",
                     realtime=False)
    utts = [e["segment"] for e in events if e["type"] == "utterance" and e["segment"]]
    text = " ".join(u["text"] for u in utts).lower()
    assert any(w in text for w in ("tried", "fail", "again", "better")), text
    assert any(e["type"] == "face" and e.get("label") for e in events)
    assert session.now > 5 and all("wall" in e for e in events)
    # --seconds stops a source that would run on (a 60 s tone, no speech: no utterance)
    t = time.monotonic()
    events = capture(LiveEngine(analyzer).session(), mic="lavfi:sine=frequency=440:duration=60", seconds=1.0)
    assert time.monotonic() - t < 10 and not [e for e in events if e["type"] == "utterance" and e.get("segment")]


def test_live_speculation_sends_the_same_utterances_sooner(analyzer: Any, media: Path) -> None:
    """Speculation analyses an utterance in its pause: the events are those of waiting for the whole pause (the
    same audio, so the same text and labels), each one closed by a pause sent from the early analysis; a
    pause that turned out shorter than min_silence cost an analysis that was dropped, never sent."""
    from emofuse.live import LiveEngine, LiveOptions, replay

    def utterances(speculate: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        session = LiveEngine(analyzer).session(LiveOptions(partials=False, speculate=speculate))
        evs = replay(session, str(media / "two_cities.wav"), realtime=False)
        return [e for e in evs if e["type"] == "utterance"], session.stats

    def answers(evs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(e["speech_end"], e["closed"], e["segment"] and (e["segment"]["start"], e["segment"]["end"],
                 e["segment"]["text"], e["segment"]["fused"]["label"])) for e in evs]

    late, st_late = utterances(False)
    early, st_early = utterances(True)
    assert len(late) >= 5 and answers(early) == answers(late)
    paused = [e for e in early if e["closed"] == "pause"]
    assert paused and all(e["early"] for e in paused) and not any(e["early"] for e in late)
    assert st_late["early"] == 0 and st_early["early"] > st_early["early_used"] >= len({e["speech_end"] for e in paused}), \
        st_early


def test_live_cli_names_its_sources() -> None:
    from conftest import MEDIA

    for args, msg in ((["live"], "either --from FILE"), (["live", "--mic", "default"], "FORMAT:NAME"),
                      (["live", "--from", "x.wav", "--mic", "alsa:default"], "either --from FILE"),
                      (["live", "--from", str(MEDIA / "beckett.wav"), "--asr-window", "20"], "--asr-window 10 or 30")):
        r = subprocess.run([sys.executable, "-c", "from emofuse.cli import app; app()", *args],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and msg in r.stderr, (args, r.stderr)
