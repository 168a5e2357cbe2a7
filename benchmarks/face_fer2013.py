"""The face experts on FER2013 PublicTest (the shared copy's ``validation`` folder): accuracy, balance, calibration,
cost per face, and the int8 graph of the trained network (prints figures; not a test).

Experts, as ``FaceOptions.expert`` names them: ``fer-mini-xception`` (the pretrained ``fer`` net on LiteRT),
``face-cnn`` (the network trained here, ``configs/face_cnn_fer2013.toml``, on ONNX Runtime) and ``ensemble``
(the mean of the two probability vectors; its weight is not tuned: the mini-Xception was trained on the whole of
FER2013 train, so no part of train can choose a weight fairly). Each is scored two ways:

* **crops**: the dataset's own 48x48 faces through ``FaceAnalyzer.classify`` (48 -> 64 linear, as the analysis
  crops are 64 px; the face network takes them back to 48);
* **analyze_image**: the whole still-image path (BlazeFace on the small image, FER2013 framing, the whole-image
  fallback when no face is found), what a user who passes such an image gets.

PublicTest was the trained network's held-out split (scored once by its training run); here it is read again
only to compare experts that are all already fixed. ``--quantize-with PY`` also makes an int8 (QDQ, static,
per-channel) graph of the face network with a Python that has ``onnx`` (this project cannot depend on it:
mediapipe pins protobuf < 5), calibrated on 512 FER2013 *train* faces, and scores it the same way.

    python benchmarks/face_fer2013.py [--data ../shared/data] [--quantize-with /tmp/q/bin/python]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

QUANTIZE = """
import sys
import numpy as np
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

class Faces(CalibrationDataReader):
    def __init__(self, x):
        self.it = iter([{"faces": x[i:i + 32]} for i in range(0, len(x), 32)])
    def get_next(self):
        return next(self.it, None)

x = np.load(sys.argv[3]).astype(np.float32)[:, None] / 255.0
quant_pre_process(sys.argv[1], sys.argv[2] + ".pre.onnx", skip_symbolic_shape=True)  # folds batch norm first
quantize_static(sys.argv[2] + ".pre.onnx", sys.argv[2], Faces(x), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
"""


def faces(folder: Path, limit: int | None = None) -> tuple[np.ndarray, list[str]]:
    """[n, 48, 48] uint8 and canonical labels of a FER2013 image folder (class sub-folders)."""
    import cv2

    from emofuse.taxonomy import FER2013

    x, y = [], []
    for name, label in FER2013.items():
        files = sorted((folder / name).glob("*.*"))[:limit]
        x += [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]
        y += [label] * len(files)
    return np.stack(x), y


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
    ap.add_argument("--quantize-with", default=None, help="a Python with onnx + onnxruntime, for the int8 graph")
    a = ap.parse_args()
    root = Path(a.data) / "faces" / "fer2013"
    if not (root / "validation").is_dir():
        print(f"FER2013 not under {root}", file=sys.stderr)
        return 2
    import cv2

    from emofuse.features import face_net
    from emofuse.features.face import FaceAnalyzer, FaceOptions

    x48, y = faces(root / "validation", a.limit)
    x64 = np.stack([cv2.resize(g, (64, 64), interpolation=cv2.INTER_LINEAR) for g in x48])
    print(f"FER2013 PublicTest: {len(y)} faces; weights {face_net.weights_path().name}, "
          f"{face_net.weights_path().stat().st_size / 1e6:.2f} MB")
    rows: list[tuple[str, str, dict[str, float]]] = []
    cost: dict[str, tuple[float, float]] = {}
    for expert in ("fer-mini-xception", "face-cnn", "ensemble"):
        with FaceAnalyzer(FaceOptions(expert=expert)) as an:
            rows.append((expert, "crops", scores(y, an.classify(x64))))
            obs = [an.analyze_image(cv2.cvtColor(g, cv2.COLOR_GRAY2RGB)) for g in x48]
            p = np.stack([o.probs if o is not None else np.full(7, 1 / 7) for o in obs])
            rows.append((expert, "analyze_image", scores(y, p)))
            cost[expert] = per_face_ms(an.classify, x64[:256])
    net = face_net.load()
    rows.append(("face-cnn", "native 48 px", scores(y, net.predict_proba(x48))))
    raw = net.logits(x48)
    e = np.exp(raw - raw.max(1, keepdims=True))
    rows.append(("face-cnn", "native, T = 1", scores(y, (e / e.sum(1, keepdims=True))[:, net._to_canonical])))
    cost["face-cnn native 48 px"] = per_face_ms(net.predict_proba, x48[:256])
    if a.quantize_with:
        with tempfile.TemporaryDirectory() as tmp:
            calib, _ = faces(root / "train", 512 // 7 + 1)
            np.save(Path(tmp) / "calib.npy", calib[np.random.default_rng(0).permutation(len(calib))[:512]])
            int8 = Path(tmp) / "face-int8.onnx"
            subprocess.run([a.quantize_with, "-c", QUANTIZE, str(face_net.onnx_path()), str(int8),
                            str(Path(tmp) / "calib.npy")], check=True, capture_output=True)
            q = face_net.FaceNet(int8, face_net.read_meta(face_net.weights_path()))
            pq = q.predict_proba(x48)
            rows.append(("face-cnn int8", "native 48 px", scores(y, pq)))
            print(f"int8 graph: {int8.stat().st_size / 1e6:.2f} MB; max |d prob| vs fp32 "
                  f"{float(np.abs(pq - net.predict_proba(x48)).max()):.3f}")
            cost["face-cnn int8 native 48 px"] = per_face_ms(q.predict_proba, x48[:256])
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
