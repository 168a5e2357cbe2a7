"""The face-expression network trained here (``emofuse.training.face_cnn``): a VGG-style CNN for 48x48 grey
faces, built in torch only to train it and to export its ONNX graph at set-up (the analysis runs the graph).

Four stages of two 3x3 convolutions (batch norm, ReLU) at 48, 24, 12 and 6 px, widths w, 2w, 4w, 8w, max
pooling between them, global average pooling, dropout and a linear layer over FER2013's 7 classes. Why this
shape: on 48x48 FER2013 crops plain VGG-style nets of this size are the ones that reach ~70 % (Khaireddin &
Chen 2021, 73 % with a larger VGG), and on 2 CPU cores every convolution costs, so the depth is kept at 8.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typing import Any

from ..errors import InputError

SIZE = 48  # input side, FER2013's
ORDER = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # output order (FER2013's)


def face_cnn(torch: Any, width: int = 32, dropout: float = 0.3, n_classes: int = len(ORDER)) -> Any:
    """The network; input [n, 1, 48, 48] float pixels / 255 (it centres them itself), output logits [n, 7]."""
    nn = torch.nn

    class Centre(nn.Module):
        def forward(self, x: Any) -> Any:
            return (x - 0.5) / 0.25

    def stage(cin: int, cout: int) -> list[Any]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    w = width
    layers = [Centre()] + stage(1, w) + [nn.MaxPool2d(2)] + stage(w, 2 * w) + [nn.MaxPool2d(2)] + stage(2 * w, 4 * w) + \
        [nn.MaxPool2d(2)] + stage(4 * w, 8 * w) + [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                                    nn.Linear(8 * w, n_classes)]
    return nn.Sequential(*layers)


FORMAT = "emofuse-facecnn/2"  # /2: int8 weights per output channel; /1 (fp16 weights) is still read
SCALE = ".scale"  # suffix of a weight's per-output-channel scale


def pack_state(torch: Any, state: dict[str, Any]) -> dict[str, Any]:
    """The stored tensors of a network: convolution and linear weights as int8 per output channel with an fp32
    ``<name>.scale`` beside each (1.2 MB instead of 2.4 in fp16 at width 32), batch-norm statistics fp32, the
    rest fp16."""
    out: dict[str, Any] = {}
    for k, v in state.items():
        if k.endswith("num_batches_tracked"):
            continue
        if v.is_floating_point() and v.ndim >= 2:
            rows = v.float().reshape(v.shape[0], -1)
            scale = rows.abs().amax(1).clamp_min(1e-12) / 127
            out[k] = torch.round(rows / scale[:, None]).clamp(-127, 127).to(torch.int8).reshape(v.shape).contiguous()
            out[k + SCALE] = scale.contiguous()
        else:
            out[k] = (v.float() if "running" in k else v.half() if v.is_floating_point() else v).contiguous()
    return out


def unpack_state(tensors: dict[str, Any]) -> dict[str, Any]:
    """The fp32 state dict of stored tensors (either format)."""
    out = {}
    for k, v in tensors.items():
        if k.endswith(SCALE):
            continue
        s = tensors.get(k + SCALE)
        out[k] = v.float() if s is None else v.float() * s.float().reshape(-1, *([1] * (v.ndim - 1)))
    return out


def load_torch(torch: Any, path: Path) -> tuple[Any, dict[str, Any]]:
    """The network of a saved ``emofuse-facecnn`` file (eval mode) and its header."""
    from safetensors.torch import load_file

    meta = read_meta(path)
    model = face_cnn(torch, int(meta["width"]), float(meta["dropout"]))
    missing, unexpected = model.load_state_dict(unpack_state(load_file(str(path))), strict=False)
    if unexpected or any(not k.endswith("num_batches_tracked") for k in missing):
        raise InputError(f"{path}: its tensors do not fit a width-{meta['width']} face network "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.eval(), meta


def export_onnx(weights: Path, dst: Path) -> Path:
    """The ONNX graph of a saved face network: input ``faces`` [n, 1, 48, 48] float (pixels / 255), output
    ``logits`` [n, 7] (FER2013 order, not yet divided by the temperature). Needs torch (set-up time only)."""
    import torch

    import onnxruntime as ort

    from .text import ONNX_OPSET, _without_onnx_package

    model, _ = load_torch(torch, weights)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".partial")
    with torch.no_grad(), _without_onnx_package():
        torch.onnx.export(model, (torch.zeros(2, 1, SIZE, SIZE),), str(tmp), input_names=["faces"],
                          output_names=["logits"], dynamic_axes={"faces": {0: "n"}, "logits": {0: "n"}},
                          opset_version=ONNX_OPSET, do_constant_folding=True, dynamo=False)
        x = torch.rand(5, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
        got = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"]).run(None, {"faces": x.numpy()})[0]
        err = float(np.abs(model(x).numpy() - got).max())
    if err > 1e-3:
        tmp.unlink()
        raise RuntimeError(f"the exported face graph differs from the torch network by {err:.2e}")
    tmp.replace(dst)
    return dst


def read_meta(path: Path) -> dict[str, Any]:
    """The ``emofuse-facecnn`` header of a saved face network (no torch needed)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads((f.metadata() or {}).get("emofuse", "{}"))
    except Exception as e:  # noqa: BLE001 - a damaged file of any kind gets the same answer
        raise InputError(f"{path}: cannot be read as a face network ({e}); re-copy it or train it again") from None
    if meta.get("format") not in ("emofuse-facecnn/1", FORMAT):
        raise InputError(f"{path}: not a face network written by emofuse (format {meta.get('format')!r})")
    return meta


