"""The vector fusion networks: ``late`` (the baseline), ``concat``, ``pairwise`` and ``gated``. Sequences are
reduced to their masked mean over valid steps first (see :mod:`emofuse.networks.base`)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from .base import FusionConfig, FusionModel, _masked_mean, _proj, register
from .losses import IGNORE_INDEX, masked_mse


@register("late")
class LateFusion(FusionModel):
    """Late fusion of unimodal experts, the baseline: one linear classifier (and valence head) per
    modality on its (mean-pooled) input. Each expert is trained on its own (the loss is the mean of
    the experts' losses), and at inference their log-probabilities are averaged over the present
    modalities (a product of experts). Why not average jointly trained logits: that is a single
    linear model on the concatenation, i.e. linear early fusion, not fusion of unimodal experts."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__(config)
        dims = config.dim_map
        self.drop = nn.Dropout(config.dropout)
        self.cls = nn.ModuleDict({m: nn.Linear(dims[m], config.n_classes) for m in self.modalities})
        self.val = (nn.ModuleDict({m: nn.Linear(dims[m], 1) for m in self.modalities})
                    if config.regression else None)

    def forward(self, inputs: Mapping[str, Tensor], mask: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        p = self._prepare(inputs, mask)
        batch, ref, present, vec = p.batch, p.ref, p.present, p.vectors()
        n_out = self.config.n_classes + (1 if self.val is not None else 0)
        out: dict[str, Tensor] = {}
        terms = []
        for m, flag in present.items():
            x = self.drop(vec[m])
            logits = self.cls[m](x)
            y = torch.log_softmax(logits, dim=-1)
            out[f"logits.{m}"], out[f"present.{m}"] = logits, flag
            if self.val is not None:
                out[f"valence.{m}"] = self.val[m](x).squeeze(-1)
                y = torch.cat([y, out[f"valence.{m}"][:, None]], dim=1)
            terms.append((y, flag))
        mean, _ = _masked_mean(terms, ref.new_zeros(batch, n_out))
        out["logits"] = mean[:, : self.config.n_classes]
        if self.val is not None:
            out["valence"] = mean[:, -1]
        return out

    def loss(self, out: dict[str, Tensor], target: dict[str, Tensor],
             index: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        """Mean over the experts of each one's own loss (class loss, plus ``regression_weight`` * MSE)
        on the samples where its modality is present."""
        label, valence = self._targets(out, target)
        total, parts = out["logits"].sum() * 0.0, {}
        mods = [m for m in self.modalities if f"present.{m}" in out]
        for m in mods:
            flag = out[f"present.{m}"]
            if label is not None:
                lm = self._class_loss(out[f"logits.{m}"], label.masked_fill(~flag, IGNORE_INDEX))
                total = total + lm
                parts[f"{self.loss_name}.{m}"] = float(lm.detach())
            if self.config.regression and valence is not None:
                reg = masked_mse(out[f"valence.{m}"], torch.where(flag, valence, torch.nan))
                total = total + self.config.regression_weight * reg
                parts[f"mse.{m}"] = float(reg.detach())
        return total / max(len(mods), 1), parts


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
        p = self._prepare(inputs, mask)
        batch, ref, present, vec = p.batch, p.ref, p.present, p.vectors()
        parts = []
        for m in self.modalities:
            miss = self.missing[m].to(ref.dtype).expand(batch, -1)
            if m in present:
                parts.append(torch.where(present[m][:, None], self.proj[m](vec[m]), miss))
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
        p = self._prepare(inputs, mask)
        batch, ref, present, vec = p.batch, p.ref, p.present, p.vectors()
        h = self.config.hidden
        z = {m: self.proj[m](vec[m]) for m in present}
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
