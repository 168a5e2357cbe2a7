"""Make the shipped int8 graph of the face network: static QDQ quantisation (per-channel int8 weights, uint8
activations) of the fp32 graph `emofuse setup` exported, calibrated on 512 FER2013 *train* faces.

ONNX Runtime's quantiser needs the ``onnx`` package, which emofuse cannot depend on (its releases need
protobuf >= 6; mediapipe pins protobuf < 5), so it runs in another Python that has ``onnx`` + ``onnxruntime``:

    python -m venv /tmp/q && /tmp/q/bin/pip install onnx onnxruntime numpy
    python scripts/quantize_face.py --quantize-with /tmp/q/bin/python [--data ../shared/data]

Writes, for each shipped network ``X.safetensors`` (``face_net.MEMBERS``, or ``--weights``), ``X.int8.onnx`` and
``X.int8.json`` beside it (the sha256 of the weights it was made from, so a retrained network never meets a
stale graph). ``benchmarks/face_fer2013.py`` scores both graphs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quantize-with", required=True, help="a Python with onnx + onnxruntime installed")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--weights", default="", help="comma-separated networks (default: the shipped ones)")
    a = ap.parse_args()
    import cv2

    from emofuse.corpora import prepare
    from emofuse.features import face_net

    per: dict[str, list[Path]] = {}
    for it in prepare("fer2013", a.data):
        if it.split == "train":
            per.setdefault(str(it.label), []).append(it.paths[0])
    files = [f for group in per.values() for f in group[:74]]  # 74 per class, 518 in all
    calib = np.stack([cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files])
    calib = calib[np.random.default_rng(0).permutation(len(calib))[:512]]
    for w in [Path(x) for x in a.weights.split(",") if x] or face_net.member_paths():
        quantize(a.quantize_with, w, calib)
    return 0


def quantize(python: str, w: Path, calib: np.ndarray) -> None:
    from emofuse.features import face_net
    from emofuse.store import sha256_file

    fp32 = face_net.onnx_path(w)
    if not fp32.exists():
        face_net.export_onnx(w, fp32)
    dst = w.with_name(face_net.int8_name(w))
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "calib.npy", calib)
        out = Path(tmp) / "int8.onnx"
        subprocess.run([python, "-c", QUANTIZE, str(fp32), str(out), str(Path(tmp) / "calib.npy")],
                       check=True, capture_output=True)
        dst.write_bytes(out.read_bytes())
    side = {"source_sha256": sha256_file(w), "graph_sha256": sha256_file(dst), "quantisation": "static QDQ, per-channel int8 weights, "
            "uint8 activations (onnxruntime.quantization.quantize_static)", "calibration": "512 FER2013 train faces"}
    dst.with_suffix(".json").write_text(json.dumps(side, indent=1) + "\n", encoding="utf-8")
    print(f"{dst} ({dst.stat().st_size / 1e6:.2f} MB) from {w.name} sha256 {side['source_sha256'][:16]}")


if __name__ == "__main__":
    raise SystemExit(main())
