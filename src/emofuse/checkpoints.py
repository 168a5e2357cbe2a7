"""The self-describing model files: expert heads (``emofuse-head/1``) and fusion networks (``emofuse-fusion/1``).

    from emofuse.checkpoints import load_head, save_head, load_network, save_network, read_meta
    head = load_head("src/emofuse/weights/voice-whisper-base.safetensors")
    model, meta = load_network("gated.safetensors")          # torch; read_meta needs none

Both are one ``.safetensors`` file: the arrays, and in the metadata key ``emofuse`` a JSON document with
its ``format``, the emofuse version, the label set, the :class:`FeatureSpec` of each input (which
registered extractor made it and that extractor's config hash, so that other features are refused), the
training record and the measured metrics. Loading needs no pickle and runs no code from the file; every
size read from the metadata is checked against the tensors' shapes before anything is built.

* A head holds ``mean``, ``scale`` ``[d]``, ``W`` ``[d, L]``, ``b`` ``[L]`` and optionally ``R`` ``[d, 2]``, ``c`` ``[2]``
  (valence/arousal); its metadata has ``feature`` (one FeatureSpec), ``labels`` (L names), ``kind``
  (voice/text/face), ``training``, ``metrics``, ``licence``.
* A network holds the model's state dict; its metadata has ``model`` (a :data:`emofuse.networks.NETWORKS`
  name), ``config`` (its FusionConfig), ``features`` ({modality: FeatureSpec}), ``labels``, ``training``,
  ``metrics``.

This module is analysis-side: it never imports :mod:`emofuse.training`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import EmofuseError, InputError, MissingComponentError

if TYPE_CHECKING:
    from torch import nn

    from .experts import LinearHead
    from .networks import FusionConfig

HEAD_FORMAT = "emofuse-head/1"
NETWORK_FORMAT = "emofuse-fusion/1"
MAX_LABELS = 1000  # bounds on sizes read from metadata (a crafted file must not make us allocate much)
MAX_DIM = 1 << 16


# ------------------------------------------------------------------------------------------- feature specs


@dataclass(frozen=True)
class FeatureSpec:
    """What one input of a head or network is, so that inference can rebuild it: ``source`` is an extractor
    name (:data:`emofuse.extractors.EXTRACTORS`) or a corpus feature such as ``ravdess_av:au``; ``identity``
    is that extractor's config hash when it is one (model sha256, embedding version, settings)."""

    source: str
    dim: int
    kind: str = "vector"  # "vector" [d] or "sequence" [T, d]
    description: str = ""
    mean: tuple[float, ...] = ()  # standardisation statistics of the training part (() = none)
    std: tuple[float, ...] = ()
    identity: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "dim": self.dim, "kind": self.kind, "description": self.description,
                "mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std], "identity": self.identity}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FeatureSpec":
        try:
            spec = cls(str(d["source"]), int(d["dim"]), str(d.get("kind", "vector")), str(d.get("description", "")),
                       tuple(float(v) for v in d.get("mean", ())), tuple(float(v) for v in d.get("std", ())),
                       str(d.get("identity", "")))
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"feature spec {dict(d)!r} is malformed ({e})") from e
        if not 0 < spec.dim <= MAX_DIM or spec.kind not in ("vector", "sequence") \
                or len(spec.mean) not in (0, spec.dim) or len(spec.std) != len(spec.mean):
            raise InputError(f"feature spec of {spec.source!r} is inconsistent (dim {spec.dim}, kind {spec.kind!r}, "
                             f"{len(spec.mean)} means, {len(spec.std)} stds)")
        return spec

    @classmethod
    def of_extractor(cls, name: str, dim: int, mean: tuple[float, ...] = (), std: tuple[float, ...] = ()) -> "FeatureSpec":
        """The spec of a registered extractor's features, with its description and config hash."""
        from .extractors import EXTRACTORS

        ex = EXTRACTORS[name]
        return cls(name, int(dim), "sequence" if ex.sequence else "vector", ex.describe(), mean, std,
                   ex.config_hash())

    def normalise(self, x: np.ndarray) -> np.ndarray:
        if not self.mean:
            return np.asarray(x, dtype=np.float32)
        return ((np.asarray(x, dtype=np.float32) - np.asarray(self.mean, np.float32))
                / np.asarray(self.std, np.float32)).astype(np.float32)


def check_identity(spec: FeatureSpec, where: str) -> None:
    """Refuse a head or network trained on an extractor's features computed another way (another model,
    embedding version or setting) than this emofuse computes them."""
    from .extractors import EXTRACTORS

    ex = EXTRACTORS.get(spec.source)
    if spec.identity and ex is not None and ex.config_hash() != spec.identity:
        raise InputError(f"{where} was trained on {spec.source} features with config hash {spec.identity}, but this "
                         f"emofuse computes them with hash {ex.config_hash()} (another model or embedding version); "
                         "retrain it on current features")


