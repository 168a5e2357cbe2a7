"""Live latency: a real recording streamed at real time to ``emofuse serve``'s ``WS /v1/live`` (loopback), as a
browser would send it (100 ms PCM16 messages, JPEG frames at ``--fps``). Prints figures; not a test.

The stream: ``two_cities.wav`` (LibriVox English, 44 s) repeated with 1 s pauses to ``--minutes``, and the frames
of the Pexels talking-head clip looped beside it (both fetched by ``make test``). The server runs in its own
process (``emofuse serve``), the client here.

* utterance latency: from the moment the client sent the audio where the utterance's speech ended
  (``speech_end`` on the stream clock) to the utterance event's arrival;
* face latency: from a frame's send to its face event; processed frames per second;
* compute / elapsed: the server's compute seconds for the stream over its length, per thread (speech and faces
  run side by side; each < 1 keeps up);
* early analyses: utterances analysed while their pause ran (``speculate``), and how many of them were sent
  (the rest was compute spent on pauses that turned out shorter than ``min_silence``);
* growth: utterance latency p95 of the stream's first half against its second half.

    python benchmarks/live.py [--minutes 5] [--asr-model whisper-base|whisper-tiny.en] [--asr-window 10|30] [--fps 10] [--no-partials] [--no-speculate]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
MEDIA = ROOT / ".cache" / "media"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, *args: str) -> subprocess.Popen[bytes]:
    """``emofuse serve`` in its own process; returns once /readyz says ready."""
    import httpx

    p = subprocess.Popen([sys.executable, "-c", "from emofuse.cli import app; app()", "serve", "--port", str(port), *args],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return p
        except httpx.HTTPError:
            pass
        if p.poll() is not None:
            raise SystemExit(f"the server exited ({p.returncode})")
        time.sleep(0.2)
    p.kill()
    raise SystemExit("the server did not become ready")


def stream_media(minutes: float, fps: float) -> tuple[bytes, list[tuple[float, bytes]]]:
    import cv2

    from emofuse.media import MediaOptions, decode_audio, iter_frames, probe

    speech = decode_audio(probe(MEDIA / "two_cities.wav"))[0]
    gap = np.zeros(16000, np.float32)
    n = int(minutes * 60 * 16000)
    parts, total = [], 0
    while total < n:
        parts += [speech, gap]
        total += len(speech) + len(gap)
    audio = np.concatenate(parts)[:n]
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    clip = [cv2.imencode(".jpg", cv2.cvtColor(cv2.resize(f, (640, 360)), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 75])[1]
            .tobytes() for _, f in iter_frames(probe(MEDIA / "WolfgangLanger_Pexels.mp4"), MediaOptions(fps=fps))]
    frames = [(k / fps, clip[k % len(clip)]) for k in range(int(minutes * 60 * fps))]
    return pcm, frames


async def run_stream(url: str, pcm: bytes, frames: list[tuple[float, bytes]], partials: bool,
                     asr_window: float, speculate: bool) -> dict[str, object]:
    import websockets

    utt, face, end, work, kinds = [], [], {}, [], []
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "start", "sample_rate": 16000, "format": "pcm16", "partials": partials,
                                  "speculate": speculate, "asr_window": asr_window}))
        assert json.loads(await ws.recv())["type"] == "ready"
        t0 = time.monotonic()
        sent_frame: dict[float, float] = {}

        async def reader() -> None:
            async for m in ws:
                e = json.loads(m)
                now = time.monotonic()
                if e["type"] == "utterance":
                    utt.append((e["speech_end"], now - (t0 + e["speech_end"])))
                    work.append(e["ms"] / 1e3)
                    kinds.append(e["closed"] + (", early" if e["early"] else ""))
                elif e["type"] == "face":
                    sent = sent_frame.get(round(e["t"], 1))
                    face.append((now - sent) if sent is not None else e["latency_ms"] / 1e3)
                elif e["type"] == "end":
                    end.update(e)

        task = asyncio.create_task(reader())
        step, fi = 3200, 0
        for i in range(0, len(pcm), step):
            t = (i + step) / 32000
            await asyncio.sleep(max(0.0, t0 + t - time.monotonic()))
            await ws.send(b"\x01" + pcm[i:i + step])
            while fi < len(frames) and frames[fi][0] <= t:
                sent_frame[round(t, 1)] = time.monotonic()
                await ws.send(b"\x02" + frames[fi][1])
                fi += 1
        await ws.send(json.dumps({"type": "stop"}))
        await task
    return {"utt": utt, "face": face, "end": end, "work": work, "kinds": kinds, "seconds": len(pcm) / 32000}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--asr-model", default="whisper-base")
    ap.add_argument("--asr-window", type=float, default=10.0, help="seconds per Whisper window, asked for in the start message (the live default: 10)")
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--no-partials", action="store_true", help="ask the server for no partial transcripts")
    ap.add_argument("--no-speculate", action="store_true", help="analyse each utterance only once its pause is over")
    a = ap.parse_args()
    if not (MEDIA / "two_cities.wav").exists():
        print("media missing: run `python scripts/fetch_media.py` (make test does)", file=sys.stderr)
        return 2
    pcm, frames = stream_media(a.minutes, a.fps)
    port = free_port()
    server = start_server(port, "--asr-model", a.asr_model)
    try:
        r = asyncio.run(run_stream(f"ws://127.0.0.1:{port}/v1/live", pcm, frames, not a.no_partials, a.asr_window,
                                   not a.no_speculate))
    finally:
        server.terminate()
        server.wait(10)
    utt = np.array([lat for _, lat in r["utt"]])  # type: ignore[union-attr]
    ends = np.array([t for t, _ in r["utt"]])  # type: ignore[union-attr]
    face = np.array(r["face"]) * 1e3
    end: dict[str, float] = r["end"]  # type: ignore[assignment]
    half = ends < r["seconds"] / 2  # type: ignore[operator]
    print(f"live stream, {a.asr_model} on {a.asr_window:g} s windows, {r['seconds']:.0f} s at real time, frames sent at {a.fps:g} fps, "
          f"partials {'off' if a.no_partials else 'on'}, speculation {'off' if a.no_speculate else 'on'}, loopback")
    print("| figure | value | target |\n|---|---|---|")
    print(f"| utterances | {len(utt)} | |")
    print(f"| utterance latency after the end of speech, p50 / p95 | {np.median(utt):.2f} / "
          f"{np.percentile(utt, 95):.2f} s | p95 <= 1.0 s |")
    work = np.array(r["work"])  # type: ignore[arg-type]
    print(f"| the utterance's analysis (begun in the pause when speculating), p50 / p95 | {np.median(work):.2f} / {np.percentile(work, 95):.2f} s | |")
    print(f"| ... first half / second half p95 | {np.percentile(utt[half], 95):.2f} / "
          f"{np.percentile(utt[~half], 95):.2f} s | no growth |")
    print(f"| face event latency, p50 / p95 | {np.median(face):.0f} / {np.percentile(face, 95):.0f} ms | p95 <= 150 ms |")
    print(f"| processed frames per second | {len(face) / r['seconds']:.1f} | >= 8 |")  # type: ignore[operator]
    print(f"| compute / elapsed, speech thread / face thread | {end.get('speech_compute', float('nan')) / r['seconds']:.2f} / "  # type: ignore[operator]
          f"{end.get('face_compute', float('nan')) / r['seconds']:.2f} | < 1 |")  # type: ignore[operator]
    kinds = np.array(r["kinds"])  # type: ignore[arg-type]
    for k in sorted(set(kinds)):
        print(f"| ... closed by {k}: n, latency p50 / p95 | {(kinds == k).sum()}, {np.median(utt[kinds == k]):.2f} / "
              f"{np.percentile(utt[kinds == k], 95):.2f} s | |")
    print(f"| early analyses / sent | {end.get('early')} / {end.get('early_used')} | |")
    print(f"| frames dropped (slot, throttle) / events dropped | {end.get('frames_dropped')}, {end.get('dropped_frames')} / "
          f"{end.get('events_dropped')} | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
