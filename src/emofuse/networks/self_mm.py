"""Self-MM (Yu et al. 2021, "Learning Modality-Specific Representations with Self-Supervised
Multi-Task Learning for Multimodal Sentiment Analysis"): a multimodal head plus one head per
modality, whose regression labels are generated from the multimodal label (label generation
module, LGM) through the features' relative distances to positive / negative feature centres.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from .base import FusionConfig, FusionModel, _pool, _proj, register
from .losses import IGNORE_INDEX, masked_l1

__all__ = ["SelfMM", "SelfMMLabels", "generate_unimodal_labels"]

_EPS = 1e-8


def _relative_distance(f: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
    """(d_neg - d_pos) / d_pos: > 0 when ``f`` is nearer the positive centre, in units of d_pos."""
    d_pos = torch.linalg.vector_norm(f - pos, dim=-1)
    d_neg = torch.linalg.vector_norm(f - neg, dim=-1)
    return (d_neg - d_pos) / (d_pos + _EPS)


def generate_unimodal_labels(f_fusion: Tensor, f_uni: Tensor, fusion_centres: tuple[Tensor, Tensor],
                             uni_centres: tuple[Tensor, Tensor], y_m: Tensor, y_prev: Tensor,
                             epoch: int, bound: float) -> Tensor:
    """One LGM step (Self-MM Eq. 7-9, as in the reference trainer).

    With relative distances delta_f (fusion feature) and delta_s (unimodal feature) to their
    modality's (positive, negative) centres, the new label is
    ``y_s = 0.5 * (delta_s / delta_f) * y_m + 0.5 * (y_m + delta_s - delta_f)``, clamped to
    ``[-bound, bound]``: a unimodal feature relatively nearer the positive centre than the fusion
    feature gets a more positive label. It is blended into the previous label with the paper's
    momentum, ``(n - 1) / (n + 1) * y_prev + 2 / (n + 1) * y_s`` for epoch ``n`` (1-based).
    """
    delta_f = _relative_distance(f_fusion, *fusion_centres)
    delta_s = _relative_distance(f_uni, *uni_centres)
    alpha = delta_s / (delta_f + _EPS)
    new = (0.5 * alpha * y_m + 0.5 * (y_m + delta_s - delta_f)).clamp(-bound, bound)
    n = float(epoch)
    return (n - 1) / (n + 1) * y_prev + 2 / (n + 1) * new


class SelfMMLabels:
    """Self-MM's per-training-sample memory: features, generated labels and feature centres.

    Kept out of the module's ``state_dict`` on purpose: it is training state sized by the training
    set, and a trained checkpoint must load into a freshly built model. Only samples with a
    valence target take part; a unimodal feature is stored only where its modality was present.
    """

    def __init__(self, n_train: int, modalities: tuple[str, ...], dim: int, bound: float | None = None) -> None:
        self.keys = ("fusion", *modalities)
        self.feat = {k: torch.zeros(n_train, dim) for k in self.keys}
        self.has = {k: torch.zeros(n_train, dtype=torch.bool) for k in self.keys}
        # "fusion" holds the multimodal label y_M; NaN = not seen yet
        self.label = {k: torch.full((n_train,), float("nan")) for k in self.keys}
        self.centres: dict[str, tuple[Tensor, Tensor] | None] = {k: None for k in self.keys}
        # the paper's H (label range): fixed when given, else taken from the multimodal labels seen
        self.fixed_bound = bound is not None
        self.bound = float(bound) if bound is not None else 0.0

    def _update_centres(self) -> None:
        for k in self.keys:
            y, ok = self.label[k], self.has[k]
            pos, neg = ok & (y > 0), ok & (y < 0)  # zero labels belong to neither (excludeZero)
            if bool(pos.any()) and bool(neg.any()):
                self.centres[k] = (self.feat[k][pos].mean(0), self.feat[k][neg].mean(0))

    def step(self, index: Tensor, y_m: Tensor, feats: Mapping[str, Tensor], present: Mapping[str, Tensor],
             epoch: int) -> None:
        """After the loss of a training batch: generate unimodal labels (from epoch 2, as the
        reference), then store the batch's features and refresh the centres."""
        ok = ~torch.isnan(y_m)
        if not bool(ok.any()):
            return
        idx, y = index[ok].cpu(), y_m[ok].detach().float().cpu()
        fresh = torch.isnan(self.label["fusion"][idx])
        for k in self.keys:  # a sample's labels all start at its multimodal label
            self.label[k][idx[fresh]] = y[fresh]
        self.label["fusion"][idx] = y
        if not self.fixed_bound:
            self.bound = max(self.bound, float(y.abs().max()))
        f_f = feats["fusion"][ok].detach().float().cpu()
        fc = self.centres["fusion"]
        for m, f in feats.items():
            if m == "fusion":
                continue
            sel = present[m][ok].cpu()
            uc = self.centres[m]
            if epoch > 1 and fc is not None and uc is not None and bool(sel.any()):
                f_m = f[ok].detach().float().cpu()
                self.label[m][idx[sel]] = generate_unimodal_labels(
                    f_f[sel], f_m[sel], fc, uc, y[sel], self.label[m][idx[sel]], epoch, self.bound)
            self.feat[m][idx[sel]] = f[ok][sel].detach().float().cpu()
            self.has[m][idx[sel]] = True
        self.feat["fusion"][idx] = f_f
        self.has["fusion"][idx] = True
        self._update_centres()


