"""REST load: ``emofuse serve`` in its own process on loopback, driven by httpx clients. Prints figures; not a test.

1. **mixed**: ``--requests`` (200) requests at concurrency ``--concurrency`` (8), a third each text, an image and
   a 20 s video (``demo.mp4``); the server's queue holds them all (``--queue`` = concurrency): lost requests,
   5xx, p50 / p95 latency, throughput.
2. **overload**: a burst of 24 video requests at once against ``--queue 2``: every answer is a 200 or a 429
   with Retry-After, nothing else.
3. **memory**: the server's RSS after 50 warm-up requests and after ``--memory-requests`` (500) more (text and
   image, the cheap ones, so that the count is reached): the growth.

    python benchmarks/serve.py [--requests 200] [--concurrency 8] [--memory-requests 500]
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
MEDIA = ROOT / ".cache" / "media"

from live import free_port, start_server  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--memory-requests", type=int, default=500)
    a = ap.parse_args()
    import httpx

    if not (MEDIA / "demo.mp4").exists():
        print("media missing: run `python scripts/fetch_media.py` (make test does)", file=sys.stderr)
        return 2
    image, video = (MEDIA / "single_face.jpg").read_bytes(), (MEDIA / "demo.mp4").read_bytes()
    lines = ["You never listen to me!", "What a lovely surprise, thank you.", "I am so tired of this.",
             "Get out of my house.", "That smell is revolting.", "I'm scared to go in there alone."]

    def request(url: str, k: int, kind: str | None = None) -> tuple[str, int, float, dict[str, str]]:
        kind = kind or ("text", "image", "video")[k % 3]
        t = time.perf_counter()
        try:
            if kind == "text":
                r = httpx.post(f"{url}/v1/analyze", json={"text": lines[k % len(lines)]}, timeout=600)
            else:
                body = image if kind == "image" else video
                r = httpx.post(f"{url}/v1/analyze", files=[("file", (f"{kind}-{k}.{'jpg' if kind == 'image' else 'mp4'}",
                                                                      body))], timeout=600)
            return kind, r.status_code, time.perf_counter() - t, dict(r.headers)
        except httpx.HTTPError as e:
            return kind, -1, time.perf_counter() - t, {"error": type(e).__name__}

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(port, "--queue", str(a.concurrency), "--timeout", "1200")
    try:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(a.concurrency) as pool:
            res = list(pool.map(lambda k: request(url, k), range(a.requests)))
        wall = time.perf_counter() - t0
        codes = [c for _, c, _, _ in res]
        lat = np.array([s for _, c, s, _ in res if c == 200])
        print(f"emofuse serve, loopback, 1 worker, concurrency 1 per worker; {a.requests} mixed requests from "
              f"{a.concurrency} clients")
        print("| figure | value | target |\n|---|---|---|")
        print(f"| answered 200 / lost (no answer) / 5xx / other | {codes.count(200)} / {codes.count(-1)} / "
              f"{sum(500 <= c < 600 for c in codes)} / {sum(c not in (200, -1) and not 500 <= c < 600 for c in codes)} | "
              "0 lost, 0 5xx |")
        print(f"| latency p50 / p95 (queueing included) | {np.median(lat):.2f} / {np.percentile(lat, 95):.2f} s | |")
        for kind in ("text", "image", "video"):
            k_lat = np.array([s for kd, c, s, _ in res if kd == kind and c == 200])
            print(f"| ... {kind}: p50 / p95 | {np.median(k_lat):.2f} / {np.percentile(k_lat, 95):.2f} s | |")
        print(f"| throughput | {len(lat) / wall:.2f} requests/s ({wall:.0f} s) | |")
    finally:
        server.terminate()
        server.wait(10)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(port, "--queue", "2")
    try:
        with ThreadPoolExecutor(24) as pool:
            burst = list(pool.map(lambda k: request(url, k, "video"), range(24)))
        codes = [c for _, c, _, _ in burst]
        retry = [h.get("retry-after") for _, c, _, h in burst if c == 429]
        print(f"| overload, 24 videos at once, queue 2: 200 / 429 / other | {codes.count(200)} / {codes.count(429)} / "
              f"{sum(c not in (200, 429) for c in codes)} (Retry-After on every 429: {all(retry)}) | only 200 and 429 |")
        for k in range(50):
            request(url, k, ("text", "image")[k % 2])
        before = rss_mb(server.pid)
        t0 = time.perf_counter()
        for k in range(a.memory_requests):
            request(url, k, ("text", "image")[k % 2])
        after = rss_mb(server.pid)
        print(f"| RSS after 50 warm-up requests / after {a.memory_requests} more | {before:.0f} / {after:.0f} MB "
              f"(growth {after - before:+.0f} MB, {time.perf_counter() - t0:.0f} s) | growth <= 50 MB |")
    finally:
        server.terminate()
        server.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
