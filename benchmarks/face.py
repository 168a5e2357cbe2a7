"""Face expert cost at the pipeline's 1280x720 target (prints figures; not a test).

Per-frame BlazeFace detection, per-face FER cost batched and one at a time, and the whole
``analyze_frames`` path per frame, on frames of the Pexels talking-head video that ``make test`` fetches
(``scripts/fetch_media.py``). Single timings on these shared machines are noisy: compare the ratios
(batched vs single, detection vs expression) within one run.

    python benchmarks/face.py [--frames 48]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing
VIDEO = ROOT / ".cache" / "media" / "WolfgangLanger_Pexels.mp4"


def frames(path: Path, n: int, step: int) -> list:  # type: ignore[type-arg]
    """Every ``step``-th decoded frame, resized to 1280x720, ``n`` of them."""
    import av
    import cv2

    with av.open(str(path)) as c:
        return [cv2.resize(f.to_ndarray(format="rgb24"), (1280, 720))
                for i, f in zip(range(n * step), c.decode(video=0)) if i % step == 0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=48)
    a = ap.parse_args()
    if not VIDEO.exists():
        print(f"{VIDEO} missing: run `python scripts/fetch_media.py` (make test does)", file=sys.stderr)
        return 2
    import numpy as np

    from emofuse.features.face import FaceAnalyzer, FaceOptions

    analyzer = FaceAnalyzer(FaceOptions())
    fr = frames(VIDEO, a.frames, step=5)
    analyzer.analyze_frames(fr[:2])  # warm up (loads the models)
    t = time.perf_counter()
    dets = [analyzer._run(f, 0, analyzer.options.min_frame_confidence) for f in fr]
    det_ms = (time.perf_counter() - t) / len(fr) * 1e3
    crops = np.stack([analyzer._crop(f, d[0][0]) for f, d in zip(fr, dets) if d])
    t = time.perf_counter()
    analyzer.classify(crops)
    batched_ms = (time.perf_counter() - t) / len(crops) * 1e3
    t = time.perf_counter()
    for c in crops[:16]:
        analyzer.classify(c[None])
    single_ms = (time.perf_counter() - t) / min(16, len(crops)) * 1e3
    t = time.perf_counter()
    obs = analyzer.analyze_frames(fr)
    total_ms = (time.perf_counter() - t) / len(fr) * 1e3
    analyzer.close()
    print(f"1280x720, {len(fr)} frames: detection {det_ms:.2f} ms/frame; FER {batched_ms:.2f} ms/face batched, "
          f"{single_ms:.2f} single (ratio {single_ms / batched_ms:.1f}); analyze_frames {total_ms:.2f} ms/frame -> "
          f"{0.3 * total_ms:.2f} s for 300 frames ({sum(o is not None for o in obs)}/{len(obs)} with a face)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
