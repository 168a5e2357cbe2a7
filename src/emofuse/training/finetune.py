"""Fine-tuning the MiniLM text encoder for emotion: LoRA adapters + a linear head, resumable.

A ``[finetune]`` run (``emofuse train configs/finetune_text_minilm_l6.toml --save PATH``):

* **Model.** all-MiniLM-L6-v2 as :func:`emofuse.features.text._torch_minilm` builds it (the module the
  analysis graph is exported from), its linear layers wrapped in low-rank adapters (LoRA: ``W + (alpha / r)
  B A``, ``B`` initialised to zero so training starts from the frozen encoder), then a linear layer over
  the L2-normalised mean-pooled embedding. Only the adapters and the head train. Why LoRA and not full
  fine-tuning: the adapters of rank 16 are ~1.3 MB in fp16 and ship in the repository; merged into the
  package's weights at set-up they give an ordinary MiniLM graph (``minilm-l6-emo``) with no run-time cost.
  (LoRA written here, ~20 lines, rather than ``peft``: peft wraps ``transformers`` models and pulls
  ``accelerate``; this module is a plain torch one and the merge is one matrix product.)
* **Data and selection.** The labelled items of ``data.corpora``; their official ``train`` split minus a
  selection part carved as the protocols carve (``protocol.params``: whole MELD dialogues, a stratified
  share of GoEmotions) is trained on; the epoch kept is the one with the best selection score (the mean over
  corpora of ``select``'s metric, on the carved part). The ``dev`` / ``val`` split is scored once, with the
  kept adapters: a **validation** figure (no test split is here).
* **Valence / arousal.** ``regress = {emobank = ["valence", "arousal"], ...}`` adds a linear V/A head on the
  same embedding, trained jointly (squared error on the values a corpus has, over that corpus's variance, so
  that narrow and wide scales weigh alike; weighted ``regress_weight``)
  on those corpora's ``train`` split minus a selection part (whole ``regress_group`` values, e.g. MOSI videos);
  their Pearson r on it joins the selection score.
* **Shipped head.** ``--save X.lora.safetensors`` writes the adapters there and the network's own heads as an
  ``emofuse-head/1`` file ``X.safetensors`` for the extractor of the merged encoder (mean 0, scale 1: the
  heads read the L2-normalised embedding), its logits divided by a temperature fitted on the selection part.
* **Loss.** Cross-entropy with class weights ``(n / (K n_c)) ** class_weight_power`` (0: plain, 1: fully
  balanced) or focal loss (``gamma``), label smoothing optional.
* **Context.** ``context = k`` prepends the previous ``k`` utterances of the same dialogue (MELD's
  ``extra["dialogue"]`` / ``["utterance"]``), tokenised by :func:`emofuse.features.text.context_ids`
  (oldest turns cut first), the same function the analysis uses on an input's earlier segments.
* **Encoders.** ``encoder = "minilm-l6"`` (22 M parameters, the shipped expert) or ``"mpnet-base"``
  (all-mpnet-base-v2, 110 M, :func:`emofuse.features.text._torch_mpnet`): ~5x the cost, no analysis
  extractor, so it serves as a **teacher**: ``teacher = "runs/NAME"`` (a finished run's folder) makes a run
  distil it, the loss ``(1 - distill_weight) CE + distill_weight T^2 KL(teacher_T || student_T)`` on the
  rows with a class, the teacher's logits computed once (``out/teacher_logits.npy``).
* **Precision.** ``precision = "bf16"`` trains under CPU bf16 autocast (about 3x faster a step on cores with
  AVX-512 BF16); selection, dev scores and the shipped graph stay fp32.
* **Resumable.** ``out/checkpoint.pt`` (adapters, head, optimiser, schedule, position, history) is written
  every ``checkpoint_every`` steps and at each epoch's end; ``emofuse train ... --resume`` continues from it
  (the batch order of an epoch is seeded, so a resumed run sees what an uninterrupted one would).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..corpora import Item, item_key
from ..errors import InputError
from .resumable import RunState, checkpoint_path, write_checkpoint
from ..taxonomy import EMOTIONS

__all__ = ["FinetuneOptions", "LORA_FORMAT", "run_finetune"]

LORA_FORMAT = "emofuse-lora/1"
LOSSES = ("ce", "focal")
# the linear layers of one BERT layer of _torch_minilm, by attribute name
TARGETS = ("q", "k", "v", "o", "up", "down")
ENCODERS = ("minilm-l6", "mpnet-base")
PRECISIONS = ("fp32", "bf16")
VA = ("valence", "arousal")


@dataclass(frozen=True)
class FinetuneOptions:
    encoder: str = "minilm-l6"
    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.1  # on the adapter input
    targets: tuple[str, ...] = TARGETS
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup: float = 0.06  # share of the steps with a linear warm-up, then linear decay to 0
    epochs: int = 3
    batch_size: int = 32
    max_tokens: int = 64
    loss: str = "ce"
    class_weight_power: float = 0.5
    gamma: float = 2.0  # focal loss
    label_smoothing: float = 0.0
    context: int = 0  # previous utterances of the same dialogue prepended
    per_epoch: tuple[tuple[str, int], ...] = ()  # (corpus, n): a fresh seeded subsample of n items each epoch
    select: tuple[tuple[str, str], ...] = (("meld", "weighted_f1"), ("goemotions", "macro_f1"))
    regress: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (corpus, ("valence", "arousal")): a joint V/A head
    regress_weight: float = 1.0
    regress_group: str = "video"  # the extra field whose values the V/A selection part holds out whole
    checkpoint_every: int = 100  # steps
    threads: int = 2
    precision: str = "bf16"  # of the training steps; evaluation is fp32
    teacher: str = ""  # a finished fine-tuning run's folder to distil (its best.safetensors + results.json)
    distill_weight: float = 0.5
    distill_temperature: float = 2.0

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise InputError(f"finetune.encoder: one of {ENCODERS}, not {self.encoder!r}")
        if self.precision not in PRECISIONS:
            raise InputError(f"finetune.precision: one of {PRECISIONS}, not {self.precision!r}")
        if not (0 <= self.distill_weight <= 1 and self.distill_temperature > 0):
            raise InputError("finetune: distill_weight in [0, 1] and distill_temperature > 0")
        if self.rank < 1 or self.alpha <= 0:
            raise InputError("finetune.rank must be >= 1 and finetune.alpha > 0")
        if bad := [t for t in self.targets if t not in TARGETS]:
            raise InputError(f"finetune.targets: unknown {bad}; known: {', '.join(TARGETS)}")
        if self.loss not in LOSSES:
            raise InputError(f"finetune.loss: must be one of {LOSSES}, not {self.loss!r}")
        for name in ("epochs", "batch_size", "max_tokens", "checkpoint_every", "threads"):
            if getattr(self, name) < 1:
                raise InputError(f"finetune.{name}: must be >= 1, not {getattr(self, name)!r}")
        if not (self.lr > 0 and 0 <= self.warmup < 1 and 0 <= self.label_smoothing < 1 and self.context >= 0
                and 0 <= self.dropout < 1):
            raise InputError("finetune: lr > 0, warmup and label_smoothing in [0, 1), dropout in [0, 1), context >= 0")
        from .config import CLASS_METRICS

        for corpus, dims in self.regress:
            if not dims or (bad := [d for d in dims if d not in VA]):
                raise InputError(f"finetune.regress.{corpus}: a list of {VA}, not {list(dims)!r}")
        if self.regress_weight < 0:
            raise InputError(f"finetune.regress_weight: must be >= 0, not {self.regress_weight!r}")

        for corpus, metric in self.select:
            if metric not in CLASS_METRICS:
                raise InputError(f"finetune.select.{corpus}: must be one of {CLASS_METRICS}, not {metric!r}")


# ------------------------------------------------------------------------------------------------ model


def _lora_module(torch: Any, opts: FinetuneOptions, n_classes: int) -> Any:
    """The MiniLM of the package with LoRA-wrapped linear layers, a classification head and (with
    ``opts.regress``) a valence / arousal head; ``forward`` gives the logits, ``both`` (logits, V/A)."""
    from safetensors.torch import load_file

    from ..features.text import _torch_minilm, _torch_mpnet
    from ..store import resolve

    nn = torch.nn
    build = _torch_mpnet if opts.encoder == "mpnet-base" else _torch_minilm
    base = build(torch, load_file(str(resolve(opts.encoder) / "model.safetensors")))
    for p in base.parameters():
        p.requires_grad_(False)

    class LoRA(nn.Module):
        def __init__(self, lin: Any) -> None:
            super().__init__()
            self.base = lin
            self.A = nn.Parameter(torch.empty(opts.rank, lin.in_features))
            self.B = nn.Parameter(torch.zeros(lin.out_features, opts.rank))
            nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
            self.drop = nn.Dropout(opts.dropout)
            self.scale = opts.alpha / opts.rank

        def forward(self, x: Any) -> Any:
            return self.base(x) + (self.drop(x) @ self.A.T @ self.B.T) * self.scale

    for layer in base.layers:
        for t in opts.targets:
            setattr(layer, t, LoRA(getattr(layer, t)))

    class Classifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = base
            self.head = nn.Linear(base.word.shape[1], n_classes)
            self.va = nn.Linear(base.word.shape[1], 2) if opts.regress else None

        def forward(self, ids: Any, mask: Any) -> Any:
            return self.head(self.encoder(ids, mask))

        def both(self, ids: Any, mask: Any) -> tuple[Any, Any]:
            z = self.encoder(ids, mask)
            return self.head(z), (self.va(z) if self.va is not None else None)

    return Classifier()


def adapter_tensors(model: Any) -> dict[str, Any]:
    """The trainable tensors by stable names: ``layers.{i}.{target}.A`` / ``.B``, ``head.weight`` / ``.bias``,
    ``va.weight`` / ``.bias``."""
    out = {}
    for i, layer in enumerate(model.encoder.layers):
        for t in TARGETS:
            m = getattr(layer, t)
            if hasattr(m, "A"):
                out[f"layers.{i}.{t}.A"] = m.A.detach().clone()
                out[f"layers.{i}.{t}.B"] = m.B.detach().clone()
    out["head.weight"] = model.head.weight.detach().clone()
    out["head.bias"] = model.head.bias.detach().clone()
    if model.va is not None:
        out["va.weight"] = model.va.weight.detach().clone()
        out["va.bias"] = model.va.bias.detach().clone()
    return out


# ------------------------------------------------------------------------------------------------ data


def turns_of(items: Sequence[Item], context: int, pool: Sequence[Item] = ()) -> list[tuple[list[str], str]]:
    """Each item's ``(previous turns, text)``: up to ``context`` earlier utterances of its dialogue (MELD's
    ``extra["dialogue"]`` / ``["utterance"]``, looked up in ``items`` + ``pool``), oldest first."""
    by_dialogue: dict[tuple[str, str | None, Any], dict[int, str]] = {}
    if context:
        for it in list(items) + list(pool):
            d, u = it.extra.get("dialogue"), it.extra.get("utterance")
            if d is not None and u is not None:
                by_dialogue.setdefault((it.corpus, it.split, d), {})[int(u)] = str(it.text or "")
    out = []
    for it in items:
        d, u = it.extra.get("dialogue"), it.extra.get("utterance")
        turns = by_dialogue.get((it.corpus, it.split, d), {}) if context and d is not None and u is not None else {}
        out.append(([turns[j] for j in range(int(u) - context, int(u)) if j in turns] if turns else [],
                    str(it.text or "")))
    return out


def _encode(tokenizer: Any, turns: Sequence[tuple[list[str], str]], max_tokens: int) -> list[list[int]]:
    from ..features.text import context_ids

    return [context_ids(tokenizer, prev, cur, max_tokens) for prev, cur in turns]


def _predict(torch: Any, model: Any, seqs: Sequence[list[int]], pad: int, amp: bool = False
             ) -> tuple[np.ndarray, np.ndarray]:
    """(class logits, V/A) of ``model`` in eval mode on token-id sequences, batched by length (fp32, or bf16
    autocast with ``amp``); V/A is 0 without a V/A head."""
    model.eval()
    order = np.argsort([len(s) for s in seqs])
    logits = np.zeros((len(seqs), len(EMOTIONS)), dtype=np.float32)
    va = np.zeros((len(seqs), 2), dtype=np.float32)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        for i in range(0, len(order), 128):
            b = order[i:i + 128]
            lg, v = model.both(*_pad(torch, [seqs[j] for j in b], pad))
            logits[b] = lg.float().numpy()
            if v is not None:
                va[b] = v.float().numpy()
    return logits, va


def _pad(torch: Any, seqs: Sequence[list[int]], pad: int = 0) -> tuple[Any, Any]:
    """Right-padded ids with ``pad`` (BERT's [PAD] 0, MPNet's <pad> 1) and the attention mask."""
    n = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), n), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return ids, mask


def pad_id(encoder: str) -> int:
    from ..features.text import MPNET_PAD

    return MPNET_PAD if encoder == "mpnet-base" else 0


# ------------------------------------------------------------------------------------------------ run


def _score(y: np.ndarray, pred: np.ndarray, corpus: np.ndarray, select: Sequence[tuple[str, str]],
           va: np.ndarray | None = None, va_pred: np.ndarray | None = None,
           regress: Sequence[tuple[str, Sequence[str]]] = ()) -> tuple[float, dict[str, dict[str, Any]]]:
    """(mean of the ``select`` metrics and of each regressed (corpus, dim)'s Pearson r, per-corpus figures).
    Rows with ``y < 0`` have no class; NaN in ``va`` means no value."""
    from .metrics import classification_metrics, pearson

    per: dict[str, dict[str, Any]] = {}
    has = y >= 0
    for c in sorted(set(corpus[has].tolist())):
        k = has & (corpus == c)
        per[c] = classification_metrics([EMOTIONS[i] for i in y[k]], [EMOTIONS[i] for i in pred[k]], list(EMOTIONS))
    chosen = [per[c][m] for c, m in select if c in per]
    for c, dims in regress:
        if va is None or va_pred is None:
            break
        for d in dims:
            j = VA.index(d)
            k = (corpus == c) & ~np.isnan(va[:, j])
            if k.sum() < 3:
                continue
            t, p = va[k, j], va_pred[k, j]
            nz = t != 0
            fig = {"Corr": pearson(t, p), "MAE": float(np.abs(t - p).mean()), "n": int(k.sum()),
                   "Acc2_non0": float(((p[nz] > 0) == (t[nz] > 0)).mean()) if nz.any() else float("nan")}
            per.setdefault(c, {})[d] = fig
            chosen.append(fig["Corr"])
    return (float(np.mean(chosen)) if chosen else float("nan")), per


def head_path(save: str | Path) -> Path:
    """Where ``--save X.lora.safetensors`` writes the network's own heads: ``X.safetensors``."""
    save = Path(save)
    if not save.name.endswith(".lora.safetensors"):
        raise InputError(f"--save {save}: a fine-tuning run saves adapters as NAME.lora.safetensors (its heads go "
                         "to NAME.safetensors beside them), e.g. src/emofuse/weights/text-minilm-l6-emo.lora.safetensors")
    return save.with_name(save.name[: -len(".lora.safetensors")] + ".safetensors")


def run_finetune(cfg: Any, opts: FinetuneOptions, save: str | Path | None = None, resume: bool = False,
                 progress: bool = True, stop_after_steps: int | None = None) -> dict[str, Any]:
    """Train (or resume) the adapters of ``cfg`` (a TrainConfig with a ``[finetune]`` table); returns the results.
    ``stop_after_steps``: train at most that many steps in this call, write the checkpoint and return
    ``{"stopped": True, ...}`` (continue with ``resume=True``), for runs longer than one sitting."""
    out = Path(cfg.out)
    if save is not None:
        head_path(save)  # a bad name is refused before hours of training
        if opts.encoder != "minilm-l6":
            raise InputError(f"--save: the analysis has no extractor for a fine-tuned {opts.encoder}; train "
                             f"without --save (the run keeps its adapters in {out}/best.safetensors) and use "
                             "the folder as a student run's finetune.teacher")
    if opts.teacher and not (Path(opts.teacher) / "results.json").exists():
        raise InputError(f"finetune.teacher: {opts.teacher} holds no results.json of a finished fine-tuning run")
    ckpt = checkpoint_path(out, resume)  # checked before anything heavy is imported or read
    import torch
    from tokenizers import Tokenizer

    from ..corpora import prepare
    from ..store import resolve
    from .data import labelled, subsample
    from .protocols import carve_val

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(opts.threads)
    data = labelled(cfg.data.corpora, cfg.data.root, "canonical", cfg.data.limit, cfg.seed)
    items = data.items
    train_all = sorted((it for it in items if it.split == "train"), key=item_key)  # as the protocols order them
    dev = [it for it in items if it.split in ("dev", "val")]
    if not train_all:
        raise InputError(f"{cfg.name}: no item of {list(cfg.data.corpora)} is in a 'train' split")
    params = cfg.protocol.params
    fit, sel = carve_val(train_all, np.random.default_rng([cfg.seed, 99]), params.get("val_speakers", 0.2),
                         float(params.get("val_fraction", 0.1)), params.get("val_group"))
    if not fit or not sel:
        raise InputError(f"{cfg.name}: could not carve a selection part from the training items")
    reg: list[Item] = []
    for c, dims in opts.regress:
        own = [it for it in prepare(c, cfg.data.root) if any(getattr(it, d) is not None for d in dims)]
        if not own:
            raise InputError(f"finetune.regress.{c}: corpus {c} has no {' / '.join(dims)} values")
        for split in sorted({str(it.split) for it in own}):  # per split: a limited run still has dev values
            reg.extend(subsample([it for it in own if str(it.split) == split], cfg.data.limit, cfg.seed))
    r_fit, r_sel = carve_val(sorted((it for it in reg if it.split == "train"), key=item_key),
                             np.random.default_rng([cfg.seed, 98]), 0.2, float(params.get("val_fraction", 0.1)),
                             opts.regress_group) if reg else ([], [])
    dims_of = dict(opts.regress)
    tok = Tokenizer.from_file(str(resolve(opts.encoder) / "tokenizer.json"))
    pad = pad_id(opts.encoder)
    amp = opts.precision == "bf16"

    def prepared(part: Sequence[Item]) -> tuple[list[list[int]], np.ndarray, np.ndarray, np.ndarray]:
        ids = _encode(tok, turns_of(part, opts.context, items), opts.max_tokens)
        y = np.array([EMOTIONS.index(it.label) if it.label in EMOTIONS and it.corpus not in dims_of else -1
                      for it in part], dtype=np.int64)
        va = np.array([[float(v) if (v := getattr(it, d)) is not None and d in dims_of.get(it.corpus, ()) else np.nan
                        for d in VA] for it in part], dtype=np.float32).reshape(len(part), 2)
        return ids, y, va, np.array([it.corpus for it in part])

    F_ids, F_y, F_va, F_c = prepared(list(fit) + list(r_fit))
    # each (corpus, dim)'s squared error is divided by its variance on the fitting part: EmoBank's values
    # spread 0.17, CH-SIMS's 0.69; unscaled, the corpora with wide scales would have all the gradient
    F_var = np.ones_like(F_va)
    for c in set(F_c.tolist()):
        k = F_c == c
        for j in range(2):
            if (~np.isnan(F_va[k, j])).sum() > 1:
                F_var[k, j] = max(float(np.nanvar(F_va[k, j])), 1e-4)
    S_ids, S_y, S_va, S_c = prepared(list(sel) + list(r_sel))
    n_classes = len(EMOTIONS)
    F_t = None
    if opts.teacher:  # soft targets for the rows with a class (the V/A-only rows have none)
        F_items, k = list(fit) + list(r_fit), np.flatnonzero(F_y >= 0)
        F_t = np.zeros((len(F_y), n_classes), np.float32)
        F_t[k] = _teacher_logits(torch, Path(opts.teacher), [F_items[i] for i in k], items, out)
    model = _lora_module(torch, opts, n_classes)
    trainable = [p for p in model.parameters() if p.requires_grad]
    counts = np.bincount(F_y[F_y >= 0], minlength=n_classes)
    w = (int((F_y >= 0).sum()) / (n_classes * np.maximum(counts, 1))) ** opts.class_weight_power
    weight = torch.tensor(w, dtype=torch.float32)
    per_epoch = dict(opts.per_epoch)

    def epoch_rows(epoch: int) -> np.ndarray:
        rng = np.random.default_rng([cfg.seed, 7, epoch])
        rows = []
        for c in sorted(set(F_c.tolist())):
            k = np.flatnonzero(F_c == c)
            if c in per_epoch and per_epoch[c] < len(k):
                k = rng.choice(k, per_epoch[c], replace=False)
            rows.append(k)
        return rng.permutation(np.concatenate(rows))

    steps_per_epoch = math.ceil(len(epoch_rows(0)) / opts.batch_size)
    total = steps_per_epoch * opts.epochs
    opt = torch.optim.AdamW(trainable, lr=opts.lr, weight_decay=opts.weight_decay)
    warm = max(1, int(opts.warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(  # linear warm-up, then linear decay to 0
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    st = RunState()
    if resume:
        blob = torch.load(ckpt, weights_only=False)
        if blob["options"] != asdict(opts) or blob["seed"] != cfg.seed or blob["corpora"] != list(cfg.data.corpora):
            raise InputError(f"--resume: {ckpt} was written by another configuration (options, seed or corpora "
                             "differ); delete the folder to start again")
        model.load_state_dict(blob["model"], strict=False)
        opt.load_state_dict(blob["optimizer"])
        sched.load_state_dict(blob["scheduler"])
        st = RunState(**blob["state"])
        torch.set_rng_state(blob["torch_rng"])
    out.mkdir(parents=True, exist_ok=True)

    def loss_fn(logits: Any, va_out: Any, target: Any, va: Any, var: Any, soft: Any = None) -> Any:
        F = torch.nn.functional
        logits = logits.float()
        va_out = va_out.float() if va_out is not None else None
        has = target >= 0
        loss = logits.new_zeros(())
        if bool(has.any()):
            lg, tg = logits[has], target[has]
            if opts.loss == "focal":
                logp = F.log_softmax(lg, -1)
                ce = F.nll_loss(logp, tg, weight=weight, reduction="none")
                pt = logp.gather(1, tg[:, None]).squeeze(1).exp()
                loss = ((1 - pt) ** opts.gamma * ce).sum() / weight[tg].sum()
            else:
                loss = F.cross_entropy(lg, tg, weight=weight, label_smoothing=opts.label_smoothing)
            if soft is not None:
                T = opts.distill_temperature
                kl = F.kl_div(F.log_softmax(lg / T, -1), F.log_softmax(soft[has] / T, -1), log_target=True,
                              reduction="batchmean") * T * T
                loss = (1 - opts.distill_weight) * loss + opts.distill_weight * kl
        known = ~torch.isnan(va)
        if va_out is not None and bool(known.any()):
            loss = loss + opts.regress_weight * ((va_out - torch.nan_to_num(va)) ** 2 / var)[known].mean()
        return loss

    def predict(seqs: Sequence[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        return _predict(torch, model, seqs, pad)

    def save_ckpt(best_tensors: dict[str, Any] | None = None) -> None:
        blob = {"options": asdict(opts), "seed": cfg.seed, "corpora": list(cfg.data.corpora),
                "model": {k: v for k, v in model.state_dict().items()
                          if k.endswith((".A", ".B")) or k.startswith(("head.", "va."))},
                "torch_rng": torch.get_rng_state(),
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "state": asdict(st)}
        write_checkpoint(torch, blob, ckpt)
        if best_tensors is not None:
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in best_tensors.items()}, str(out / "best.safetensors"))

    def paused(epoch: int, step: int, n_batches: int) -> dict[str, Any]:
        return {"name": cfg.name, "kind": "finetune", "stopped": True, "epoch": epoch, "step": step,
                "steps_per_epoch": n_batches, "checkpoint": str(ckpt)}

    t_start = time.perf_counter() - st.seconds
    budget = stop_after_steps
    while st.epoch < opts.epochs:
        rows = epoch_rows(st.epoch)
        batches = [rows[i:i + opts.batch_size] for i in range(0, len(rows), opts.batch_size)]
        model.train()
        t0, seen = time.perf_counter(), 0
        for b in batches[st.step:]:
            ids, mask = _pad(torch, [F_ids[j] for j in b], pad)
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                outs = model.both(ids, mask)
            loss = loss_fn(*outs, torch.tensor(F_y[b]), torch.tensor(F_va[b]), torch.tensor(F_var[b]),
                           torch.from_numpy(F_t[b]) if F_t is not None else None)
            loss.backward()
            opt.step()
            sched.step()
            st.step += 1
            st.global_step += 1
            seen += 1
            if progress and st.step % 20 == 0:
                rate = (time.perf_counter() - t0) / seen
                print(f"epoch {st.epoch + 1}/{opts.epochs} step {st.step}/{len(batches)} loss {loss.item():.3f} "
                      f"({rate:.2f} s/step)", flush=True)
            if st.step % opts.checkpoint_every == 0:
                st.seconds = time.perf_counter() - t_start
                save_ckpt()
            if budget is not None and seen >= budget and st.step < len(batches):
                st.seconds = time.perf_counter() - t_start
                save_ckpt()
                return paused(st.epoch + 1, st.step, len(batches))
        lg, va = predict(S_ids)
        score, per = _score(S_y, lg.argmax(1), S_c, opts.select, S_va, va, opts.regress)
        st.history.append({"epoch": st.epoch + 1, "selection": score, "per_corpus": per})
        if progress:
            print(f"epoch {st.epoch + 1}: selection score {score:.4f} "
                  + " ".join(f"{c} {m}={per[c][m]:.3f}" for c, m in opts.select if c in per)
                  + "".join(f" {c} r({d[0].upper()})={per[c][d]['Corr']:.3f}" for c, ds in opts.regress
                            for d in ds if d in per.get(c, {})), flush=True)
        best = None
        if score > st.best:
            st.best, st.best_epoch, best = score, st.epoch + 1, adapter_tensors(model)
        st.epoch, st.step = st.epoch + 1, 0
        st.seconds = time.perf_counter() - t_start
        save_ckpt(best)
        if budget is not None:
            budget -= seen
            if budget <= 0 and st.epoch < opts.epochs:
                return paused(st.epoch, 0, len(batches))

    # the kept adapters: a temperature fitted on the selection part, then dev scored once
    from safetensors.torch import load_file

    from scipy.special import softmax

    from .linear import fit_temperature
    from .metrics import expected_calibration_error

    kept = load_file(str(out / "best.safetensors"))
    model.load_state_dict({_param_name(k): v for k, v in kept.items()}, strict=False)
    result: dict[str, Any] = {"name": cfg.name, "kind": "finetune", "options": asdict(opts),
                              "corpora": list(cfg.data.corpora), "n_fit": len(F_y), "n_selection": len(S_y),
                              "n_dev": len(dev), "history": st.history, "best_epoch": st.best_epoch,
                              "train_seconds": round(st.seconds, 1), "steps_per_epoch": steps_per_epoch}
    lg, _ = predict(S_ids)
    has = S_y >= 0
    temp = fit_temperature(lg[has], S_y[has])
    result["calibration"] = {"temperature": temp, "n_rows": int(has.sum()),
                             "ece_select_before": expected_calibration_error(softmax(lg[has], axis=1), S_y[has]),
                             "ece_select_after": expected_calibration_error(softmax(lg[has] / temp, axis=1), S_y[has])}
    dev_all = list(dev) + [it for it in reg if it.split in ("dev", "val")]
    if dev_all:
        D_ids, D_y, D_va, D_c = prepared(dev_all)
        lg, va = predict(D_ids)
        score, per = _score(D_y, lg.argmax(1), D_c, opts.select, D_va, va, opts.regress)
        has = D_y >= 0
        result["dev"] = {"selection_score": score, "per_corpus": per,
                         "ece_before": expected_calibration_error(softmax(lg[has], axis=1), D_y[has]),
                         "ece_after": expected_calibration_error(softmax(lg[has] / temp, axis=1), D_y[has])}
    (out / "results.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    if save is not None:
        result["saved"] = str(save_adapter(save, kept, opts, cfg, result))
        result["saved_head"] = str(save_head_of(head_path(save), Path(save), kept, temp, cfg, result))
    return result


def _tuples(v: Any) -> Any:
    """JSON lists back to the tuples of :class:`FinetuneOptions`."""
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def _teacher_logits(torch: Any, run: Path, part: Sequence[Item], pool: Sequence[Item], out: Path) -> np.ndarray:
    """The class logits of the finished run in ``run`` (its kept adapters) on ``part``, in order; computed
    once per (teacher, items) and kept in ``out/teacher_logits.npy``."""
    import hashlib

    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    from ..store import resolve

    best = run / "best.safetensors"
    if not best.exists():
        raise InputError(f"finetune.teacher: {run} has no best.safetensors (the run has not finished an epoch)")
    key = hashlib.sha256(best.read_bytes() + "\n".join(item_key(it) for it in part).encode()).hexdigest()[:16]
    cached = out / "teacher_logits.npy"
    if cached.exists() and (out / "teacher_logits.key").read_text() == key:
        return np.load(cached)
    t_opts = FinetuneOptions(**{k: _tuples(v) for k, v in json.loads((run / "results.json").read_text())["options"].items()
                                if k in FinetuneOptions.__dataclass_fields__})
    model = _lora_module(torch, t_opts, len(EMOTIONS))
    model.load_state_dict({_param_name(k): v.float() for k, v in load_file(str(best)).items()}, strict=False)
    tok = Tokenizer.from_file(str(resolve(t_opts.encoder) / "tokenizer.json"))
    seqs = _encode(tok, turns_of(part, t_opts.context, pool), t_opts.max_tokens)
    t0 = time.perf_counter()
    logits = _predict(torch, model, seqs, pad_id(t_opts.encoder), amp=True)[0]  # soft targets: bf16 suffices
    print(f"teacher {run.name}: logits of {len(seqs)} items in {time.perf_counter() - t0:.0f} s", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    np.save(cached, logits)
    (out / "teacher_logits.key").write_text(key)
    return logits


def save_head_of(path: Path, adapter: Path, tensors: dict[str, Any], temperature: float, cfg: Any,
                 result: dict[str, Any]) -> Path:
    """The network's own heads as an ``emofuse-head/1`` file for the extractor of ``adapter`` merged into
    MiniLM: softmax(z W / T + b / T) over the L2-normalised embedding z (mean 0, scale 1), V/A = z R + c."""
    from ..checkpoints import FeatureSpec, save_head
    from ..experts import LinearHead
    from ..extractors import EXTRACTORS

    ex = EXTRACTORS["text-minilm-l6-emo"]
    W = tensors["head.weight"].float().numpy().T / temperature
    b = tensors["head.bias"].float().numpy() / temperature
    R = tensors["va.weight"].float().numpy().T if "va.weight" in tensors else None
    c = tensors["va.bias"].float().numpy() if "va.bias" in tensors else None
    d = W.shape[0]
    spec = FeatureSpec(ex.name, d, "vector", ex.describe(), identity=ex.config_hash(adapter=adapter))
    meta = {"kind": "text", "licence": cfg.licence,
            "training": {"recipe": "finetune", "config": cfg.name, "adapter": adapter.name,
                         "calibration": result.get("calibration"), "best_epoch": result.get("best_epoch"),
                         "train_seconds": result.get("train_seconds")},
            "metrics": {"evaluated_on": "validation", "dev": result.get("dev"),
                        "selection": next((h for h in result.get("history", []) if h["epoch"] == result.get("best_epoch")), None)},
            "metrics_note": "validation figures (dev / val splits, scored once); the epoch chosen on a part carved from train"}
    head = LinearHead(np.zeros(d, np.float32), np.ones(d, np.float32), W.astype(np.float32), b.astype(np.float32),
                      tuple(EMOTIONS), spec, meta, R, c)
    return save_head(path, head)


def _param_name(key: str) -> str:
    """``layers.{i}.{t}.A`` -> the state-dict name in :func:`_lora_module`'s model."""
    if key.startswith(("head.", "va.")):
        return key
    _, i, t, ab = key.split(".")
    return f"encoder.layers.{i}.{t}.{ab}"


def save_adapter(path: str | Path, tensors: dict[str, Any], opts: FinetuneOptions, cfg: Any,
                 result: dict[str, Any]) -> Path:
    """The shipped adapter file: fp16 tensors and a self-describing header (format, base model sha256, rank,
    alpha, targets, context, training figures)."""
    from safetensors.torch import save_file

    from ..store import COMPONENTS

    meta = {"format": LORA_FORMAT, "base": opts.encoder, "base_sha256": COMPONENTS[opts.encoder].sha256,
            "rank": opts.rank, "alpha": opts.alpha, "targets": list(opts.targets), "context": opts.context,
            "max_tokens": opts.max_tokens, "labels": list(EMOTIONS), "licence": cfg.licence,
            "training": {k: result[k] for k in ("options", "corpora", "n_fit", "n_selection", "best_epoch",
                                                  "train_seconds", "history") if k in result},
            "dev": result.get("dev")}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.half().contiguous() for k, v in tensors.items()}, str(path),
              metadata={"emofuse": json.dumps(meta)})
    return path
