"""The one training loop for every fusion network of :mod:`emofuse.models.fusion`, and its
self-describing checkpoints.

    from emofuse.training.fusion import Part, TrainOptions, fit, save_checkpoint, load_checkpoint
    res = fit("gated", config, train=Part(inputs, labels), val=Part(vinputs, vlabels), options=TrainOptions())
    save_checkpoint("gated.safetensors", res.model, "gated", meta)
    model, meta = load_checkpoint("gated.safetensors")

    emofuse train configs/fusion_ravdess_gated.toml [--save-checkpoint PATH] [--out DIR]

Inputs are per-modality arrays: ``[N, d]`` vectors or ``[N, T, d]`` zero-padded sequences, with
optional masks (``bool[N]`` presence, ``bool[N, T]`` valid steps). Labels are int64 (-100 = none);
valence is float (NaN = none). Training: AdamW, fixed seeds, shuffled mini-batches; after every epoch the
VALIDATION part is scored and the best epoch's weights are kept (early stopping with ``patience``).
Nothing but the training and validation parts is ever passed to :func:`fit`, so test labels cannot
influence which epoch is chosen.

A checkpoint is one ``.safetensors`` file: the model's tensors, and in the metadata key ``emofuse`` a
JSON document with the model name, its FusionConfig, the feature spec of every modality (source,
dim, vector/sequence, standardisation mean/std), the label set, the training data and the validation
metrics. Loading it needs no pickle and no code from the file.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import EmofuseError, InputError, MissingComponentError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..corpora.manifest import Item
    from ..models.fusion import FusionConfig

__all__ = ["CHECKPOINT_FORMAT", "FeatureSpec", "FitResult", "Part", "TrainOptions", "apply_norm", "config_from_dict",
           "config_to_dict", "evaluate", "fit", "fit_norm", "load_checkpoint", "n_params", "plot_curves", "predict",
           "save_checkpoint", "train_main"]

CHECKPOINT_FORMAT = "emofuse-fusion/1"
METRICS = ("UA", "WA", "macro_f1", "loss")


# ------------------------------------------------------------------------------------------- data


@dataclass
class Part:
    """One part of a dataset (train, val or test), row-aligned arrays."""

    inputs: dict[str, np.ndarray]  # modality -> [N, d] or [N, T, d]
    label: np.ndarray  # int64 [N], -100 = no label
    valence: np.ndarray | None = None  # float [N], NaN = none
    mask: dict[str, np.ndarray] = field(default_factory=dict)  # modality -> bool [N] or [N, T]

    def __len__(self) -> int:
        return int(len(self.label))

    def take(self, idx: np.ndarray | Sequence[int]) -> "Part":
        idx = np.asarray(idx, dtype=np.int64)
        return Part({m: x[idx] for m, x in self.inputs.items()}, self.label[idx],
                    None if self.valence is None else self.valence[idx], {m: k[idx] for m, k in self.mask.items()})

    def select(self, modalities: Sequence[str]) -> "Part":
        """The same rows with only ``modalities`` (a subset experiment)."""
        return Part({m: self.inputs[m] for m in modalities}, self.label, self.valence,
                    {m: self.mask[m] for m in modalities if m in self.mask})


@dataclass(frozen=True)
class FeatureSpec:
    """What a modality's input is, so that inference can rebuild it: ``source`` is an extractor name
    (:data:`emofuse.extract.EXTRACTORS`) or a corpus feature such as ``ravdess_av:au``."""

    source: str
    dim: int
    kind: str = "vector"  # "vector" [d] or "sequence" [T, d]
    description: str = ""
    mean: tuple[float, ...] = ()  # standardisation statistics of the training part ([] = none)
    std: tuple[float, ...] = ()
    identity: str = ""  # the extractor's config hash (model sha256, version, settings) when source is one

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "dim": self.dim, "kind": self.kind, "description": self.description,
                "mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std], "identity": self.identity}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FeatureSpec":
        return cls(str(d["source"]), int(d["dim"]), str(d.get("kind", "vector")), str(d.get("description", "")),
                   tuple(float(v) for v in d.get("mean", ())), tuple(float(v) for v in d.get("std", ())),
                   str(d.get("identity", "")))

    def normalise(self, x: np.ndarray) -> np.ndarray:
        if not self.mean:
            return np.asarray(x, dtype=np.float32)
        return ((np.asarray(x, dtype=np.float32) - np.asarray(self.mean, np.float32))
                / np.asarray(self.std, np.float32)).astype(np.float32)


def _valid_rows(x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The feature rows that count for statistics: present samples / valid sequence steps."""
    if x.ndim == 2:
        return x if mask is None else x[mask.astype(bool)]
    if mask is None:
        return x.reshape(-1, x.shape[-1])
    k = mask.astype(bool)
    if k.ndim == 2:
        return x[k]
    rows = x[k].reshape(-1, x.shape[-1])  # a presence mask on a sequence: padded (all-zero) steps don't count
    return rows[np.any(rows != 0, axis=1)]