@register("self_mm")
class SelfMM(FusionModel):
    """Self-MM (self-supervised multi-task learning): per-modality encoders (per-step projection,
    masked mean) concatenated -> fusion MLP -> multimodal head, plus a unimodal head per modality
    trained on labels generated from the multimodal label via distances to positive / negative
    feature centres, updated with momentum; weighted multi-task loss.

    Regression (``target["valence"]``) is Self-MM as published: L1 on the multimodal valence +
    for each modality L1 on its generated label weighted by ``tanh(|y_s - y_M|)`` (so a modality
    agreeing with the multimodal label adds nothing, as in the paper), all times
    ``regression_weight``. Class labels: the multimodal head uses CE/focal; the unimodal heads are
    trained on the multimodal class label itself (plain multi-task learning). The LGM is not used
    for classes: it needs an ordered polarity (a positive and a negative centre, labels that can
    move up or down), and emotion classes have no order, so there is no faithful way to "shift" a
    one-hot label; inventing a class-mixing rule would not be Self-MM. Samples with only a class
    label (valence NaN) thus train the class heads only and never enter the LGM.

    At inference only ``"logits"``/``"valence"`` of the multimodal head are outputs; the other keys
    (``"logits.<m>"``, ``"valence.<m>"``, ``"feature.<m>"``, ``"feature.fusion"``,
    ``"present.<m>"``) feed :meth:`loss`.
    """

    def __init__(self, config: FusionConfig) -> None:
        super().__init__(config)
        dims, h, p = config.dim_map, config.hidden, config.dropout
        self.enc = nn.ModuleDict({m: _proj(dims[m], h, p) for m in self.modalities})
        self.fuse = nn.Sequential(nn.Dropout(p), nn.Linear(len(self.modalities) * h, h), nn.ReLU())
        self.fuse_out = nn.Sequential(nn.Linear(h, h), nn.ReLU())
        self.uni = nn.ModuleDict({m: nn.Sequential(nn.Dropout(p), nn.Linear(h, h), nn.ReLU())
                                  for m in self.modalities})
        self.uni_out = nn.ModuleDict({m: nn.Sequential(nn.Linear(h, h), nn.ReLU()) for m in self.modalities})
        self.uni_cls = nn.ModuleDict({m: nn.Linear(h, config.n_classes) for m in self.modalities})
        self.uni_val = (nn.ModuleDict({m: nn.Linear(h, 1) for m in self.modalities})
                        if config.regression else None)
        self._heads(h)
        self.labels: SelfMMLabels | None = None
        self.epoch = 1  # 1-based, as the momentum rule expects

    def forward(self, inputs: Mapping[str, Tensor], mask: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        p = self._prepare(inputs, mask)
        h = self.config.hidden
        # per-step projection, then masked mean; an absent modality pools to exact zeros
        rep = {m: _pool(self.enc[m](s), p.steps[m]) for m, s in p.seq.items()}
        zeros = p.ref.new_zeros(p.batch, h)
        f_f = self.fuse(torch.cat([rep.get(m, zeros) for m in self.modalities], dim=1))
        out = self._out(self.fuse_out(f_f))
        out["feature.fusion"] = f_f
        for m, r in rep.items():
            f_m = self.uni[m](r)
            u = self.uni_out[m](f_m)
            out[f"feature.{m}"] = f_m
            out[f"logits.{m}"] = self.uni_cls[m](u)
            if self.uni_val is not None:
                out[f"valence.{m}"] = self.uni_val[m](u).squeeze(-1)
            out[f"present.{m}"] = p.present[m]
        return out

    def begin_training(self, n_train: int) -> None:
        """Allocate the per-sample feature / label memory for ``n_train`` training rows."""
        if n_train < 1:
            raise ValueError(f"n_train must be >= 1, got {n_train}")
        self.labels = SelfMMLabels(n_train, self.modalities, self.config.hidden, self.config.label_bound)
        self.epoch = 1

    def end_epoch(self, epoch: int) -> None:
        """Advance the momentum schedule (counted here, so 0- or 1-based ``epoch`` both work)."""
        self.epoch += 1

    def loss(self, out: dict[str, Tensor], target: dict[str, Tensor],
             index: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        """Weighted multi-task loss. With ``index`` (training) the generated unimodal labels are
        used and then updated (after the loss, as the reference trainer); without it (validation)
        only the multimodal losses and the unimodal class losses are computed."""
        label, valence = self._targets(out, target)
        mods = [m for m in self.modalities if f"present.{m}" in out]
        total = self._class_loss(out["logits"], label)
        parts = {self.loss_name: float(total.detach())}
        if label is not None:
            for m in mods:  # unimodal class heads learn the multimodal label where m is present
                lab = label.masked_fill(~out[f"present.{m}"], IGNORE_INDEX)
                lm = self._class_loss(out[f"logits.{m}"], lab)
                total = total + lm
                parts[f"{self.loss_name}.{m}"] = float(lm.detach())
        if not (self.config.regression and valence is not None):
            return total, parts
        reg = masked_l1(out["valence"], valence)
        parts["l1"] = float(reg.detach())
        if index is not None:
            if self.labels is None:
                raise RuntimeError("self_mm: call begin_training(n_train) before the first training loss")
            idx = index.long().cpu()
            for m in mods:
                y_s = self.labels.label[m][idx].to(valence)
                # NaN where there is no multimodal target or m is absent: masked_l1 skips those
                y_s = torch.where(out[f"present.{m}"] & ~torch.isnan(valence), y_s, torch.nan)
                w = torch.tanh((y_s - valence).abs())
                lm = masked_l1(out[f"valence.{m}"], y_s, weight=w)
                reg = reg + lm
                parts[f"l1.{m}"] = float(lm.detach())
            self.labels.step(idx, valence, {k[len("feature."):]: v for k, v in out.items()
                                            if k.startswith("feature.")},
                             {m: out[f"present.{m}"] for m in mods}, self.epoch)
        return total + self.config.regression_weight * reg, parts
