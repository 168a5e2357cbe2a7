"""The shipped voice head through the analysis path against the training-style features (prints figures).

    python benchmarks/voice_paths.py [--data ../shared/data] [--corpus turevdb] [--n 240] [--asr-window 10]

Training and evaluation score a head on each clip's registered extractor features (the clip's speech span
pooled from Whisper windows packed per speaker); ``analyze`` pools the same encoder over VAD + Whisper
segments of one recording at a time, and ``analyze_many`` packs a folder's short recordings into shared
windows as training does. On the same seeded clips (default: TurEV-DB, which the shipped head
never heard), this prints UA on the corpus's own classes each way, how often the labels agree, and the
expected calibration error of the voice probabilities (15 bins) each way.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--corpus", default="turevdb")
    ap.add_argument("--n", type=int, default=240)
    ap.add_argument("--asr-model", default="whisper-base")
    ap.add_argument("--asr-window", type=float, default=30.0,
                    help="seconds per Whisper window; below 30 the 30 s head is also scored on those windows")
    a = ap.parse_args()
    from packing import _voice
    from sklearn.metrics import balanced_accuracy_score

    from emofuse import EMOTIONS, Analyzer, AnalyzerOptions
    from emofuse.corpora import prepare
    from emofuse.training.data import vectors
    from emofuse.training.metrics import expected_calibration_error

    items = sorted(random.Random(0).sample([it for it in prepare(a.corpus, a.data) if it.label], a.n),
                   key=lambda it: it.id)
    an = Analyzer(AnalyzerOptions(modalities=("voice",), asr_model=a.asr_model, asr_window=a.asr_window))
    an._load_asr()
    head = an.voice_head(a.asr_window)
    X, failed = vectors(items, head.feature.source, None, workers=2)
    present = [e for e in EMOTIONS if any(it.label == e for it in items)]
    idx = [EMOTIONS.index(e) for e in present]
    p_train = head.predict_proba(X)
    p_an = [_voice(an.analyze(str(it.paths[0])), EMOTIONS) for it in items]
    p_many = [_voice(r, EMOTIONS) for r in an.analyze_many([str(it.paths[0]) for it in items])]
    ok = [i for i in range(len(items)) if p_an[i] is not None and p_many[i] is not None and not np.isnan(X[i]).any()]
    y = np.array([present.index(items[i].label) for i in ok])

    def own(p: np.ndarray) -> np.ndarray:  # the corpus's classes, renormalised
        q = p[:, idx]
        return q / q.sum(axis=1, keepdims=True)

    pt = own(np.stack([p_train[i] for i in ok]))
    pa = own(np.stack([p_an[i] for i in ok]))  # type: ignore[misc]
    ua_t = balanced_accuracy_score(y, pt.argmax(1))
    ua_a = balanced_accuracy_score(y, pa.argmax(1))
    pm = own(np.stack([p_many[i] for i in ok]))  # type: ignore[misc]
    ua_m = balanced_accuracy_score(y, pm.argmax(1))
    print(f"{a.corpus}: {len(ok)} / {len(items)} clips with a voice answer; head {head.feature.source} "
          f"({head.meta.get('training', {}).get('corpora')})")
    print("| path | UA % (own classes) | ECE |\n|---|---|---|")
    print(f"| training-style features | {100 * ua_t:.1f} | {expected_calibration_error(pt, y):.3f} |")
    print(f"| analyze, one clip at a time (VAD + Whisper segments) | {100 * ua_a:.1f} | "
          f"{expected_calibration_error(pa, y):.3f} |")
    print(f"| analyze_many, the clips as one folder (shared windows) | {100 * ua_m:.1f} | "
          f"{expected_calibration_error(pm, y):.3f} |")
    print(f"same label as training-style: alone {np.mean(pt.argmax(1) == pa.argmax(1)):.2f}, folder "
          f"{np.mean(pt.argmax(1) == pm.argmax(1)):.2f}; difference {100 * (ua_a - ua_t):+.1f} / {100 * (ua_m - ua_t):+.1f} points")
    if a.asr_window != 30.0:  # the head trained on 30 s windows, reading these shorter windows (what it would meet)
        from emofuse.experts import shipped_head

        an._voice_heads[a.asr_window] = shipped_head(f"voice-{a.asr_model}")
        p30 = [_voice(an.analyze(str(it.paths[0])), EMOTIONS) for it in items]
        ok30 = [i for i in ok if p30[i] is not None]
        y30 = np.array([present.index(items[i].label) for i in ok30])
        q = own(np.stack([p30[i] for i in ok30]))  # type: ignore[misc]
        print(f"| analyze alone, the 30 s head on these {a.asr_window:g} s windows | "
              f"{100 * balanced_accuracy_score(y30, q.argmax(1)):.1f} | {expected_calibration_error(q, y30):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