def _identity(source: str) -> str:
    """The extractor's config hash for an extractor source (so inference can refuse other features)."""
    from ..extract import EXTRACTORS

    return EXTRACTORS[source].config_hash() if source in EXTRACTORS else ""


def fit_norm(part: Part) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-modality mean/std over the TRAINING part only (valid rows/steps); std floored so that a
    constant feature does not blow up."""
    out = {}
    for m, x in part.inputs.items():
        rows = _valid_rows(x, part.mask.get(m)).astype(np.float64)
        mu = rows.mean(axis=0) if len(rows) else np.zeros(x.shape[-1])
        sd = rows.std(axis=0) if len(rows) else np.ones(x.shape[-1])
        out[m] = (mu.astype(np.float32), np.maximum(sd, 1e-6).astype(np.float32))
    return out


def apply_norm(part: Part, norm: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Part:
    """Standardised copy; padded steps and absent samples stay exactly zero."""
    inputs = {}
    for m, x in part.inputs.items():
        mu, sd = norm[m]
        z = ((x - mu) / sd).astype(np.float32)
        k = part.mask.get(m)
        if k is not None:
            z = z * (k.astype(np.float32)[..., None] if k.ndim == z.ndim - 1 else k.astype(np.float32)[:, None, None])
        if x.ndim == 3 and (k is None or k.ndim == 1):  # no step mask: keep zero padding zero
            z = np.where(np.any(x != 0, axis=-1, keepdims=True), z, 0.0).astype(np.float32)
        inputs[m] = z
    return Part(inputs, part.label, part.valence, dict(part.mask))


# ------------------------------------------------------------------------------------------- config


def config_to_dict(config: "FusionConfig") -> dict[str, Any]:
    """JSON-ready dict of any FusionConfig (generic: new fields round-trip without code changes)."""
    d = dataclasses.asdict(config)
    d["dims"] = [[k, int(v)] for k, v in config.dims]  # type: ignore[misc]
    return d


def config_from_dict(d: Mapping[str, Any]) -> "FusionConfig":
    from ..models.fusion import FusionConfig

    d = dict(d)
    d["dims"] = tuple((str(k), int(v)) for k, v in d["dims"])
    known = {f.name for f in dataclasses.fields(FusionConfig)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise InputError(f"FusionConfig has no field(s) {unknown}: the checkpoint or config was written by "
                         f"another emofuse version; known fields: {sorted(known)}")
    return FusionConfig(**d)


# ------------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainOptions:
    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-2
    patience: int = 20  # epochs without a validation improvement before stopping (0 = never stop early)
    metric: str = "UA"  # selection metric on the validation part: UA | WA | macro_f1 | loss
    seed: int = 0
    threads: int = 1  # torch CPU threads (1: two folds can run in parallel processes)
    grad_clip: float = 5.0

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise InputError(f"selection metric {self.metric!r} unknown; choose from {', '.join(METRICS)}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.threads < 1 or self.patience < 0:
            raise InputError("epochs, batch_size, threads >= 1, lr > 0 and patience >= 0 are required")


@dataclass
class FitResult:
    model: Any  # the network with the best epoch's weights, in eval mode
    best_epoch: int  # 1-based
    history: list[dict[str, float]]  # per epoch: epoch, train_loss, val_loss, val_UA, val_WA, val_macro_f1
    val_metrics: dict[str, float]  # at the best epoch
    seconds: float
    n_params: int


def n_params(model: "nn.Module") -> int:
    return int(sum(p.numel() for p in model.parameters()))


def _tensors(part: Part, idx: np.ndarray | None = None) -> tuple[dict[str, "torch.Tensor"], dict[str, "torch.Tensor"]]:
    import torch

    sel = (lambda a: a) if idx is None else (lambda a: a[idx])
    x = {m: torch.from_numpy(np.ascontiguousarray(sel(v), dtype=np.float32)) for m, v in part.inputs.items()}
    k = {m: torch.from_numpy(np.ascontiguousarray(sel(v)).astype(bool)) for m, v in part.mask.items()}
    return x, k


def _target(part: Part, idx: np.ndarray) -> dict[str, "torch.Tensor"]:
    import torch

    t = {"label": torch.from_numpy(part.label[idx].astype(np.int64))}
    if part.valence is not None:
        t["valence"] = torch.from_numpy(part.valence[idx].astype(np.float32))
    return t


def _loss(model: Any, out: dict[str, "torch.Tensor"], target: dict[str, "torch.Tensor"],
          index: "torch.Tensor | None") -> "torch.Tensor":
    """The model's own ``loss`` hook when it has one; else cross-entropy + MSE on valid valence."""
    import torch
    import torch.nn.functional as F

    if hasattr(model, "loss"):
        loss, _ = model.loss(out, target, index=index)
        return loss
    lab = target["label"]
    loss = F.cross_entropy(out["logits"], lab, ignore_index=-100) if bool((lab != -100).any()) \
        else out["logits"].sum() * 0.0
    if "valence" in out and "valence" in target:
        v = target["valence"]
        ok = ~torch.isnan(v)
        if bool(ok.any()):
            loss = loss + F.mse_loss(out["valence"][ok], v[ok])
    return loss