# ------------------------------------------------------------------------------------------- shared reading


def _read_doc(path: str | Path, fmt: str, what: str) -> dict[str, Any]:
    """The emofuse metadata document of a safetensors file, checked to be of format ``fmt``."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        hint = ("train one with `emofuse train CONFIG.toml --save PATH`" if fmt == NETWORK_FORMAT
                else "train one with `emofuse train CONFIG.toml --save PATH`, or reinstall emofuse")
        raise MissingComponentError(f"{what} {path} does not exist; {hint}")
    try:
        with safe_open(str(path), framework="numpy") as f:
            raw = (f.metadata() or {}).get("emofuse")
    except Exception as e:  # noqa: BLE001 - safetensors raises several types for damaged files
        raise InputError(f"{what} {path} is not a readable safetensors file ({e}); "
                         "it is damaged or not a model file: re-train or re-copy it") from e
    if raw is None:
        raise InputError(f"{path} is a safetensors file without emofuse metadata: not an emofuse {what}")
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as e:
        raise InputError(f"{what} {path} has corrupt metadata ({e})") from e
    if not isinstance(doc, dict):
        raise InputError(f"{what} {path} has corrupt metadata (not a JSON object)")
    if doc.get("format") != fmt:
        other = {HEAD_FORMAT: "an expert head (load_head)", NETWORK_FORMAT: "a fusion network (load_network)"}
        got = doc.get("format")
        raise InputError(f"{path} has format {got!r}, expected {fmt!r}"
                         + (f": it is {other[got]}" if got in other else
                            " (written by an older emofuse? retrain it with `emofuse train CONFIG.toml --save PATH`)"))
    return doc


def read_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of a head or a network (either format), without loading tensors or torch."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            fmt = json.loads((f.metadata() or {}).get("emofuse", "{}")).get("format")
    except Exception:  # noqa: BLE001 - _read_doc reports the problem
        fmt = None
    return _read_doc(path, HEAD_FORMAT if fmt == HEAD_FORMAT else NETWORK_FORMAT,
                     "expert head" if fmt == HEAD_FORMAT else "fusion checkpoint")


def _write(path: str | Path, tensors: Mapping[str, Any], doc: Mapping[str, Any], writer: Any) -> Path:
    """Atomic write (never a half-written file under the real name), readable by everyone (it may ship)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    writer(tensors, str(tmp), metadata={"emofuse": json.dumps(doc, sort_keys=True)})
    tmp.chmod(0o644)  # safetensors writes 0600
    tmp.replace(path)
    return path


def _version() -> str:
    from . import __version__

    return __version__


# ------------------------------------------------------------------------------------------- heads


