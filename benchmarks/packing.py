"""Short recordings analysed together (``analyze_many``: shared ASR windows) against one by one (prints figures).

    python benchmarks/packing.py [--data ../shared/data] [--n 60]

Per corpus (seeded samples of RAVDESS, English, in the voice head's training data; nEMO, Polish, never seen
by it): wall time both ways, the share of inputs with a voice answer, how often the voice label is the same,
the L1 distance between the two voice distributions (median, 90th percentile), and the voice expert's
unweighted accuracy (UA, on the classes present) both ways. The Whisper encoder attends over the whole window,
so packing changes each clip's encoder states; this measures what that does to the answers.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

NEMO = {"anger": "angry", "fear": "fearful", "happiness": "happy", "neutral": "neutral", "sadness": "sad",
        "surprised": "surprised"}  # nEMO names its files <speaker>_<emotion>_<n>


def _voice(r, emotions) -> np.ndarray | None:  # type: ignore[no-untyped-def]
    """The input's voice distribution: its segments' answers weighted by their length."""
    segs = [s for s in getattr(r, "segments", ()) if "voice" in s.modalities]
    if not segs:
        return None
    w = np.array([max(0.1, s.end - s.start) for s in segs])
    p = np.array([[s.modalities["voice"].probs[e] for e in emotions] for s in segs])
    return (w[:, None] * p).sum(0) / w.sum()


def main() -> int:
    from sklearn.metrics import balanced_accuracy_score

    from emofuse import EMOTIONS, Analyzer, AnalyzerOptions
    from emofuse.corpora import prepare

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--n", type=int, default=60)
    a = ap.parse_args()
    rng = random.Random(1)
    rav = rng.sample(list(prepare("ravdess", a.data)), a.n)
    nemo = rng.sample(sorted((a.data / "speech" / "nemo").glob("*.opus")), a.n)
    sets = {"RAVDESS": [(str(it.paths[0]), it.label) for it in rav],
            "nEMO": [(str(p), NEMO[p.stem.split("_")[1]]) for p in nemo]}
    an = Analyzer(AnalyzerOptions(modalities=("voice",)))
    an.analyze(sets["nEMO"][0][0])  # warm up
    print("| corpus | inputs | together s | alone s | voice answers | same label | L1 median / p90 | UA together | UA alone |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, items in sets.items():
        files, labels = [f for f, _ in items], [y for _, y in items]
        t = time.perf_counter()
        tog = an.analyze_many(files)
        t_tog = time.perf_counter() - t
        t = time.perf_counter()
        alo = [an.analyze(f) for f in files]
        t_alo = time.perf_counter() - t
        pt, pa = [_voice(r, EMOTIONS) for r in tog], [_voice(r, EMOTIONS) for r in alo]
        ok = [i for i in range(len(files)) if pt[i] is not None and pa[i] is not None]
        l1 = np.array([np.abs(pt[i] - pa[i]).sum() for i in ok])  # type: ignore[operator]
        same = np.mean([pt[i].argmax() == pa[i].argmax() for i in ok])  # type: ignore[union-attr]
        y = [labels[i] for i in ok]
        present = sorted(set(y))

        def ua(p: list) -> float:
            # predictions restricted to the classes the corpus has (nEMO has no disgust)
            idx = [EMOTIONS.index(e) for e in present]
            return float(balanced_accuracy_score(y, [present[int(np.argmax(p[i][idx]))] for i in ok]))

        print(f"| {name} | {len(files)} | {t_tog:.1f} | {t_alo:.1f} | {len(ok)} / {len(files)} | {same:.2f} | "
              f"{np.median(l1):.2f} / {np.quantile(l1, 0.9):.2f} | {ua(pt):.3f} | {ua(pa):.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