def predict(model: Any, part: Part, batch_size: int = 256) -> dict[str, np.ndarray]:
    """``{"logits": [N, C], "valence": [N]?}`` in eval mode, without gradients."""
    import torch

    was = model.training
    model.eval()
    outs: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for s in range(0, len(part), batch_size):
            idx = np.arange(s, min(s + batch_size, len(part)))
            x, k = _tensors(part, idx)
            o = model(x, k or None)
            for key in ("logits", "valence"):
                if key in o:
                    outs.setdefault(key, []).append(o[key].float().numpy())
    model.train(was)
    return {k: np.concatenate(v) for k, v in outs.items()}


def evaluate(model: Any, part: Part, labels: Sequence[str]) -> dict[str, Any]:
    """Classification metrics (WA/UA/F1/confusion) of ``model`` on the labelled rows of ``part``, plus the loss."""
    import torch

    from .metrics import classification_metrics

    out = predict(model, part)
    ok = part.label != -100
    if not ok.any():
        raise InputError("no labelled rows to evaluate on")
    names = list(labels)
    m = classification_metrics([names[i] for i in part.label[ok]], [names[i] for i in out["logits"][ok].argmax(1)],
                               names)
    with torch.no_grad():
        tgt = _target(part, np.arange(len(part)))
        m["loss"] = float(_loss(_NoHook(), {k: torch.from_numpy(v) for k, v in out.items()}, tgt, None))
    return m


class _NoHook:
    """Stand-in so that the validation loss is the plain CE (+MSE): comparable across models."""


def fit(name: str, config: "FusionConfig", train: Part, val: Part, labels: Sequence[str],
        options: TrainOptions = TrainOptions(), on_epoch: Any = None) -> FitResult:
    """Train ``name`` on ``train``; choose the epoch on ``val`` (``options.metric``) and return the network
    with that epoch's weights. ``val`` is the only data the choice sees."""
    import torch

    from ..models.fusion import build

    if len(train) == 0 or len(val) == 0:
        raise InputError(f"fusion training needs non-empty train and validation parts (got {len(train)}, {len(val)})")
    torch.set_num_threads(options.threads)
    torch.manual_seed(options.seed)
    np.random.seed(options.seed)
    rng = np.random.default_rng(options.seed)
    t0 = time.perf_counter()
    model = build(name, config)
    opt = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    if hasattr(model, "begin_training"):
        model.begin_training(len(train))
    maximise = options.metric != "loss"
    best: tuple[float, int, dict[str, Any], dict[str, float]] | None = None
    history: list[dict[str, float]] = []
    since = 0
    for epoch in range(1, options.epochs + 1):
        model.train()
        perm = rng.permutation(len(train))
        total, n = 0.0, 0
        for s in range(0, len(perm), options.batch_size):
            idx = np.sort(perm[s:s + options.batch_size])
            if len(idx) < 2 and len(perm) > 1:  # a batch of one breaks batch statistics; skip the remainder
                continue
            x, k = _tensors(train, idx)
            out = model(x, k or None)
            loss = _loss(model, out, _target(train, idx), torch.from_numpy(idx))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if options.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), options.grad_clip)
            opt.step()
            total += float(loss.detach()) * len(idx)
            n += len(idx)
        if hasattr(model, "end_epoch"):
            model.end_epoch(epoch)
        vm = evaluate(model, val, labels)
        rec = {"epoch": epoch, "train_loss": total / max(n, 1), "val_loss": vm["loss"], "val_UA": vm["UA"],
               "val_WA": vm["WA"], "val_macro_f1": vm["macro_f1"]}
        history.append(rec)
        if on_epoch is not None:
            on_epoch(rec)
        score = vm[options.metric]
        if not math.isfinite(rec["train_loss"]):
            break  # diverged: keep the best epoch so far
        better = best is None or (score > best[0] + 1e-9 if maximise else score < best[0] - 1e-9)
        if better:
            best = (score, epoch, copy.deepcopy(model.state_dict()),
                    {k: float(vm[k]) for k in ("UA", "WA", "macro_f1", "loss")})
            since = 0
        else:
            since += 1
            if options.patience and since >= options.patience:
                break
    if best is None:
        raise EmofuseError(f"fusion training of {name!r} diverged in the first epoch (non-finite loss); "
                           "lower the learning rate")
    model.load_state_dict(best[2])
    model.eval()
    return FitResult(model, best[1], history, best[3], time.perf_counter() - t0, n_params(model))