class FaceNet:
    """The exported graph on ONNX Runtime: 48x48 grey faces -> calibrated probabilities over the canonical
    EMOTIONS (the mirror averaged in when the network was selected that way, as its temperature was fitted)."""

    def __init__(self, onnx_path: Path, meta: dict[str, Any], threads: int = 2) -> None:
        import onnxruntime as ort

        from ..taxonomy import EMOTIONS

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        # a frame's few faces are a small call: threads that spin between calls burn the cycles ASR runs on
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        self.temperature = float(meta.get("temperature", 1.0))
        self.tta = bool(meta.get("tta", True))
        canonical = list(meta["canonical"])
        self._to_canonical = np.array([canonical.index(e) for e in EMOTIONS])

    def logits(self, faces: np.ndarray) -> np.ndarray:
        """[n, 48, 48] uint8 -> [n, 7] logits in FER2013 order (mirror-averaged when ``tta``)."""
        x = (np.asarray(faces, dtype=np.float32) / 255.0)[:, None]
        if not self.tta:
            return self.session.run(None, {"faces": x})[0]
        z = self.session.run(None, {"faces": np.concatenate([x, x[..., ::-1]])})[0]  # one pass for both
        return 0.5 * (z[:len(x)] + z[len(x):])

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        """[n, 48, 48] uint8 -> [n, 7] probabilities in canonical EMOTIONS order."""
        from ..experts import softmax

        return softmax(self.logits(faces) / self.temperature)[:, self._to_canonical]


WEIGHTS = "face-cnn.safetensors"  # in the package's weights folder, when a trained network ships
# the networks the analysis averages (FaceOptions.expert "face-cnn"): the recipe of configs/face_cnn_fer2013*.toml
# trained twice from different initialisations on the same carve (benchmarks/face_ensemble.py chose the mean)
MEMBERS = (WEIGHTS, "face-cnn-b.safetensors")
# each member's int8 graph is <stem>.int8.onnx beside it (scripts/quantize_face.py; a sidecar .json names the
# weights it was made from): -0.1 point on FER2013 PublicTest, 3x faster than the fp32 graph


def weights_path() -> Path:
    return Path(__file__).resolve().parent.parent / "weights" / WEIGHTS