def save_head(path: str | Path, head: "LinearHead") -> Path:
    """Write ``head`` (its arrays and ``head.meta``; format, labels, feature and version are set here)."""
    from safetensors.numpy import save_file

    tensors = {"mean": head.mean, "scale": head.scale, "W": head.W, "b": head.b}
    if head.R is not None and head.c is not None:
        tensors |= {"R": head.R, "c": head.c}
    doc = dict(head.meta)
    doc.update({"format": HEAD_FORMAT, "labels": list(head.labels), "feature": head.feature.to_dict(),
                "emofuse_version": _version()})
    return _write(path, {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, doc,
                  lambda t, p, metadata: save_file(dict(t), p, metadata=metadata))


def read_head_meta(path: str | Path) -> dict[str, Any]:
    return _read_doc(path, HEAD_FORMAT, "expert head")


def load_head(path: str | Path) -> "LinearHead":
    """A head written by :func:`save_head`; InputError if its arrays disagree with its metadata."""
    from safetensors import safe_open

    from .experts import LinearHead

    doc = read_head_meta(path)
    labels = doc.get("labels")
    if not isinstance(labels, list) or not 0 < len(labels) <= MAX_LABELS or not all(isinstance(x, str) for x in labels):
        raise InputError(f"expert head {path}: labels must be a list of 1..{MAX_LABELS} names")
    spec = FeatureSpec.from_dict(doc.get("feature") or {})
    d, n = spec.dim, len(labels)
    want = {"mean": (d,), "scale": (d,), "W": (d, n), "b": (n,), "R": (d, 2), "c": (2,)}
    with safe_open(str(path), framework="numpy") as f:
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        bad = {k: s for k, s in shapes.items() if k not in want or s != want[k]}
        if bad or not {"mean", "scale", "W", "b"} <= set(shapes) or ("R" in shapes) != ("c" in shapes):
            raise InputError(f"expert head {path}: arrays {shapes} do not match its metadata (dim {d}, {n} labels); "
                             "the file is damaged or was not written by emofuse")
        t = {k: f.get_tensor(k) for k in shapes}
    meta = {k: v for k, v in doc.items() if k not in ("labels", "feature")}
    return LinearHead(t["mean"], t["scale"], t["W"], t["b"], tuple(labels), spec, meta, t.get("R"), t.get("c"))


# ------------------------------------------------------------------------------------------- networks


def config_to_dict(config: "FusionConfig") -> dict[str, Any]:
    """JSON-ready dict of any FusionConfig (generic: new fields round-trip without code changes)."""
    d = dataclasses.asdict(config)
    d["dims"] = [[k, int(v)] for k, v in config.dims]  # type: ignore[misc]
    return d


def config_from_dict(d: Mapping[str, Any]) -> "FusionConfig":
    from .networks import FusionConfig

    d = dict(d)
    try:
        d["dims"] = tuple((str(k), int(v)) for k, v in d["dims"])
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"FusionConfig dims are malformed ({e})") from e
    known = {f.name for f in dataclasses.fields(FusionConfig)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise InputError(f"FusionConfig has no field(s) {unknown}: the checkpoint or config was written by "
                         f"another emofuse version; known fields: {sorted(known)}")
    return FusionConfig(**d)


def save_network(path: str | Path, model: "nn.Module", name: str, meta: Mapping[str, Any]) -> Path:
    """Write ``model`` and a JSON metadata document to ``path`` (``.safetensors``).

    ``meta`` should hold ``features`` ({modality: FeatureSpec dict}), ``labels``, ``training`` and
    ``metrics``; the model name, its config, the format and the emofuse version are added here."""
    from safetensors.torch import save_file

    doc = dict(meta)
    doc.update({"format": NETWORK_FORMAT, "model": name, "config": config_to_dict(model.config),  # type: ignore[arg-type]
                "emofuse_version": _version()})
    for key in ("features", "labels"):
        if key not in doc:
            raise InputError(f"checkpoint metadata needs {key!r}")
    missing = set(model.config.modalities) - set(doc["features"])  # type: ignore[union-attr]
    if missing:
        raise InputError(f"checkpoint metadata lacks the feature spec of {sorted(missing)}")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    return _write(path, state, doc, lambda t, p, metadata: save_file(dict(t), p, metadata=metadata))


def read_network_meta(path: str | Path) -> dict[str, Any]:
    """A network checkpoint's metadata, without building the model (no torch needed)."""
    return _read_doc(path, NETWORK_FORMAT, "fusion checkpoint")


def load_network(path: str | Path) -> tuple["nn.Module", dict[str, Any]]:
    """``(model in eval mode, metadata)`` of a checkpoint written by :func:`save_network`.

    The model is first built on torch's ``meta`` device (no memory) and its parameter shapes compared with
    the file's, so that a damaged or crafted file is refused before anything is allocated."""
    import torch
    from safetensors import safe_open

    from .networks import NETWORKS, build

    meta = read_network_meta(path)
    name = meta.get("model")
    if name not in NETWORKS:
        raise InputError(f"fusion checkpoint {path} is for network {name!r}, which this emofuse does not have "
                         f"(registered: {', '.join(sorted(NETWORKS))}); upgrade emofuse")
    labels = meta.get("labels")
    if not isinstance(labels, list) or not 0 < len(labels) <= MAX_LABELS:
        raise InputError(f"fusion checkpoint {path}: labels must be a list of 1..{MAX_LABELS} names")
    try:
        specs = {m: FeatureSpec.from_dict(d) for m, d in dict(meta["features"]).items()}
        config = config_from_dict(meta["config"])
        if config.n_classes != len(labels) or any(v > MAX_DIM for _, v in config.dims) or config.hidden > MAX_DIM:
            raise InputError(f"{config.n_classes} classes for {len(labels)} labels, or a size over {MAX_DIM}")
        with torch.device("meta"):
            skeleton = build(name, config)
        want = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
        with safe_open(str(path), framework="pt") as f:
            have = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        if want != have:
            diff = sorted(set(want) ^ set(have)) or [k for k in want if want[k] != have[k]]
            raise InputError(f"its tensors do not match a {name!r} network of its config (e.g. {diff[:3]})")
        model = build(name, config)
        with safe_open(str(path), framework="pt") as f:
            model.load_state_dict({k: f.get_tensor(k) for k in have}, strict=True)
    except EmofuseError as e:
        raise InputError(f"fusion checkpoint {path} is damaged or was written by an incompatible version: {e}") from e
    except Exception as e:  # noqa: BLE001 - a truncated or inconsistent file
        raise InputError(f"fusion checkpoint {path} does not match network {name!r} ({type(e).__name__}: {e}); "
                         "the file is damaged or was written by an incompatible version") from e
    model.eval()
    meta["features"] = {m: s.to_dict() for m, s in specs.items()}
    return model, meta