def plot_curves(history: Sequence[dict[str, float]] | Mapping[str, Sequence[dict[str, float]]], path: str | Path,
                title: str = "", metric: str = "UA") -> Path:
    """Training loss and validation metric per epoch (one line per run when given ``{run: history}``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = history if isinstance(history, Mapping) else {"": history}
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    key = "val_loss" if metric == "loss" else f"val_{metric}"
    for label, h in runs.items():
        ep = [r["epoch"] for r in h]
        a.plot(ep, [r["train_loss"] for r in h], label=label or None)
        b.plot(ep, [r[key] for r in h], label=label or None)
    a.set_xlabel("epoch")
    a.set_ylabel("training loss")
    b.set_xlabel("epoch")
    b.set_ylabel(f"validation {metric}")
    if len(runs) > 1:
        b.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | Path, model: "nn.Module", name: str, meta: Mapping[str, Any]) -> Path:
    """Write ``model`` and a JSON metadata document to ``path`` (``.safetensors``).

    ``meta`` should hold ``features`` ({modality: FeatureSpec dict}), ``labels``, ``training`` and
    ``metrics``; the model name, its config, the format and the emofuse version are added here."""
    from safetensors.torch import save_model

    from .. import __version__

    doc = dict(meta)
    doc.update({"format": CHECKPOINT_FORMAT, "model": name, "config": config_to_dict(model.config),  # type: ignore[arg-type]
                "emofuse_version": __version__})
    for key in ("features", "labels"):
        if key not in doc:
            raise ValueError(f"checkpoint metadata needs {key!r}")
    missing = set(model.config.modalities) - set(doc["features"])  # type: ignore[union-attr]
    if missing:
        raise ValueError(f"checkpoint metadata lacks the feature spec of {sorted(missing)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_model(model, str(tmp), metadata={"emofuse": json.dumps(doc, sort_keys=True)})
    tmp.replace(path)  # never leave a half-written checkpoint under the real name
    return path


def read_meta(path: str | Path) -> dict[str, Any]:
    """The checkpoint's metadata, without building the model (no torch needed)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise MissingComponentError(f"fusion checkpoint {path} does not exist; train one with "
                                    "`emofuse train CONFIG.toml --save-checkpoint PATH`")
    try:
        with safe_open(str(path), framework="numpy") as f:
            raw = (f.metadata() or {}).get("emofuse")
    except Exception as e:  # noqa: BLE001 - safetensors raises several types for damaged files
        raise InputError(f"fusion checkpoint {path} is not a readable safetensors file ({e}); "
                         "it is damaged or not a checkpoint: re-train or re-copy it") from e
    if raw is None:
        raise InputError(f"{path} is a safetensors file without emofuse metadata: not a fusion checkpoint")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as e:
        raise InputError(f"fusion checkpoint {path} has corrupt metadata ({e})") from e
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path} has format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT!r} "
                         "(an expert head? those load with emofuse.experts.LinearHead)")
    return meta


def load_checkpoint(path: str | Path) -> tuple["nn.Module", dict[str, Any]]:
    """``(model in eval mode, metadata)`` of a checkpoint written by :func:`save_checkpoint`."""
    from safetensors.torch import load_model

    from ..models.fusion import FUSION_MODELS, build

    meta = read_meta(path)
    name = meta.get("model")
    if name not in FUSION_MODELS:
        raise InputError(f"fusion checkpoint {path} is for model {name!r}, which this emofuse does not have "
                         f"(registered: {', '.join(sorted(FUSION_MODELS))}); upgrade emofuse")
    try:
        model = build(name, config_from_dict(meta["config"]))
        load_model(model, str(path), strict=True)
    except EmofuseError:
        raise
    except Exception as e:  # noqa: BLE001 - shape/key mismatch, truncated data
        raise InputError(f"fusion checkpoint {path} does not match model {name!r} ({type(e).__name__}: {e}); "
                         "the file is damaged or was written by an incompatible version") from e
    model.eval()
    meta["features"] = {m: FeatureSpec.from_dict(d).to_dict() for m, d in meta["features"].items()}
    return model, meta


