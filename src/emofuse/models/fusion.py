"""Multimodal fusion networks (utterance-level vectors) behind one interface.

Every registered model is built from a :class:`FusionConfig` and has

    forward(inputs: dict[str, Tensor[B, d_m]], mask: dict[str, BoolTensor[B]] | None = None) -> dict

returning ``{"logits": Tensor[B, n_classes], "valence": Tensor[B]}`` (``"valence"`` only when
``config.regression``). A modality that is absent from ``inputs``, or masked ``False`` for a sample,
contributes exactly nothing for that sample: masking a modality is the same as removing it.
(In ``concat`` both are replaced by the same learned "missing" embedding.) A sample with no
modality present gets the model's "no evidence" output (zero-valued fused features).

Models: ``late`` (logit averaging baseline), ``concat``, ``pairwise``, ``gated`` (cross-modal
gated fusion). ``build(name, config)`` instantiates one; ``register(name)`` adds one.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import EmofuseError

__all__ = ["FUSION_MODELS", "FusionConfig", "FusionModel", "UnknownFusionModelError", "build",
           "modality_dropout", "register"]


class UnknownFusionModelError(EmofuseError, ValueError):
    """``build`` was given a name that is not in the registry."""


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

    def __post_init__(self) -> None:
        items = tuple(self.dims.items()) if isinstance(self.dims, Mapping) else tuple(self.dims)
        try:
            pairs = tuple((str(k), int(v)) for k, v in items)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"FusionConfig.dims must map modality names to ints, got {self.dims!r}") from exc
        if not pairs:
            raise ValueError("FusionConfig.dims is empty: give at least one modality, e.g. {'voice': 1024}")
        names = [k for k, _ in pairs]
        if len(set(names)) != len(names):
            raise ValueError(f"FusionConfig.dims has duplicate modalities: {names}")
        for k, v in pairs:
            if not k.isidentifier():
                raise ValueError(f"modality name {k!r} must be a Python identifier (letters, digits, _)")
            if v <= 0:
                raise ValueError(f"modality {k!r} has input dim {v}; dims must be positive")
        if self.hidden <= 0 or self.n_classes <= 0:
            raise ValueError(f"hidden ({self.hidden}) and n_classes ({self.n_classes}) must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.modality_dropout < 1.0:
            raise ValueError(f"modality_dropout must be in [0, 1), got {self.modality_dropout}")
        object.__setattr__(self, "dims", pairs)

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality names in the fixed order."""
        return tuple(k for k, _ in self.dims)  # type: ignore[misc]

    @property
    def dim_map(self) -> dict[str, int]:
        """``dims`` as a fresh dict."""
        return dict(self.dims)  # type: ignore[arg-type]


