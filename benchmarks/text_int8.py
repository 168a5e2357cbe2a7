"""int8 dynamic quantisation of the English text expert's graph (``minilm-l6-emo``): accuracy, drift, speed.

Quantising needs the ``onnx`` package, which this project cannot depend on (its releases need protobuf >= 6;
mediapipe pins protobuf < 5), so the int8 graph is made by another Python that has ``onnx`` +
``onnxruntime`` (e.g. ``python -m venv /tmp/q && /tmp/q/bin/pip install onnx onnxruntime``):

    python benchmarks/text_int8.py --quantize-with /tmp/q/bin/python [--data ../shared/data]

Printed: MELD dev weighted F1 and GoEmotions dev macro F1 of the shipped head over the fp32 and the int8 graph
(validation figures), the largest change of a class probability, the cosine between the embeddings, and the
throughput of both graphs measured in the same run (the ratio is what to read on these noisy machines).
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

import numpy as np

QUANTIZE = """
import sys
from onnxruntime.quantization import QuantType, quantize_dynamic
quantize_dynamic(sys.argv[1], sys.argv[2], weight_type=QuantType.QInt8, per_channel=True)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quantize-with", required=True, help="a Python with onnx + onnxruntime installed")
    ap.add_argument("--data", default="../shared/data")
    a = ap.parse_args()

    from emofuse.corpora import prepare
    from emofuse.features.text import MiniLMEmoEncoder, minilm_onnx_path
    from emofuse.experts import shipped_head
    from emofuse.taxonomy import EMOTIONS
    from emofuse.training.metrics import classification_metrics

    fp32 = minilm_onnx_path(variant="minilm-l6-emo")
    int8 = fp32.with_name("model.int8.onnx")
    subprocess.run([a.quantize_with, "-c", QUANTIZE, str(fp32), str(int8)], check=True)
    print(f"fp32 {fp32.stat().st_size / 2**20:.1f} MiB -> int8 {int8.stat().st_size / 2**20:.1f} MiB")
    head = shipped_head("text-minilm-l6-emo")
    sets = {c: [it for it in prepare(c, a.data) if it.split in ("dev", "val") and it.label is not None]
            for c in ("meld", "goemotions")}
    metric = {"meld": "weighted_f1", "goemotions": "macro_f1"}
    encoders = {"fp32": MiniLMEmoEncoder(), "int8": MiniLMEmoEncoder(onnx_path=int8)}
    probs: dict[str, dict[str, np.ndarray]] = {k: {} for k in encoders}
    embs: dict[str, list[np.ndarray]] = {k: [] for k in encoders}
    speed: dict[str, float] = {}
    for name, enc in encoders.items():
        n, t = 0, 0.0
        for c, items in sets.items():
            texts = [str(it.text) for it in items]
            t0 = time.perf_counter()
            X = enc.encode(texts)
            t += time.perf_counter() - t0
            n += len(texts)
            embs[name].append(X)
            probs[name][c] = head.predict_proba(X)
        speed[name] = n / t
    for c, items in sets.items():
        y = [str(it.label) for it in items]
        figs = {k: classification_metrics(y, [EMOTIONS[i] for i in probs[k][c].argmax(1)], list(EMOTIONS))[metric[c]]
                for k in encoders}
        print(f"{c} dev {metric[c]}: fp32 {figs['fp32']:.4f}  int8 {figs['int8']:.4f}  "
              f"(change {100 * (figs['int8'] - figs['fp32']):+.2f} points; n = {len(y)})")
    dp = max(float(np.abs(probs["fp32"][c] - probs["int8"][c]).max()) for c in sets)
    A, B = np.concatenate(embs["fp32"]), np.concatenate(embs["int8"])
    cos = (A * B).sum(1) / (np.linalg.norm(A, axis=1) * np.linalg.norm(B, axis=1))
    print(f"max |delta prob| {dp:.4f}; embedding cosine mean {cos.mean():.4f}, min {cos.min():.4f}")
    print(f"throughput: fp32 {speed['fp32']:.0f} sentences/s, int8 {speed['int8']:.0f} sentences/s "
          f"(ratio {speed['int8'] / speed['fp32']:.2f}; {1000 / speed['fp32']:.1f} vs {1000 / speed['int8']:.1f} ms "
          "per sentence, batched)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