# ------------------------------------------------------------------------------------------- data sources


SOURCE_DESCRIPTIONS = {
    "ravdess_av:au": "35 OpenFace facial action-unit values per clip (ravdess_au_mfcc.npz columns 0..34)",
    "ravdess_av:mfcc": "259 MFCC statistics per clip (ravdess_au_mfcc.npz columns 35..293)",
}

# RAVDESS 8-class names in code order (calm kept apart, as the literature does).
RAVDESS8 = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")


def source_description(source: str) -> str:
    if source in SOURCE_DESCRIPTIONS:
        return SOURCE_DESCRIPTIONS[source]
    try:
        from ..extract import get_extractor

        ex = get_extractor(source)
        return f"emofuse extractor {ex.name} ({ex.modality}; {json.dumps(dataclasses.asdict(ex.config))})"
    except EmofuseError:
        return source


def load_modalities(root: str | Path, corpus: str, sources: Mapping[str, str], *, cache: str | Path = ".cache/features",
                    label_set: str = "original", extract_missing: bool = True, workers: int = 1,
                    progress: bool = False) -> tuple[list["Item"], dict[str, np.ndarray], dict[str, np.ndarray],
                                                     dict[str, str], list[str], list[str]]:
    """Labelled items of ``corpus`` and their features per modality.

    ``sources``: modality -> ``ravdess_av:au`` / ``ravdess_av:mfcc`` (columns of the audio-visual npz) or an
    extractor name (voice extractors of a ``ravdess_av`` item read its speech clip, ids matching after the
    first field). ``label_set``: ``original`` (the corpus's own classes, e.g. 8 for RAVDESS, calm apart) or
    ``canonical``. Returns (items, inputs, masks (sequences), kinds, label names in order, each item's class
    name). Items keep their canonical ``label`` (protocols stratify on it; for RAVDESS calm and neutral
    are then one stratum)."""
    from ..corpora import prepare
    from ..extract import extract, get_extractor, load_sequences

    items = [it for it in prepare(corpus, root) if it.label is not None]
    if label_set not in ("original", "canonical"):
        raise InputError(f"label_set must be 'original' or 'canonical', not {label_set!r}")
    inputs: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    keep = np.ones(len(items), dtype=bool)
    for mod, src in sources.items():
        if src.startswith("ravdess_av:"):
            if corpus != "ravdess_av":
                raise InputError(f"modality {mod}: source {src} needs corpus = 'ravdess_av'")
            from ..corpora import ravdess_av

            _, au, mfcc = ravdess_av.features(root)  # the shared data folder or the corpus folder
            table = {"ravdess_av:au": au, "ravdess_av:mfcc": mfcc}
            if src not in table:
                raise InputError(f"unknown source {src!r}; known: {', '.join(table)}")
            inputs[mod] = np.asarray(table[src][[it.extra["row"] for it in items]], dtype=np.float32)
            kinds[mod] = "vector"
            continue
        ex = get_extractor(src)
        targets = items
        if corpus == "ravdess_av":  # the speech clip of the same trial
            speech = {it.id: it for it in prepare("ravdess", root)}
            targets = [speech.get(it.extra["speech_id"]) for it in items]  # type: ignore[misc]
            for n, t in enumerate(targets):
                if t is None:
                    keep[n] = False
            targets = [t for t in targets if t is not None]
        if extract_missing:
            rep = extract(targets, ex.name, Path(cache), workers=workers, progress=progress)
            failed = {i for i, _ in rep.failures}
            if failed:
                raise InputError(f"{len(failed)} items failed {ex.name} extraction (e.g. {sorted(failed)[0]})")
        _, X, lengths = load_sequences(targets, ex.name, Path(cache))
        full = np.zeros((len(items),) + X.shape[1:], dtype=np.float32)
        full[np.flatnonzero(keep)[: len(X)]] = X
        inputs[mod] = full
        if X.ndim == 3:
            mk = np.zeros(full.shape[:2], dtype=bool)
            for r, n_steps in zip(np.flatnonzero(keep), lengths):
                mk[r, :n_steps] = True
            masks[mod] = mk
            kinds[mod] = "sequence"
        else:
            kinds[mod] = "vector"
    if not keep.all():
        idx = np.flatnonzero(keep)
        items = [items[i] for i in idx]
        inputs = {m: x[idx] for m, x in inputs.items()}
        masks = {m: k[idx] for m, k in masks.items()}
    y = [str(it.original_label or it.label) if label_set == "original" else str(it.label) for it in items]
    present = set(y)
    if corpus.startswith("ravdess") and label_set == "original":
        labels = [c for c in RAVDESS8 if c in present]
    else:
        from ..taxonomy import EMOTIONS

        labels = [e for e in EMOTIONS if e in present] + sorted(present - set(EMOTIONS))
    return items, inputs, masks, kinds, labels, y