def member_paths() -> list[Path]:
    """The shipped networks the analysis averages, the first being :func:`weights_path`."""
    w = weights_path()
    return [w] + [w.with_name(m) for m in MEMBERS[1:]]


def int8_name(weights: Path) -> str:
    return weights.name.removesuffix(".safetensors") + ".int8.onnx"


def onnx_path(weights: Path | None = None) -> Path:
    """Where set-up puts the graph of ``weights``: keyed by the file's sha256, so a new network never meets
    a stale graph."""
    from ..store import cache_dir, sha256_file

    w = weights or weights_path()
    return cache_dir() / "face-cnn" / f"{sha256_file(w)[:16]}.onnx"


def setup(verbose: bool = True) -> dict[str, Any]:
    """``emofuse setup``: export the shipped face networks' graphs once (needs torch); nothing to do when no
    network ships in this build."""
    if not weights_path().exists():
        return {"face-cnn": None}
    out = []
    for w in member_paths():
        if not w.exists():
            from ..errors import MissingComponentError

            raise MissingComponentError(f"the face network {w} is missing from this install: reinstall emofuse")
        dst = onnx_path(w)
        if not dst.exists():
            export_onnx(w, dst)
            if verbose:
                print(f"face network graph: {dst}")
        out.append(str(dst))
    return {"face-cnn": out[0] if len(out) == 1 else out}


def int8_path(weights: Path | None = None) -> Path | None:
    """The shipped int8 graph of ``weights`` (default: the shipped network), or None when there is none or it
    was made from other weights (a retrained network then runs its fp32 graph until it is quantised again)."""
    from ..store import sha256_file

    w = weights or weights_path()
    g = w.with_name(int8_name(w))
    side = g.with_suffix(".json")
    if not (g.exists() and side.exists() and w.exists()):
        return None
    src = json.loads(side.read_text(encoding="utf-8")).get("source_sha256")
    return g if src == sha256_file(w) else None


def graph_path(int8: bool = True, weights: Path | None = None) -> Path:
    """The graph the analysis runs: the int8 one when asked for and current, else the fp32 export."""
    return (int8_path(weights) if int8 else None) or onnx_path(weights)


def load(threads: int = 2, weights: Path | None = None, int8: bool = True) -> "FaceNet | FaceEnsemble":
    """The shipped face networks (their mean, :class:`FaceEnsemble`, when several ship), or the one network
    ``weights``, on ONNX Runtime: each its int8 graph when ``int8`` and one was made from these weights, else the
    fp32 graph set-up exported."""
    from ..errors import MissingComponentError

    ws = [weights] if weights is not None else member_paths()
    nets = []
    for w in ws:
        if not w.exists():
            raise MissingComponentError(f"no face network at {w}: this build ships none; use FaceOptions(expert="
                                        "'fer-mini-xception') or train one (configs/face_cnn_fer2013.toml)")
        g = graph_path(int8, w)
        if not g.exists():
            raise MissingComponentError(f"the face network graph {g} is missing: run `emofuse setup` once")
        nets.append(FaceNet(g, read_meta(w), threads))
    return nets[0] if len(nets) == 1 else FaceEnsemble(nets)


class FaceEnsemble:
    """The mean of several networks' calibrated probabilities (each mirror-averaged as it was selected)."""

    def __init__(self, nets: list[FaceNet]) -> None:
        self.nets = nets

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        """[n, 48, 48] uint8 -> [n, 7] probabilities in canonical EMOTIONS order."""
        return np.mean([n.predict_proba(faces) for n in self.nets], axis=0)


def identity() -> str:
    """What the shipped face expert runs, as one string (the sha256 of each member's graph, or of its weights
    where no current int8 graph ships): extractors key face features by it."""
    from ..store import sha256_file

    if not weights_path().exists():
        return "missing"
    parts = []
    for w in member_paths():
        g = int8_path(w)
        parts.append(sha256_file(g or w) if (g or w).exists() else "missing")
    return "+".join(parts)
