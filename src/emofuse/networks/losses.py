"""Training losses shared by the fusion models (see :meth:`FusionModel.loss`).

Every function returns a scalar that stays attached to the graph even when nothing in the batch
contributes (all labels ignored, no positive pair): the result is then ``0 * input.sum()``, so a
training loop can always call ``backward()`` on it.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["IGNORE_INDEX", "focal_loss", "masked_l1", "masked_mse", "sentiment_bins", "supcon_loss"]

#: label value meaning "no class label for this sample" (as in ``torch.nn.CrossEntropyLoss``)
IGNORE_INDEX = -100


def _zero(x: Tensor) -> Tensor:
    return x.sum() * 0.0


def focal_loss(logits: Tensor, target: Tensor, gamma: float = 2.0, weight: Tensor | None = None,
               ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Multi-class focal loss (Lin et al. 2017): ``-w_y (1 - p_y)^gamma log p_y``.

    Averaged like ``F.cross_entropy``: divided by the summed class weights of the counted samples,
    so ``gamma=0`` is exactly cross-entropy (with the same ``weight``/``ignore_index``).
    """
    if logits.dim() != 2 or target.shape != logits.shape[:1]:
        raise ValueError(f"focal_loss expects logits [B, C] and target [B], got {tuple(logits.shape)} "
                         f"and {tuple(target.shape)}")
    valid = target != ignore_index
    if not bool(valid.any()):
        return _zero(logits)
    logits, target = logits[valid], target[valid].long()
    logp = F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
    w = weight.to(logits)[target] if weight is not None else torch.ones_like(logp)
    # (1 - p)^gamma with gamma=0 must be 1 even where p == 1 (0**0), which torch.pow gives
    mod = (1.0 - logp.exp()).clamp(min=0.0).pow(gamma)
    return -(w * mod * logp).sum() / w.sum()


def supcon_loss(z: Tensor, groups: Tensor, temperature: float = 0.1,
                ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, the "L_out" form).

    ``z`` [N, d] is L2-normalised here. For an anchor ``i``, positives are the other samples with the
    same ``groups`` id (class, or sentiment bin for regression-only targets - ids, never raw
    continuous labels, which would almost never be equal); the denominator runs over all other
    counted samples. Samples whose group is ``ignore_index`` take no part; anchors without a
    positive are skipped; with no positive pair at all the loss is 0 (still differentiable).
    """
    if z.dim() != 2 or groups.shape != z.shape[:1]:
        raise ValueError(f"supcon_loss expects z [N, d] and groups [N], got {tuple(z.shape)} "
                         f"and {tuple(groups.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    keep = groups != ignore_index
    z, groups = z[keep], groups[keep]
    n = z.shape[0]
    if n < 2:
        return _zero(z)
    z = F.normalize(z, dim=1)
    sim = z @ z.T / temperature
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    # the anchor itself is excluded from the denominator (finite fill so exp() gives an exact 0)
    sim = sim.masked_fill(self_mask, torch.finfo(sim.dtype).min)
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    pos = (groups[:, None] == groups[None, :]) & ~self_mask
    n_pos = pos.sum(1)
    anchors = n_pos > 0
    if not bool(anchors.any()):
        return _zero(z)
    per_anchor = -(log_prob * pos).sum(1)[anchors] / n_pos[anchors]
    return per_anchor.mean()


def sentiment_bins(valence: Tensor) -> Tensor:
    """Sentiment bin ids for contrastive positives on regression-only targets: 0 negative,
    1 neutral (exactly 0), 2 positive; NaN -> ``IGNORE_INDEX``. Sign-based, so independent of the
    corpus's scale ([-1, 1] valence or [-3, 3] sentiment)."""
    bins = (torch.sign(torch.nan_to_num(valence)) + 1).long()
    return bins.masked_fill(torch.isnan(valence), IGNORE_INDEX)


def masked_mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over the non-NaN targets (0 with grad when there are none)."""
    ok = ~torch.isnan(target)
    if not bool(ok.any()):
        return _zero(pred)
    return F.mse_loss(pred[ok], target[ok].to(pred))


def masked_l1(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """(Weighted) mean absolute error over the non-NaN targets (0 with grad when there are none)."""
    ok = ~torch.isnan(target)
    if not bool(ok.any()):
        return _zero(pred)
    err = (pred[ok] - target[ok].to(pred)).abs()
    if weight is not None:
        err = err * weight[ok]
    return err.mean()