# ------------------------------------------------------------------------------------------- config-driven runs


@dataclass(frozen=True)
class FusionRunConfig:
    name: str
    root: str
    corpus: str
    sources: dict[str, str]
    model: str
    fusion: dict[str, Any]  # FusionConfig fields besides dims / n_classes
    train: TrainOptions
    protocol: str = "kfold"
    protocol_params: dict[str, Any] = field(default_factory=dict)
    label_set: str = "original"
    cache: str = ".cache/features"
    seed: int = 0
    out: str = "runs/fusion"


def is_fusion_config(path: str | Path) -> bool:
    """Whether the TOML file at ``path`` has a ``[fusion]`` table (then `emofuse train` runs it here)."""
    import tomllib

    try:
        return "fusion" in tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False  # let the linear-head path report the problem


def load_run_config(path: str | Path) -> FusionRunConfig:
    import tomllib

    where = str(path)
    try:
        d = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise InputError(f"{where}: cannot read the config ({e})") from e

    def fail(key: str, msg: str) -> InputError:
        return InputError(f"{where}: {key}: {msg}")

    allowed = {"name", "seed", "out", "data", "protocol", "fusion"}
    for k in d:
        if k not in allowed:
            raise fail(k, f"unknown key; allowed: {', '.join(sorted(allowed))}")
    data = d.get("data") or {}
    for k in ("corpus", "root", "modalities"):
        if k not in data:
            raise fail(f"data.{k}", "missing required key")
    if not isinstance(data["modalities"], dict) or not data["modalities"]:
        raise fail("data.modalities", "must be a table modality = source, e.g. au = 'ravdess_av:au'")
    prot = d.get("protocol") or {}
    fus = dict(d["fusion"])
    model = fus.pop("model", None)
    from ..models.fusion import FUSION_MODELS, FusionConfig

    if model not in FUSION_MODELS:
        raise fail("fusion.model", f"{model!r} is not a registered fusion model ({', '.join(sorted(FUSION_MODELS))})")
    tr = fus.pop("train", {}) or {}
    known = {f.name for f in dataclasses.fields(FusionConfig)} - {"dims", "n_classes"}
    bad = sorted(set(fus) - known)
    if bad:
        raise fail(f"fusion.{bad[0]}", f"unknown FusionConfig field; known: {', '.join(sorted(known))}")
    tknown = {f.name for f in dataclasses.fields(TrainOptions)}
    bad = sorted(set(tr) - tknown)
    if bad:
        raise fail(f"fusion.train.{bad[0]}", f"unknown option; known: {', '.join(sorted(tknown))}")
    seed = int(d.get("seed", 0))
    return FusionRunConfig(
        name=str(d.get("name", Path(path).stem)), root=str(data["root"]), corpus=str(data["corpus"]),
        sources={str(k): str(v) for k, v in data["modalities"].items()}, model=model, fusion=fus,
        train=TrainOptions(**({"seed": seed} | tr)), protocol=str(prot.get("name", "kfold")),
        protocol_params=dict(prot.get("params", {})), label_set=str(data.get("labels", "original")),
        cache=str(data.get("cache", ".cache/features")), seed=seed, out=str(d.get("out", f"runs/{Path(path).stem}")))


