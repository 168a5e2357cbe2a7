"""The one training loop for every fusion network of :mod:`emofuse.networks`.

    from emofuse.training.networks import Part, TrainOptions, fit
    res = fit("gated", config, train=Part(inputs, labels), val=Part(vinputs, vlabels), labels=names,
              options=TrainOptions())
    emofuse.checkpoints.save_network("gated.safetensors", res.model, "gated", meta)

Inputs are per-modality arrays: ``[N, d]`` vectors or ``[N, T, d]`` zero-padded sequences, with
optional masks (``bool[N]`` presence, ``bool[N, T]`` valid steps). Labels are int64 (-100 = none);
valence is float (NaN = none). Training: AdamW, fixed seeds, shuffled mini-batches; after every epoch the
VALIDATION part is scored and the best epoch's weights are kept (early stopping with ``patience``).
Nothing but the training and validation parts is ever passed to :func:`fit`, so test labels cannot
influence which epoch is chosen. Config-driven runs over protocol splits: :mod:`emofuse.training.run`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import EmofuseError, InputError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..networks import FusionConfig

__all__ = ["FitResult", "Part", "TrainOptions", "apply_norm", "evaluate", "fit", "fit_norm", "n_params", "predict",
           "run_split"]

METRICS = ("UA", "WA", "macro_f1", "loss")


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
        for name in ("epochs", "batch_size", "patience", "seed", "threads"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise InputError(f"TrainOptions.{name} must be an integer, not {v!r}")
        for name in ("lr", "weight_decay", "grad_clip"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise InputError(f"TrainOptions.{name} must be a finite number, not {v!r}")
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

    from ..networks import build

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


def run_split(name: str, config: "FusionConfig", part: Part, tr: np.ndarray, va: np.ndarray, te: np.ndarray,
              labels: Sequence[str], options: TrainOptions
              ) -> tuple[FitResult, dict[str, Any], dict[str, Any], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """One split: standardise with the training rows' statistics, fit (epoch chosen on ``va``), then score
    ``te`` once. Returns (fit, validation metrics, test metrics ({} without test rows), normalisation)."""
    norm = fit_norm(part.take(tr))
    train, val = apply_norm(part.take(tr), norm), apply_norm(part.take(va), norm)
    res = fit(name, config, train, val, labels, options)
    vm = evaluate(res.model, val, labels)
    # only now, with the network fixed, are the test labels read
    tm = evaluate(res.model, apply_norm(part.take(te), norm), labels) if len(te) else {}
    return res, vm, tm, norm
