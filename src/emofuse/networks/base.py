"""Fusion networks: their config, shared base class and registry (the models live in :mod:`.vector`,
:mod:`.sequence` and :mod:`.self_mm`). Not to be confused with the analysis's per-segment fusion rules
(:mod:`emofuse.segment_fusion`), which run a trained network through its checkpoint.

Every registered model is built from a :class:`FusionConfig` and has

    forward(inputs: dict[str, Tensor], mask: dict[str, BoolTensor] | None = None) -> dict

``inputs[m]`` is an utterance vector ``[B, d_m]`` or a zero-padded sequence ``[B, T_m, d_m]``;
``mask[m]`` is ``bool[B]`` (modality present per sample) or ``bool[B, T_m]`` (valid steps; a sample
without a valid step counts as absent for that modality). The output is
``{"logits": Tensor[B, n_classes], "valence": Tensor[B]}`` (``"valence"`` only when
``config.regression``); models may add private keys (embeddings, unimodal outputs) for their
:meth:`FusionModel.loss`. A modality that is absent from ``inputs``, or masked ``False`` for a
sample, contributes exactly nothing for that sample: masking a modality is the same as removing it.
(In ``concat`` both are replaced by the same learned "missing" embedding.) A sample with no
modality present gets the model's "no evidence" output (zero-valued fused features).

Vector models (``late``, ``concat``, ``pairwise``, ``gated``) reduce a sequence to its masked mean
over valid steps (so a vector equals a length-1 sequence). Sequence models treat a vector as a
length-1 sequence.

Models:

- ``late``: per-modality linear experts, each trained on its own; log-probabilities averaged over
  present modalities (the baseline).
- ``concat``: projections, learned "missing" embeddings, concatenation, MLP.
- ``pairwise``: an MLP per modality pair, averaged over present pairs.
- ``gated``: cross-modal gated fusion per modality pair (multi-corpus paper).
- ``transformer_gate``: a Transformer encoder per modality, attention-guided gated fusion, focal
  loss by default (facial-AU + MFCC paper).
- ``talking_heads``: bidirectional cross-modal talking-heads attention per pair plus a supervised
  contrastive loss (contrastive talking-heads paper).
- ``mult``: the Multimodal Transformer (Tsai et al. 2019), directional pairwise cross-modal attention.
- ``self_mm``: Self-MM (Yu et al. 2021), unimodal heads trained on self-generated labels.

``build(name, config)`` instantiates one; ``@register(name)`` adds one to :data:`NETWORKS`. Training goes through
``model.begin_training(n_train)``, ``model.loss(out, target, index)`` and ``model.end_epoch(epoch)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import InputError
from ..registry import Registry
from .losses import IGNORE_INDEX, focal_loss, masked_mse

__all__ = ["NETWORKS", "FusionConfig", "FusionModel", "Prepared", "build", "modality_dropout", "register"]

LOSSES = ("ce", "focal")


@dataclass(frozen=True)
class FusionConfig:
    # modality -> input feature dim, in the fixed modality order; stored as a tuple of pairs (hashable)
    dims: Mapping[str, int] | tuple[tuple[str, int], ...]
    # width of the per-modality projections and of the fused representation
    hidden: int = 128
    # number of emotion classes (size of "logits")
    n_classes: int = 7
    # also output a scalar valence per sample ("valence")
    regression: bool = True
    # dropout probability inside the networks (training only)
    dropout: float = 0.1
    # probability of masking a whole present modality per sample while training (never all of them)
    modality_dropout: float = 0.0
    # classification loss: None = the model's default (focal for transformer_gate, else ce), "ce", "focal"
    loss: str | None = None
    # focusing parameter of the focal loss (0 = cross-entropy)
    focal_gamma: float = 2.0
    # weight of the valence regression loss (MSE; Self-MM uses its paper's L1) against the class loss
    regression_weight: float = 1.0
    # weight of the supervised contrastive loss (talking_heads)
    contrastive_weight: float = 0.1
    # temperature of the supervised contrastive loss
    temperature: float = 0.1
    # attention heads of the sequence models (must divide hidden)
    heads: int = 4
    # Transformer blocks per stream in the sequence models
    layers: int = 1
    # Self-MM's H: generated unimodal labels are clamped to [-H, H] (MOSI 3, CH-SIMS 1);
    # None = the largest |valence| among the training targets seen so far
    label_bound: float | None = None

    def __post_init__(self) -> None:
        items = tuple(self.dims.items()) if isinstance(self.dims, Mapping) else tuple(self.dims)
        try:
            pairs = tuple((str(k), int(v)) for k, v in items)
        except (TypeError, ValueError) as exc:
            raise InputError(f"FusionConfig.dims must map modality names to ints, got {self.dims!r}") from exc
        if not pairs:
            raise InputError("FusionConfig.dims is empty: give at least one modality, e.g. {'voice': 1024}")
        names = [k for k, _ in pairs]
        if len(set(names)) != len(names):
            raise InputError(f"FusionConfig.dims has duplicate modalities: {names}")
        for k, v in pairs:
            if not k.isidentifier():
                raise InputError(f"modality name {k!r} must be a Python identifier (letters, digits, _)")
            if v <= 0:
                raise InputError(f"modality {k!r} has input dim {v}; dims must be positive")
        if self.hidden <= 0 or self.n_classes <= 0:
            raise InputError(f"hidden ({self.hidden}) and n_classes ({self.n_classes}) must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.modality_dropout < 1.0:
            raise InputError(f"modality_dropout must be in [0, 1), got {self.modality_dropout}")
        if self.loss is not None and self.loss not in LOSSES:
            raise InputError(f"loss must be None (model default) or one of {list(LOSSES)}, got {self.loss!r}")
        for name in ("focal_gamma", "regression_weight", "contrastive_weight"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise InputError(f"{name} must be a finite number >= 0, got {v!r}")
        if not (isinstance(self.temperature, (int, float)) and self.temperature > 0):
            raise InputError(f"temperature must be > 0, got {self.temperature!r}")
        if self.label_bound is not None and not (math.isfinite(self.label_bound) and self.label_bound > 0):
            raise InputError(f"label_bound must be None or a finite number > 0, got {self.label_bound!r}")
        if self.heads < 1 or self.layers < 1:
            raise InputError(f"heads ({self.heads}) and layers ({self.layers}) must be >= 1")
        object.__setattr__(self, "dims", pairs)

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality names in the fixed order."""
        return tuple(k for k, _ in self.dims)  # type: ignore[misc]

    @property
    def dim_map(self) -> dict[str, int]:
        """``dims`` as a fresh dict."""
        return dict(self.dims)  # type: ignore[arg-type]