def run_split(model: str, config: "FusionConfig", part: Part, tr: np.ndarray, va: np.ndarray, te: np.ndarray,
              labels: Sequence[str], options: TrainOptions) -> tuple[FitResult, dict[str, Any], dict[str, Any],
                                                                     dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Standardise with the training rows' statistics, fit (epoch chosen on ``va``), score ``te`` once.
    Returns (fit, val metrics, test metrics, normalisation)."""
    norm = fit_norm(part.take(tr))
    train, val = apply_norm(part.take(tr), norm), apply_norm(part.take(va), norm)
    res = fit(model, config, train, val, labels, options)
    vm = evaluate(res.model, val, labels)
    # only now, with the network fixed, are the test labels read
    tm = evaluate(res.model, apply_norm(part.take(te), norm), labels) if len(te) else {}
    return res, vm, tm, norm


def run(cfg: FusionRunConfig, save_checkpoint_to: str | Path | None = None, workers: int = 1,
        progress: bool = True) -> dict[str, Any]:
    """Train and evaluate ``cfg.model`` on every split of the protocol; write results.json, report.md,
    curves.png and confusion.png into ``cfg.out``; optionally a checkpoint trained on the first split's
    train part with its own validation selection (the same recipe as the reported figures)."""
    from ..models.fusion import FusionConfig
    from .metrics import summarize_folds
    from .protocols import item_key, make_splits
    from .run import _plot_confusion  # the linear-head reports' confusion plot (same look)

    if cfg.fusion.get("regression"):
        raise InputError(f"{cfg.name}: fusion.regression = true, but corpus {cfg.corpus} gives no valence "
                         "targets here, so the valence head would never be trained; leave it out")
    t0 = time.perf_counter()
    items, inputs, masks, kinds, labels, y = load_modalities(cfg.root, cfg.corpus, cfg.sources, cache=cfg.cache,
                                                             label_set=cfg.label_set, workers=workers, progress=progress)
    lab_idx = {lab: i for i, lab in enumerate(labels)}
    part = Part(inputs, np.array([lab_idx[c] for c in y], dtype=np.int64), None, masks)
    config = FusionConfig(dims=tuple((m, int(x.shape[-1])) for m, x in inputs.items()), n_classes=len(labels),
                          **{"regression": False} | cfg.fusion)
    row = {item_key(it): n for n, it in enumerate(items)}
    splits = make_splits(cfg.protocol, items, seed=cfg.seed, **cfg.protocol_params)
    folds: list[dict[str, Any]] = []
    curves: dict[str, list[dict[str, float]]] = {}
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    first: tuple[FitResult, dict[str, Any], dict[str, Any]] | None = None
    for sp in splits:
        tr, va, te = (np.array([row[k] for k in ids], dtype=np.int64) for ids in (sp.train, sp.val, sp.test))
        if not len(va):
            raise InputError(f"split {sp.name}: no validation items; fusion training selects its epoch on them")
        res, vm, tm, norm = run_split(cfg.model, config, part, tr, va, te, labels, cfg.train)
        on = "test" if tm else "validation"
        m = tm or vm
        cm += np.asarray(m["confusion_matrix"], dtype=np.int64)
        curves[sp.name] = res.history
        folds.append({"split": sp.name, "evaluated_on": on, "n_train": len(tr), "n_val": len(va), "n_test": len(te),
                      "best_epoch": res.best_epoch, "epochs_run": len(res.history), "seconds": round(res.seconds, 2),
                      "val": {k: vm[k] for k in ("UA", "WA", "macro_f1")}, "metrics": m, "history": res.history})
        print(f"  {sp.name}: {on} UA {100 * m['UA']:.1f} WA {100 * m['WA']:.1f} (epoch {res.best_epoch}, "
              f"{res.seconds:.1f} s)", file=sys.stderr)
        if first is None:
            first = (res, {"norm": norm, "split": sp.name, "val": vm}, m)
    summary = summarize_folds(folds)
    on = sorted({f["evaluated_on"] for f in folds})
    result: dict[str, Any] = {
        "name": cfg.name, "model": cfg.model, "config": config_to_dict(config), "train": dataclasses.asdict(cfg.train),
        "corpus": cfg.corpus, "sources": cfg.sources, "kinds": kinds, "protocol": cfg.protocol,
        "protocol_params": cfg.protocol_params, "labels": labels, "n_items": len(items),
        "evaluated_on": on[0] if len(on) == 1 else "mixed", "folds": folds, "summary": summary,
        "confusion_matrix": cm.tolist(), "n_params": first[0].n_params if first else 0,
    }
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if save_checkpoint_to is not None and first is not None:
        res, info, m = first
        feats = {mod: FeatureSpec(cfg.sources[mod], int(inputs[mod].shape[-1]), kinds[mod],
                                  source_description(cfg.sources[mod]), tuple(info["norm"][mod][0].tolist()),
                                  tuple(info["norm"][mod][1].tolist()), _identity(cfg.sources[mod])).to_dict()
                 for mod in inputs}
        meta = {"features": feats, "labels": labels, "label_set": cfg.label_set,
                "training": {"corpora": [cfg.corpus], "protocol": cfg.protocol, "protocol_params": cfg.protocol_params,
                             "fold": info["split"], "seed": cfg.seed, "options": dataclasses.asdict(cfg.train),
                             "best_epoch": res.best_epoch, "run": cfg.name},
                "metrics": {"validation": {k: info["val"][k] for k in ("UA", "WA", "macro_f1")},
                            result["evaluated_on"]: {k: m[k] for k in ("UA", "WA", "macro_f1")},
                            "note": f"selected on {info['split']}'s validation actors; figures of that split"}}
        result["checkpoint"] = str(save_checkpoint(save_checkpoint_to, res.model, cfg.model, meta))
    result["seconds"] = round(time.perf_counter() - t0, 2)
    (out / "results.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    for f in folds:
        (out / f"fold-{f['split']}.json").write_text(json.dumps(f, indent=2), encoding="utf-8")
    plot_curves(curves, out / "curves.png", f"{cfg.name}: training loss / validation {cfg.train.metric}",
                cfg.train.metric)
    _plot_confusion(cm, labels, out / "confusion.png", f"{cfg.name} ({result['evaluated_on']}, summed over splits)")
    (out / "report.md").write_text(_report(cfg, result), encoding="utf-8")
    return result


def _report(cfg: FusionRunConfig, r: dict[str, Any]) -> str:
    from .metrics import confusion_markdown, summary_markdown

    on = r["evaluated_on"]
    mods = ", ".join(f"{m} = `{s}` ({r['kinds'][m]})" for m, s in cfg.sources.items())
    L = [f"# {cfg.name}", "",
         f"Fusion network `{cfg.model}` ({r['n_params']:,} parameters) on {cfg.corpus} ({r['n_items']} labelled items, "
         f"{len(r['labels'])} classes: {', '.join(r['labels'])}); modalities {mods}; protocol `{cfg.protocol}` "
         f"{cfg.protocol_params or ''}. Features standardised with each split's training statistics; the epoch "
         f"is chosen on the validation part by {cfg.train.metric} (patience {cfg.train.patience}).", "",
         "| split | on | train | val | test | best epoch | val UA | UA | WA | macro-F1 | s |", "|---" * 11 + "|"]
    for f in r["folds"]:
        m = f["metrics"]
        L.append(f"| {f['split']} | {f['evaluated_on']} | {f['n_train']} | {f['n_val']} | {f['n_test']} | "
                 f"{f['best_epoch']} | {100 * f['val']['UA']:.1f} | {100 * m['UA']:.1f} | {100 * m['WA']:.1f} | "
                 f"{100 * m['macro_f1']:.1f} | {f['seconds']:.1f} |")
    L += summary_markdown(r["summary"], len(r["folds"]), on) + confusion_markdown(r["labels"], r["confusion_matrix"])
    L += ["", "![curves](curves.png)", "", "![confusion](confusion.png)", "", f"Run time {r.get('seconds', 0):.1f} s."]
    if "checkpoint" in r:
        L += ["", f"Checkpoint: `{r['checkpoint']}` (trained on {r['folds'][0]['split']}'s training part)."]
    return "\n".join(L) + "\n"


def train_main(argv: Sequence[str] | None = None) -> int:
    """``emofuse train FUSION_CONFIG.toml [--save-checkpoint PATH] [--out DIR] [--workers N]``."""
    ap = argparse.ArgumentParser(prog="emofuse train", description="Train and evaluate a fusion network from a "
                                 "config with a [fusion] table.")
    ap.add_argument("config", type=Path)
    ap.add_argument("--save-checkpoint", type=Path, default=None, help="write a self-describing checkpoint here")
    ap.add_argument("--out", default=None, help="output folder (overrides the config's `out`)")
    ap.add_argument("--workers", type=int, default=1, help="feature-extraction processes (when features are missing)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the config's, 1)")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    try:
        cfg = load_run_config(a.config)
        if a.out:
            cfg = dataclasses.replace(cfg, out=a.out)
        if a.threads:
            cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, threads=a.threads))
        r = run(cfg, a.save_checkpoint, workers=a.workers, progress=not a.no_progress)
    except (EmofuseError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    s = r["summary"]
    print(f"{cfg.name} ({cfg.model}): {len(r['folds'])} split(s), {r['evaluated_on']}: UA {s['UA']['text']}  "
          f"WA {s['WA']['text']}  macro-F1 {s['macro_f1']['text']}  ({r['seconds']:.1f} s)")
    print(f"report: {Path(cfg.out) / 'report.md'}")
    if "checkpoint" in r:
        print(f"checkpoint: {r['checkpoint']}")
    return 0
