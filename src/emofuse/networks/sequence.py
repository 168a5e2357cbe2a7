"""Sequence fusion models: ``transformer_gate``, ``talking_heads`` and ``mult``.

All attention here is hand-written (not ``nn.MultiheadAttention``) so that padding masks, the
talking-heads mixing and "absent source" gating behave the same in training and eval (PyTorch's
eval fast path treats padded positions differently). Vectors enter as length-1 sequences.
Padding never leaks: padded keys get an exactly-zero attention weight, and pooling is a masked mean
over valid steps, so a padded batch gives the outputs of its samples run alone.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from .base import FusionConfig, FusionModel, Prepared, _masked_mean, _pool, register
from .losses import IGNORE_INDEX, sentiment_bins, supcon_loss

__all__ = ["Attention", "Block", "MulT", "TalkingHeadsFusion", "TransformerGateFusion", "sinusoid"]


def sinusoid(t: int, d: int, like: Tensor) -> Tensor:
    """Sinusoidal position encodings [t, d] (Vaswani et al.); parameter-free, any length."""
    pos = torch.arange(t, dtype=like.dtype, device=like.device)[:, None]
    freq = torch.exp(torch.arange(0, d, 2, dtype=like.dtype, device=like.device) * (-math.log(10000.0) / d))
    pe = torch.zeros(t, d, dtype=like.dtype, device=like.device)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : d // 2]
    return pe


def _check_heads(config: FusionConfig) -> None:
    if config.hidden % config.heads:
        raise ValueError(f"hidden ({config.hidden}) must be a multiple of heads ({config.heads})")


class Attention(nn.Module):
    """Multi-head attention with a key padding mask, optionally with talking heads and a null key.

    Talking heads (Shazeer et al. 2020): the attention logits are mixed across heads by a learned
    [H, H] matrix before the softmax, and the attention weights by another one after it (both start
    at the identity, i.e. as ordinary multi-head attention). ``null_kv`` adds one learned key/value
    pair every query can attend to (like ``add_bias_kv`` in fairseq/MulT): the softmax then never runs
    over a single key, so for a length-1 source (an utterance vector) the weights are not trivially
    1, the logit mixing still receives gradient and a query can choose to take "nothing" from the
    source. Its value starts at zero.
    """

    def __init__(self, d: int, heads: int, dropout: float, talking: bool = False, null_kv: bool = False) -> None:
        super().__init__()
        self.heads, self.dh = heads, d // heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.drop = nn.Dropout(dropout)
        self.mix_logits = nn.Parameter(torch.eye(heads)) if talking else None
        self.mix_weights = nn.Parameter(torch.eye(heads)) if talking else None
        self.null_k = nn.Parameter(0.02 * torch.randn(d)) if null_kv else None
        self.null_v = nn.Parameter(torch.zeros(d)) if null_kv else None

    def _split(self, x: Tensor) -> Tensor:  # [B, T, d] -> [B, H, T, dh]
        return x.view(x.shape[0], x.shape[1], self.heads, self.dh).transpose(1, 2)

    def forward(self, x: Tensor, ctx: Tensor, kmask: Tensor) -> Tensor:
        """``x`` [B, Tq, d] queries, ``ctx`` [B, Tk, d] keys/values, ``kmask`` bool[B, Tk] valid keys."""
        q, k, v = self._split(self.q(x)), self._split(self.k(ctx)), self._split(self.v(ctx))
        if self.null_k is not None and self.null_v is not None:
            b = x.shape[0]
            k = torch.cat([self.null_k.view(1, self.heads, 1, self.dh).expand(b, -1, -1, -1), k], dim=2)
            v = torch.cat([self.null_v.view(1, self.heads, 1, self.dh).expand(b, -1, -1, -1), v], dim=2)
            kmask = torch.cat([kmask.new_ones(b, 1), kmask], dim=1)
        logits = q @ k.transpose(-1, -2) / math.sqrt(self.dh)  # [B, H, Tq, Tk]
        if self.mix_logits is not None:
            logits = torch.einsum("gh,bhqk->bgqk", self.mix_logits, logits)
        # a finite fill: padded keys get exactly 0 weight, and a row with no valid key (absent
        # modality, result discarded by the caller) stays finite instead of 0/0
        logits = logits.masked_fill(~kmask[:, None, None, :], torch.finfo(logits.dtype).min)
        w = torch.softmax(logits, dim=-1)
        if self.mix_weights is not None:  # padded keys are 0 in every head, so they stay 0
            w = torch.einsum("gh,bhqk->bgqk", self.mix_weights, w)
        out = self.drop(w) @ v
        return self.o(out.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))


class Block(nn.Module):
    """Pre-LayerNorm Transformer block: (cross-)attention + feed-forward, both residual.

    Cross-attention blocks layer-normalise the source too (as MulT). ``gate`` (float[B], 0/1)
    multiplies the attention term, and ``ctx=None`` drops it: with an absent source the block is
    the identity plus its feed-forward, exactly as if the source did not exist.
    """

    def __init__(self, d: int, heads: int, dropout: float, cross: bool = False, talking: bool = False,
                 null_kv: bool = False) -> None:
        super().__init__()
        self.ln_q = nn.LayerNorm(d)
        self.ln_kv = nn.LayerNorm(d) if cross else None
        self.attn = Attention(d, heads, dropout, talking=talking, null_kv=null_kv)
        self.ln_ff = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * d, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, xmask: Tensor, ctx: Tensor | None = None, cmask: Tensor | None = None,
                gate: Tensor | None = None) -> Tensor:
        q = self.ln_q(x)
        if self.ln_kv is None:
            x = x + self.drop(self.attn(q, q, xmask))
        elif ctx is not None and cmask is not None:
            a = self.drop(self.attn(q, self.ln_kv(ctx), cmask))
            x = x + (a if gate is None else a * gate[:, None, None].to(a.dtype))
        return x + self.drop(self.ff(self.ln_ff(x)))


class _Embed(nn.Module):
    """Per-step linear projection + sinusoidal positions + dropout."""

    def __init__(self, d_in: int, d: int, dropout: float) -> None:
        super().__init__()
        self.lin = nn.Linear(d_in, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        h = self.lin(x)
        return self.drop(h + sinusoid(h.shape[1], h.shape[2], h))


@register("transformer_gate")
class TransformerGateFusion(FusionModel):
    """Transformer streams with attention-guided gated fusion (facial-AU + MFCC paper): one small
    Transformer encoder per modality over its sequence, masked-mean pooled to z_m; a learned score
    per modality, softmax over the present ones only, weights a sigmoid-gated z_m; MLP -> heads.
    Trained with focal loss by default."""

    default_loss = "focal"

    def __init__(self, config: FusionConfig) -> None:
        super().__init__(config)
        _check_heads(config)
        dims, h, p = config.dim_map, config.hidden, config.dropout
        self.embed = nn.ModuleDict({m: _Embed(dims[m], h, p) for m in self.modalities})
        self.enc = nn.ModuleDict({m: nn.ModuleList([Block(h, config.heads, p) for _ in range(config.layers)])
                                  for m in self.modalities})
        self.ln = nn.ModuleDict({m: nn.LayerNorm(h) for m in self.modalities})
        self.score = nn.ModuleDict({m: nn.Sequential(nn.Linear(h, h), nn.Tanh(), nn.Linear(h, 1))
                                    for m in self.modalities})
        self.gate = nn.ModuleDict({m: nn.Linear(h, h) for m in self.modalities})
        self.mlp = nn.Sequential(nn.Linear(h, h), nn.GELU(), nn.Dropout(p))
        self._heads(h)

    def forward(self, inputs: Mapping[str, Tensor], mask: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        p = self._prepare(inputs, mask)
        names = list(p.present)
        z, scores = [], []
        for m in names:
            x = self.embed[m](p.seq[m])
            for blk in self.enc[m]:
                x = blk(x, p.steps[m])
            zm = _pool(self.ln[m](x), p.steps[m])
            z.append(torch.sigmoid(self.gate[m](zm)) * zm)
            scores.append(self.score[m](zm))
        pres = torch.stack([p.present[m] for m in names], dim=1)  # [B, M]
        s = torch.cat(scores, dim=1).masked_fill(~pres, torch.finfo(p.ref.dtype).min)
        # softmax over present modalities only; a sample with none present gets all-zero weights
        alpha = torch.softmax(s, dim=1) * pres.to(s.dtype)
        fused = (alpha[..., None] * torch.stack(z, dim=1)).sum(1)
        return self._out(self.mlp(fused))


@register("talking_heads")
class TalkingHeadsFusion(FusionModel):
    """Contrastive talking-heads fusion: per modality pair, bidirectional cross-modal attention
    (a <- b and b <- a) with talking-heads mixing and a learned null key, pooled per direction and
    fused per pair; pair features are averaged over present pairs and joined with the mean of the
    pooled unimodal streams; MLP -> heads. ``loss`` adds ``contrastive_weight`` * supervised
    contrastive loss on a projection of the fused embedding (positives: same class; samples with
    only a valence target: same sentiment bin)."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__(config)
        _check_heads(config)
        dims, h, p = config.dim_map, config.hidden, config.dropout
        self.pairs = list(itertools.combinations(self.modalities, 2))
        self.embed = nn.ModuleDict({m: _Embed(dims[m], h, p) for m in self.modalities})
        self.cross = nn.ModuleDict({
            f"{a}__{b}": nn.ModuleList([Block(h, config.heads, p, cross=True, talking=True, null_kv=True)
                                        for _ in range(config.layers)])
            for x, y in self.pairs for a, b in ((x, y), (y, x))})
        self.pair = nn.ModuleDict({f"{a}__{b}": nn.Sequential(nn.Linear(2 * h, h), nn.GELU(), nn.Dropout(p))
                                   for a, b in self.pairs})
        self.mlp = nn.Sequential(nn.Linear(2 * h, h), nn.GELU(), nn.Dropout(p))
        self.project = nn.Sequential(nn.Linear(h, h), nn.GELU(), nn.Linear(h, h))
        self._heads(h)

    def _direction(self, p: Prepared, x: dict[str, Tensor], a: str, b: str) -> Tensor:
        y = x[a]
        for blk in self.cross[f"{a}__{b}"]:
            y = blk(y, p.steps[a], x[b], p.steps[b])
        return _pool(y, p.steps[a])

    def forward(self, inputs: Mapping[str, Tensor], mask: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        p = self._prepare(inputs, mask)
        h = self.config.hidden
        x = {m: self.embed[m](s) for m, s in p.seq.items()}
        like = p.ref.new_zeros(p.batch, h)
        terms = []
        for a, b in self.pairs:
            if a in x and b in x:
                rep = self.pair[f"{a}__{b}"](torch.cat([self._direction(p, x, a, b),
                                                         self._direction(p, x, b, a)], dim=1))
                terms.append((rep, p.present[a] & p.present[b]))
        pair_mean, _ = _masked_mean(terms, like)
        uni_mean, _ = _masked_mean([(_pool(x[m], p.steps[m]), p.present[m]) for m in x], like)
        fused = self.mlp(torch.cat([pair_mean, uni_mean], dim=1))
        out = self._out(fused)
        out["embedding"] = self.project(fused)
        return out

    def loss(self, out: dict[str, Tensor], target: dict[str, Tensor],
             index: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        total, parts = super().loss(out, target, index)
        label, valence = self._targets(out, target)
        b = out["logits"].shape[0]
        groups = torch.full((b,), IGNORE_INDEX, dtype=torch.long, device=out["logits"].device)
        if valence is not None and self.config.regression:
            # bins live after the class ids, so a bin never matches a class
            bins = sentiment_bins(valence)
            groups = torch.where(bins != IGNORE_INDEX, bins + self.config.n_classes, groups)
        if label is not None:
            groups = torch.where(label != IGNORE_INDEX, label.long(), groups)  # class wins over bin
        con = supcon_loss(out["embedding"], groups, temperature=self.config.temperature)
        parts["supcon"] = float(con.detach())
        return total + self.config.contrastive_weight * con, parts


@register("mult")
class MulT(FusionModel):
    """Multimodal Transformer (Tsai et al. 2019): for each target modality, directional cross-modal
    Transformers from every other modality into it, concatenated and passed through a
    self-attention Transformer, masked-mean pooled (the paper takes the last step; the mean is
    robust to padding); targets concatenated -> residual MLP -> heads. A cross stream from an absent
    source adds no attention term (its stream is the target's own, feed-forward only); an absent
    target contributes zeros. With a single configured modality the target's own stream is used."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__(config)
        _check_heads(config)
        dims, h, p, nh, nl = config.dim_map, config.hidden, config.dropout, config.heads, config.layers
        self.sources = {t: [s for s in self.modalities if s != t] for t in self.modalities}
        self.embed = nn.ModuleDict({m: _Embed(dims[m], h, p) for m in self.modalities})
        self.cross = nn.ModuleDict({f"{s}__{t}": nn.ModuleList([Block(h, nh, p, cross=True) for _ in range(nl)])
                                    for t in self.modalities for s in self.sources[t]})
        self.mem_dim = h * max(1, len(self.modalities) - 1)
        self.mem = nn.ModuleDict({t: nn.ModuleList([Block(self.mem_dim, nh, p) for _ in range(nl)])
                                  for t in self.modalities})
        self.ln = nn.ModuleDict({t: nn.LayerNorm(self.mem_dim) for t in self.modalities})
        d = self.mem_dim * len(self.modalities)
        self.res = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Dropout(p), nn.Linear(d, d))
        self._heads(d)

    def forward(self, inputs: Mapping[str, Tensor], mask: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        p = self._prepare(inputs, mask)
        x = {m: self.embed[m](s) for m, s in p.seq.items()}
        feats = []
        for t in self.modalities:
            if t not in x:
                feats.append(p.ref.new_zeros(p.batch, self.mem_dim))
                continue
            streams = []
            for s in self.sources[t]:
                y = x[t]
                for blk in self.cross[f"{s}__{t}"]:
                    if s in x:
                        y = blk(y, p.steps[t], x[s], p.steps[s], gate=p.present[s])
                    else:
                        y = blk(y, p.steps[t])
                streams.append(y)
            y = torch.cat(streams, dim=2) if streams else x[t]
            for blk in self.mem[t]:
                y = blk(y, p.steps[t])
            feats.append(_pool(self.ln[t](y), p.steps[t]))  # zeros for samples where t is absent
        z = torch.cat(feats, dim=1)
        return self._out(z + self.res(z))