NETWORKS: Registry[type] = Registry("fusion network")


def register(name: str) -> Callable[[type], type]:
    """Class decorator adding a fusion network (an ``nn.Module`` subclass) to :data:`NETWORKS`."""

    def deco(cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"register({name!r}) expects an nn.Module subclass, got {cls!r}")
        return NETWORKS.register(name)(cls)

    return deco


def build(name: str, config: FusionConfig) -> nn.Module:
    """Instantiate the registered fusion network ``name`` for ``config`` (UnknownNameError lists them)."""
    return NETWORKS[name](config)


def modality_dropout(present: dict[str, Tensor], p: float,
                     generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Drop each present modality of each sample with probability ``p``, never all of a sample's
    present modalities (one of them, chosen at random, is kept). Returns new bool masks."""
    if p <= 0.0 or not present:
        return dict(present)
    names = list(present)
    pres = torch.stack([present[m] for m in names], dim=1)  # [B, M]
    r = torch.rand(pres.shape, generator=generator, device=pres.device)
    keep = pres & (r >= p)
    lost = pres.any(dim=1) & ~keep.any(dim=1)
    if bool(lost.any()):
        pick = torch.rand(pres.shape, generator=generator, device=pres.device).masked_fill(~pres, -1.0)
        rescue = nn.functional.one_hot(pick.argmax(dim=1), len(names)).bool() & lost[:, None]
        keep = keep | rescue
    return {m: keep[:, i] for i, m in enumerate(names)}


@dataclass
class Prepared:
    """Validated inputs of one forward call (only the modalities given in ``inputs``, config order)."""

    batch: int
    # a reference input (dtype / device for new tensors)
    ref: Tensor
    # modality -> bool[B]: present for the sample (after modality dropout)
    present: dict[str, Tensor]
    # modality -> [B, T, d]: inputs as sequences (vectors -> T=1), exact zeros where not valid
    seq: dict[str, Tensor]
    # modality -> bool[B, T]: valid steps of present samples
    steps: dict[str, Tensor]

    def vectors(self) -> dict[str, Tensor]:
        """Masked mean over valid steps, [B, d] per modality (zeros for absent samples). A vector
        input comes back unchanged (x * 1 / 1), so a vector equals a length-1 sequence."""
        return {m: _pool(x, self.steps[m]) for m, x in self.seq.items()}


def _pool(x: Tensor, steps: Tensor) -> Tensor:
    """Masked mean of ``x`` [B, T, k] over ``steps`` bool[B, T]; zeros where no step is valid."""
    w = steps.to(x.dtype)
    total = (x * w[..., None]).sum(1)
    return total / w.sum(1).clamp(min=1.0)[:, None]


class FusionModel(nn.Module):
    """Shared input checking, presence masks, output heads and the training-loss hook."""

    #: classification loss when ``config.loss`` is None
    default_loss = "ce"

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        if not isinstance(config, FusionConfig):
            raise TypeError(f"expected a FusionConfig, got {type(config).__name__}")
        self.config = config
        self.modalities = config.modalities

    def _heads(self, d_in: int) -> None:
        self.cls_head = nn.Linear(d_in, self.config.n_classes)
        self.val_head = nn.Linear(d_in, 1) if self.config.regression else None

    def _out(self, fused: Tensor) -> dict[str, Tensor]:
        out = {"logits": self.cls_head(fused)}
        if self.val_head is not None:
            out["valence"] = self.val_head(fused).squeeze(-1)
        return out

    # ---- inputs -------------------------------------------------------------------------------

    def _prepare(self, inputs: Mapping[str, Tensor], mask: Mapping[str, Tensor] | None) -> Prepared:
        """Validate shapes, turn every input into a zero-padded sequence with a step mask, apply
        modality dropout (training) and zero everything that is not a valid step (so NaN or garbage
        in padding / masked rows cannot leak)."""
        if not inputs:
            raise ValueError(f"no inputs given; expected some of {list(self.modalities)}")
        dims = self.config.dim_map
        batch = None
        for m, x in inputs.items():
            if m not in dims:
                raise ValueError(f"unknown modality {m!r}; this model was configured for {list(self.modalities)}")
            if x.dim() not in (2, 3) or x.shape[-1] != dims[m] or (x.dim() == 3 and x.shape[1] == 0):
                raise ValueError(f"input {m!r} must have shape [B, {dims[m]}] (vector) or [B, T, {dims[m]}] "
                                 f"(sequence, T >= 1), got {tuple(x.shape)}")
            if batch is None:
                batch = x.shape[0]
            elif x.shape[0] != batch:
                raise ValueError(f"inputs disagree on batch size: {m!r} has {x.shape[0]}, expected {batch}")
        assert batch is not None
        ref = next(iter(inputs.values()))
        mask = mask or {}
        for m in mask:
            if m not in dims:
                raise ValueError(f"mask names unknown modality {m!r}; known: {list(self.modalities)}")
        present: dict[str, Tensor] = {}
        seq: dict[str, Tensor] = {}
        steps: dict[str, Tensor] = {}
        for m in self.modalities:
            if m not in inputs:
                continue
            x = inputs[m]
            x = x[:, None, :] if x.dim() == 2 else x
            t = x.shape[1]
            if m in mask:
                k = torch.as_tensor(mask[m], device=ref.device).bool()
                if k.shape == (batch,):
                    k = k[:, None].expand(batch, t)
                elif k.shape != (batch, t):
                    raise ValueError(f"mask {m!r} must have shape [B] = [{batch}] (presence) or [B, T] = "
                                     f"[{batch}, {t}] (valid steps), got {tuple(k.shape)}")
            else:
                k = torch.ones(batch, t, dtype=torch.bool, device=ref.device)
            seq[m], steps[m], present[m] = x, k, k.any(dim=1)
        if self.training and self.config.modality_dropout > 0:
            present = modality_dropout(present, self.config.modality_dropout)
        for m, x in seq.items():
            steps[m] = steps[m] & present[m][:, None]
            seq[m] = torch.where(steps[m][..., None], x, torch.zeros_like(x))
        return Prepared(batch, ref, present, seq, steps)

    def _presence(self, inputs: Mapping[str, Tensor],
                  mask: Mapping[str, Tensor] | None) -> tuple[int, Tensor, dict[str, Tensor]]:
        """Validate; return (batch size, a reference input, {modality in inputs: bool[B] present})."""
        p = self._prepare(inputs, mask)
        return p.batch, p.ref, p.present

    # ---- training hooks -----------------------------------------------------------------------

    @property
    def loss_name(self) -> str:
        """The classification loss in use: ``config.loss`` or the model's default."""
        return self.config.loss or self.default_loss

    def _class_loss(self, logits: Tensor, label: Tensor | None) -> Tensor:
        if label is None:
            return logits.sum() * 0.0
        if self.loss_name == "focal":
            return focal_loss(logits, label, gamma=self.config.focal_gamma)
        if not bool((label != IGNORE_INDEX).any()):  # F.cross_entropy would give NaN (0 / 0)
            return logits.sum() * 0.0
        return nn.functional.cross_entropy(logits, label.long(), ignore_index=IGNORE_INDEX)

    @staticmethod
    def _targets(out: Mapping[str, Tensor], target: Mapping[str, Tensor]) -> tuple[Tensor | None, Tensor | None]:
        """Checked ``target["label"]`` (LongTensor[B]) and ``target["valence"]`` (FloatTensor[B])."""
        b = out["logits"].shape[0]
        label, valence = target.get("label"), target.get("valence")
        for key, t in (("label", label), ("valence", valence)):
            if t is not None and tuple(t.shape) != (b,):
                raise ValueError(f"target[{key!r}] must have shape [B] = [{b}], got {tuple(t.shape)}")
        return label, valence

    def loss(self, out: dict[str, Tensor], target: dict[str, Tensor],
             index: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        """Training loss for ``out = self(inputs, mask)``.

        ``target["label"]``: LongTensor[B], -100 = no class label; ``target["valence"]``:
        FloatTensor[B], NaN = no regression target (used when ``config.regression``); ``index``:
        training-set row numbers (training only). Default: cross-entropy or focal on labels
        (``config.loss``) + ``regression_weight`` * MSE on the non-NaN valences. Returns the scalar
        to backpropagate and its parts as floats for logging.
        """
        label, valence = self._targets(out, target)
        cls = self._class_loss(out["logits"], label)
        total, parts = cls, {self.loss_name: float(cls.detach())}
        if self.config.regression and valence is not None and "valence" in out:
            reg = masked_mse(out["valence"], valence)
            total = total + self.config.regression_weight * reg
            parts["mse"] = float(reg.detach())
        return total, parts

    def begin_training(self, n_train: int) -> None:
        """Called once by the training loop before the first epoch (default: nothing to set up)."""

    def end_epoch(self, epoch: int) -> None:
        """Called after each training epoch (default: nothing to do)."""


def _proj(d_in: int, hidden: int, dropout: float) -> nn.Module:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(dropout))


def _masked_mean(terms: list[tuple[Tensor, Tensor]], like: Tensor) -> tuple[Tensor, Tensor]:
    """Mean over the terms whose per-sample flag is True; masked terms add exact zeros.
    ``like`` is a [B, k] zero template. Returns (mean, count[B])."""
    total = torch.zeros_like(like)
    count = torch.zeros(like.shape[0], dtype=like.dtype, device=like.device)
    for value, flag in terms:
        total = total + torch.where(flag[:, None], value, torch.zeros_like(value))
        count = count + flag.to(like.dtype)
    return total / count.clamp(min=1.0)[:, None], count


from . import vector, sequence, self_mm  # noqa: E402,F401,I001  (registration, in the order listed)