FUSION_MODELS: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator adding a fusion model to :data:`FUSION_MODELS` under ``name``."""

    def deco(cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"register({name!r}) expects an nn.Module subclass, got {cls!r}")
        if name in FUSION_MODELS and FUSION_MODELS[name] is not cls:
            raise ValueError(f"fusion model {name!r} is already registered ({FUSION_MODELS[name].__name__})")
        FUSION_MODELS[name] = cls
        return cls

    return deco


def build(name: str, config: FusionConfig) -> nn.Module:
    """Instantiate the registered fusion model ``name`` for ``config``."""
    try:
        cls = FUSION_MODELS[name]
    except KeyError:
        known = ", ".join(sorted(FUSION_MODELS))
        raise UnknownFusionModelError(f"unknown fusion model {name!r}; registered: {known}") from None
    return cls(config)


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


class FusionModel(nn.Module):
    """Shared input checking, presence masks and output heads."""

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

    def _presence(self, inputs: Mapping[str, Tensor],
                  mask: Mapping[str, Tensor] | None) -> tuple[int, Tensor, dict[str, Tensor]]:
        """Validate; return (batch size, a reference input, {modality in inputs: bool[B] present})."""
        if not inputs:
            raise ValueError(f"no inputs given; expected some of {list(self.modalities)}")
        dims = self.config.dim_map
        batch = None
        for m, x in inputs.items():
            if m not in dims:
                raise ValueError(f"unknown modality {m!r}; this model was configured for {list(self.modalities)}")
            if x.dim() != 2 or x.shape[1] != dims[m]:
                raise ValueError(f"input {m!r} must have shape [B, {dims[m]}], got {tuple(x.shape)}")
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
        for m in self.modalities:
            if m not in inputs:
                continue
            if m in mask:
                k = torch.as_tensor(mask[m], device=ref.device)
                if k.shape != (batch,):
                    raise ValueError(f"mask {m!r} must have shape [{batch}], got {tuple(k.shape)}")
                present[m] = k.bool()
            else:
                present[m] = torch.ones(batch, dtype=torch.bool, device=ref.device)
        if self.training and self.config.modality_dropout > 0:
            present = modality_dropout(present, self.config.modality_dropout)
        return batch, ref, present


@register("late")
class LateFusion(FusionModel):
    """Per-modality linear classifiers (and valence heads); outputs averaged over present modalities."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__(config)
        dims = config.dim_map
        self.drop = nn.Dropout(config.dropout)
        self.cls = nn.ModuleDict({m: nn.Linear(dims[m], config.n_classes) for m in self.modalities})
        self.val = (nn.ModuleDict({m: nn.Linear(dims[m], 1) for m in self.modalities})
                    if config.regression else None)

    def forward(self, inputs: Mapping[str, Tensor], mask: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        batch, ref, present = self._presence(inputs, mask)
        n_out = self.config.n_classes + (1 if self.val is not None else 0)
        terms = []
        for m, flag in present.items():
            x = self.drop(inputs[m])
            y = self.cls[m](x)
            if self.val is not None:
                y = torch.cat([y, self.val[m](x)], dim=1)
            terms.append((y, flag))
        mean, _ = _masked_mean(terms, ref.new_zeros(batch, n_out))
        out = {"logits": mean[:, : self.config.n_classes]}
        if self.val is not None:
            out["valence"] = mean[:, -1]
        return out


@register("concat")
class ConcatFusion(FusionModel):
    """Projections (Linear+LayerNorm+GELU); absent or masked modalities -> a learned "missing"
    embedding; concatenation in the fixed modality order -> MLP -> heads."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__(config)
        dims, h = config.dim_map, config.hidden
        self.proj = nn.ModuleDict({m: _proj(dims[m], h, config.dropout) for m in self.modalities})
        self.missing = nn.ParameterDict({m: nn.Parameter(0.02 * torch.randn(h)) for m in self.modalities})
        self.mlp = nn.Sequential(nn.Linear(len(self.modalities) * h, h), nn.GELU(), nn.Dropout(config.dropout))
        self._heads(h)

    def forward(self, inputs: Mapping[str, Tensor], mask: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        batch, ref, present = self._presence(inputs, mask)
        parts = []
        for m in self.modalities:
            miss = self.missing[m].to(ref.dtype).expand(batch, -1)
            if m in present:
                parts.append(torch.where(present[m][:, None], self.proj[m](inputs[m]), miss))
            else:
                parts.append(miss)
        return self._out(self.mlp(torch.cat(parts, dim=1)))


class _PairFusion(FusionModel):
    """Projections; a fusion function per modality pair; pair outputs averaged over the pairs whose
    both members are present; samples without such a pair fall back to the mean of unimodal heads."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__(config)
        dims, h = config.dim_map, config.hidden
        self.pairs = list(itertools.combinations(self.modalities, 2))
        self.proj = nn.ModuleDict({m: _proj(dims[m], h, config.dropout) for m in self.modalities})
        self.uni = nn.ModuleDict({m: self._unimodal(h) for m in self.modalities})

    def _unimodal(self, h: int) -> nn.Module:
        raise NotImplementedError

    def _pair(self, a: str, b: str, xa: Tensor, xb: Tensor) -> Tensor:
        raise NotImplementedError

    def _fuse(self, inputs: Mapping[str, Tensor], mask: Mapping[str, Tensor] | None) -> Tensor:
        batch, ref, present = self._presence(inputs, mask)
        h = self.config.hidden
        z = {m: self.proj[m](inputs[m]) for m in present}
        pair_terms = [(self._pair(a, b, z[a], z[b]), present[a] & present[b])
                      for a, b in self.pairs if a in present and b in present]
        like = ref.new_zeros(batch, h)
        pair_mean, n_pairs = _masked_mean(pair_terms, like)
        uni_mean, _ = _masked_mean([(self.uni[m](z[m]), present[m]) for m in present], like)
        return torch.where((n_pairs > 0)[:, None], pair_mean, uni_mean)


@register("pairwise")
class PairwiseFusion(_PairFusion):
    """An MLP on each modality pair's concatenated projections; averaged over present pairs."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__(config)
        h = config.hidden
        self.pair_mlp = nn.ModuleDict({f"{a}__{b}": nn.Sequential(nn.Linear(2 * h, h), nn.GELU(),
                                                                  nn.Dropout(config.dropout))
                                       for a, b in self.pairs})
        self._heads(h)

    def _unimodal(self, h: int) -> nn.Module:
        return nn.Sequential(nn.Linear(h, h), nn.GELU(), nn.Dropout(self.config.dropout))

    def _pair(self, a: str, b: str, xa: Tensor, xb: Tensor) -> Tensor:
        return self.pair_mlp[f"{a}__{b}"](torch.cat([xa, xb], dim=1))

    def forward(self, inputs: Mapping[str, Tensor], mask: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        return self._out(self._fuse(inputs, mask))


class _GatedPair(nn.Module):
    """h = z * tanh(W_a x_a) + (1 - z) * tanh(W_b x_b), z = sigmoid(W_z [x_a; x_b])."""

    def __init__(self, h: int) -> None:
        super().__init__()
        self.wa, self.wb, self.wz = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(2 * h, h)

    def forward(self, xa: Tensor, xb: Tensor) -> Tensor:
        z = torch.sigmoid(self.wz(torch.cat([xa, xb], dim=1)))
        return z * torch.tanh(self.wa(xa)) + (1 - z) * torch.tanh(self.wb(xb))


class _TanhLinear(nn.Module):
    def __init__(self, h: int) -> None:
        super().__init__()
        self.lin = nn.Linear(h, h)

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self.lin(x))


@register("gated")
class GatedFusion(_PairFusion):
    """Cross-modal gated attention fusion (multi-corpus paper): a gated fusion layer per modality
    pair, combined over present pairs as in ``pairwise``, then an MLP classifier."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__(config)
        h = config.hidden
        self.gates = nn.ModuleDict({f"{a}__{b}": _GatedPair(h) for a, b in self.pairs})
        self.classifier = nn.Sequential(nn.Linear(h, h), nn.GELU(), nn.Dropout(config.dropout))
        self._heads(h)

    def _unimodal(self, h: int) -> nn.Module:
        return _TanhLinear(h)

    def _pair(self, a: str, b: str, xa: Tensor, xb: Tensor) -> Tensor:
        return self.gates[f"{a}__{b}"](xa, xb)

    def forward(self, inputs: Mapping[str, Tensor], mask: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        return self._out(self.classifier(self._fuse(inputs, mask)))

