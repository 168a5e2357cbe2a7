"""Training the face-expression CNN (:mod:`emofuse.features.face_net`) on FER2013, resumable.

A ``[face_cnn]`` run (``emofuse train configs/face_cnn_fer2013.toml --save PATH``):

* **Data.** The 48x48 grey faces of ``data.corpora`` (FER2013), decoded once into a cached uint8 array
  (``<cache>/fer2013/<fingerprint>.npz``). The official ``train`` split minus a selection part (``val_fraction``
  of it, stratified by class) is trained on; the epoch kept is the one with the best ``select`` figure on that
  part; the ``val`` split (FER2013 PublicTest in the shared copy) is scored once, at the end.
* **Augmentation** (per batch, in torch): one random affine map per face (rotation ``rotate`` degrees, zoom
  ``1 +- scale``, shift ``shift`` of the side, mirror), then random erasing of one rectangle (probability
  ``erase``). Evaluation averages the logits of the face and its mirror (``tta``).
* **Optimisation.** SGD with Nesterov momentum, linear warm-up then a cosine decay to 0, label smoothing,
  class weights ``(n / (K n_c)) ** class_weight_power``; the steps run under bf16 autocast on channels-last
  tensors (``precision``), three times faster on these CPUs than fp32.
* **Resumable.** ``out/checkpoint.pt`` (weights, optimiser, position, history) after every epoch and every
  ``checkpoint_every`` steps; ``--resume`` continues it. Each step's randomness is seeded by (seed, step), so a
  resumed run computes what an uninterrupted one would.
* **Saved.** ``--save X.safetensors``: the kept weights (``face_net.pack_state``: int8 per output channel, batch-norm
  statistics fp32) and a header (format ``emofuse-facecnn/2``: width, class order, input scaling, the temperature
  fitted on the selection part, the figures). ``emofuse setup`` exports the fp32 ONNX graph;
  ``scripts/quantize_face.py`` makes the int8 one the analysis runs.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..corpora import Item, item_key
from ..errors import InputError
from ..features.face_net import FORMAT as FACE_FORMAT
from .resumable import RunState, checkpoint_path, write_checkpoint

__all__ = ["FACE_FORMAT", "FaceCNNOptions", "run_face_cnn"]

SELECT = ("WA", "UA", "macro_f1")


@dataclass(frozen=True)
class FaceCNNOptions:
    width: int = 32  # channels of the first stage (then 2x, 4x, 8x)
    dropout: float = 0.3
    epochs: int = 40
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup: float = 0.03  # share of the steps with a linear warm-up, then cosine decay to 0
    label_smoothing: float = 0.1
    class_weight_power: float = 0.0  # 0: plain, 1: fully balanced cross-entropy
    rotate: float = 10.0  # degrees, +-
    scale: float = 0.1  # zoom 1 +- scale
    shift: float = 0.08  # shift, share of the side, +-
    flip: bool = True
    erase: float = 0.5  # probability of erasing one random rectangle (2-20 % of the face)
    tta: bool = True  # evaluate on the face and its mirror, logits averaged
    val_fraction: float = 0.1
    select: str = "WA"
    checkpoint_every: int = 200  # steps
    threads: int = 2
    # bf16 autocast + channels-last tensors for the training steps (master weights stay fp32; evaluation is fp32,
    # as the shipped graph is): 0.50 -> 0.16 s per step of 64 at width 32 on 2 AVX-512-BF16 cores (measured)
    precision: str = "bf16"
    # a saved face network to start from (a warm restart: its weights, a fresh schedule); it must have been
    # trained with this run's selection part (same seed, val_fraction and data), which is checked
    init_from: str = ""
    # the seed of the network's initialisation, batch order, augmentation and dropout; -1: the run's seed. The carve
    # of the selection part always follows the run's seed, so networks that differ only here can be ensembled and
    # the ensemble judged on the part none of them trained on
    train_seed: int = -1

    def __post_init__(self) -> None:
        for name in ("width", "epochs", "batch_size", "checkpoint_every", "threads"):
            if getattr(self, name) < 1:
                raise InputError(f"face_cnn.{name}: must be >= 1, not {getattr(self, name)!r}")
        if not (self.lr > 0 and 0 <= self.momentum < 1 and self.weight_decay >= 0 and 0 <= self.warmup < 1
                and 0 <= self.label_smoothing < 1 and 0 <= self.dropout < 1 and 0 <= self.erase <= 1
                and 0 < self.val_fraction < 1 and self.rotate >= 0 and 0 <= self.scale < 1 and 0 <= self.shift < 0.5):
            raise InputError("face_cnn: lr > 0; momentum, warmup, label_smoothing, dropout in [0, 1); erase in [0, 1]; "
                             "val_fraction in (0, 1); rotate >= 0; scale in [0, 1); shift in [0, 0.5)")
        if self.precision not in ("bf16", "fp32"):
            raise InputError(f"face_cnn.precision: must be 'bf16' or 'fp32', not {self.precision!r}")
        if self.select not in SELECT:
            raise InputError(f"face_cnn.select: must be one of {SELECT}, not {self.select!r}")


# ------------------------------------------------------------------------------------------------ data


def grey_faces(items: Sequence[Item]) -> np.ndarray:
    """``[n, 48, 48]`` uint8 of FER2013 items (image files or csv pixels), cached by the items' ids and sizes."""
    from ..corpora.fer2013 import SIZE, pixels
    from ..store import cache_dir

    h = hashlib.blake2b(digest_size=10)
    for it in items:
        h.update(f"{it.id}|{it.paths[0].stat().st_size if it.paths else len(it.extra.get('pixels', ''))}\n".encode())
    path = cache_dir() / "fer2013" / f"{h.hexdigest()}.npz"
    if path.exists():
        with np.load(path) as z:
            return z["x"]
    import av

    x = np.zeros((len(items), SIZE, SIZE), np.uint8)
    for i, it in enumerate(items):
        if not it.paths:
            x[i] = pixels(it)
            continue
        with av.open(str(it.paths[0])) as c:
            g = next(c.decode(video=0)).to_ndarray(format="gray")
        if g.shape != (SIZE, SIZE):
            raise InputError(f"{it.paths[0]}: a FER2013 face must be {SIZE}x{SIZE}, not {g.shape[1]}x{g.shape[0]}")
        x[i] = g
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, x=x)
    tmp.replace(path)
    return x


def augment(torch: Any, x: Any, opts: FaceCNNOptions, gen: Any) -> Any:
    """A random affine map (rotation, zoom, shift, mirror) and random erasing per face of ``x`` [n, 1, 48, 48]."""
    F = torch.nn.functional
    n = x.shape[0]

    def u(lo: float, hi: float, size: tuple[int, ...] = (n,)) -> Any:
        return lo + (hi - lo) * torch.rand(size, generator=gen)

    a = u(-opts.rotate, opts.rotate) * math.pi / 180
    s = 1 / u(1 - opts.scale, 1 + opts.scale)
    m = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0) if opts.flip else torch.ones(n)
    theta = torch.stack([torch.stack([s * torch.cos(a) * m, -s * torch.sin(a), u(-2 * opts.shift, 2 * opts.shift)], 1),
                         torch.stack([s * torch.sin(a) * m, s * torch.cos(a), u(-2 * opts.shift, 2 * opts.shift)], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if opts.erase > 0:
        side = x.shape[-1]
        area = u(0.02, 0.2) * side * side
        ratio = torch.exp(u(math.log(0.3), math.log(3.3)))
        h = (area * ratio).sqrt().clamp(1, side).long()
        w = (area / ratio).sqrt().clamp(1, side).long()
        y0 = (u(0, 1) * (side - h + 1).float()).long()
        x0 = (u(0, 1) * (side - w + 1).float()).long()
        r = torch.arange(side)
        box = (((r[None, :] >= y0[:, None]) & (r[None, :] < (y0 + h)[:, None]))[:, :, None]
               & ((r[None, :] >= x0[:, None]) & (r[None, :] < (x0 + w)[:, None]))[:, None, :])
        box &= (torch.rand(n, generator=gen) < opts.erase)[:, None, None]
        x = torch.where(box[:, None], torch.rand(x.shape, generator=gen), x)
    return x


def scaled(torch: Any, faces: np.ndarray) -> Any:
    """uint8 [n, 48, 48] -> float [n, 1, 48, 48] in [0, 1] (the network scales it further itself)."""
    return torch.from_numpy(faces).float().div_(255.0)[:, None]


# ------------------------------------------------------------------------------------------------ run


def _warm_start(torch: Any, model: Any, path: Path, opts: FaceCNNOptions, seed: int, n_fit: int) -> None:
    """Load a saved network's weights into ``model``, refusing one whose training saw this run's selection
    part (another carve: a different seed, val_fraction or number of fitting faces)."""
    from ..features.face_net import load_torch

    if not path.exists():
        raise InputError(f"face_cnn.init_from: {path} does not exist")
    src, meta = load_torch(torch, path)
    t = meta.get("training", {})
    was = (t.get("options", {}).get("val_fraction"), t.get("n_fit"), t.get("seed", seed))
    if int(meta["width"]) != opts.width or was != (opts.val_fraction, n_fit, seed):
        raise InputError(f"face_cnn.init_from: {path} (width {meta['width']}, val_fraction / n_fit / seed {was}) was "
                         f"not trained on this run's carve (width {opts.width}, {(opts.val_fraction, n_fit, seed)}): "
                         "its selection figures would be optimistic")
    model.load_state_dict(src.state_dict())


def run_face_cnn(cfg: Any, opts: FaceCNNOptions, save: str | Path | None = None, resume: bool = False,
                 progress: bool = True, stop_after_steps: int | None = None) -> dict[str, Any]:
    """Train (or resume) the face CNN of ``cfg`` (a TrainConfig with a ``[face_cnn]`` table); returns the results."""
    out = Path(cfg.out)
    if save is not None and Path(save).suffix != ".safetensors":
        raise InputError(f"--save {save}: the face network is saved as a .safetensors file, e.g. "
                         "src/emofuse/weights/face-cnn.safetensors")
    ckpt = checkpoint_path(out, resume)  # checked before anything heavy is imported or read
    import torch

    from ..features.face_net import ORDER, face_cnn
    from ..taxonomy import FER2013
    from .data import labelled
    from .metrics import classification_metrics, expected_calibration_error
    from .protocols import carve_val

    torch.set_num_threads(opts.threads)
    data = labelled(cfg.data.corpora, cfg.data.root, "original", cfg.data.limit, cfg.seed)
    train_all = sorted((it for it in data.items if it.split == "train"), key=item_key)
    test = sorted((it for it in data.items if it.split in ("val", "dev")), key=item_key)
    if not train_all:
        raise InputError(f"{cfg.name}: no item of {list(cfg.data.corpora)} is in a 'train' split")
    bad = sorted({str(it.original_label) for it in data.items} - set(ORDER))
    if bad:
        raise InputError(f"{cfg.name}: classes {bad} are not FER2013's {list(ORDER)}")
    fit, sel = carve_val(train_all, np.random.default_rng([cfg.seed, 99]), 0, opts.val_fraction, None)

    def arrays(part: Sequence[Item]) -> tuple[np.ndarray, np.ndarray]:
        return grey_faces(part), np.array([ORDER.index(str(it.original_label)) for it in part])

    Xf, yf = arrays(fit)
    Xs, ys = arrays(sel)
    seed = cfg.seed if opts.train_seed < 0 else opts.train_seed
    torch.manual_seed(seed)
    model = face_cnn(torch, opts.width, opts.dropout).to(memory_format=torch.channels_last)
    counts = np.bincount(yf, minlength=len(ORDER))
    weight = torch.tensor((len(yf) / (len(ORDER) * np.maximum(counts, 1))) ** opts.class_weight_power, dtype=torch.float32)
    steps_per_epoch = math.ceil(len(yf) / opts.batch_size)
    total = steps_per_epoch * opts.epochs
    warm = max(1, int(opts.warmup * total))
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim == 1 else decay).append(p)  # no weight decay on batch-norm and bias terms
    opt = torch.optim.SGD([{"params": decay, "weight_decay": opts.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                          lr=opts.lr, momentum=opts.momentum, nesterov=opts.momentum > 0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warm if s < warm else
                                              0.5 * (1 + math.cos(math.pi * min(1.0, (s - warm) / max(1, total - warm)))))
    st = RunState()
    fingerprint = {"options": asdict(opts), "seed": cfg.seed, "corpora": list(cfg.data.corpora), "n_fit": len(yf)}
    if resume:
        blob = torch.load(ckpt, weights_only=False)
        if blob["fingerprint"] != fingerprint:
            raise InputError(f"--resume: {ckpt} was written by another configuration (options, seed, corpora or data "
                             "differ); delete the folder to start again")
        model.load_state_dict(blob["model"])
        opt.load_state_dict(blob["optimizer"])
        sched.load_state_dict(blob["scheduler"])
        st = RunState(**blob["state"])
    elif opts.init_from:
        _warm_start(torch, model, Path(opts.init_from), opts, cfg.seed, len(yf))
    out.mkdir(parents=True, exist_ok=True)

    def logits_of(X: np.ndarray) -> np.ndarray:
        model.eval()
        outs = []
        with torch.no_grad():
            for i in range(0, len(X), 256):
                x = scaled(torch, X[i:i + 256])
                z = model(x)
                if opts.tta:
                    z = (z + model(torch.flip(x, dims=[3]))) / 2
                outs.append(z.numpy())
        return np.concatenate(outs) if outs else np.zeros((0, len(ORDER)), np.float32)

    def figures(y: np.ndarray, z: np.ndarray) -> dict[str, Any]:
        return classification_metrics([ORDER[i] for i in y], [ORDER[i] for i in z.argmax(1)], list(ORDER))

    def save_ckpt(best: bool = False) -> None:
        blob = {"fingerprint": fingerprint, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "state": asdict(st)}
        write_checkpoint(torch, blob, ckpt)
        if best:
            torch.save(model.state_dict(), out / "best.pt")

    def paused() -> dict[str, Any]:
        return {"name": cfg.name, "kind": "face_cnn", "stopped": True, "epoch": st.epoch + 1, "step": st.step,
                "steps_per_epoch": steps_per_epoch, "checkpoint": str(ckpt)}

    t_start = time.perf_counter() - st.seconds
    seen = 0
    while st.epoch < opts.epochs:
        order = np.random.default_rng([seed, 7, st.epoch]).permutation(len(yf))
        model.train()
        t0, done = time.perf_counter(), 0
        for b in range(st.step, steps_per_epoch):
            idx = order[b * opts.batch_size:(b + 1) * opts.batch_size]
            torch.manual_seed(seed * 1_000_003 + st.global_step)  # dropout: the same on a resumed run
            gen = torch.Generator().manual_seed(seed * 1_000_033 + st.global_step)
            x = augment(torch, scaled(torch, Xf[idx]), opts, gen).contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=opts.precision == "bf16"):
                z = model(x)
            loss = torch.nn.functional.cross_entropy(z.float(), torch.from_numpy(yf[idx]), weight=weight,
                                                     label_smoothing=opts.label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            st.step, st.global_step, seen, done = st.step + 1, st.global_step + 1, seen + 1, done + 1
            if progress and st.step % 50 == 0:
                print(f"epoch {st.epoch + 1}/{opts.epochs} step {st.step}/{steps_per_epoch} loss {loss.item():.3f} "
                      f"({(time.perf_counter() - t0) / done:.2f} s/step)", flush=True)
            if st.step < steps_per_epoch and (st.step % opts.checkpoint_every == 0 or seen == stop_after_steps):
                st.seconds = time.perf_counter() - t_start
                save_ckpt()
                if seen == stop_after_steps:
                    return paused()
        fig = figures(ys, logits_of(Xs))
        score = float(fig[opts.select])
        st.history.append({"epoch": st.epoch + 1, "selection": score, "WA": fig["WA"], "UA": fig["UA"],
                           "seconds": round(time.perf_counter() - t0, 1)})
        if progress:
            print(f"epoch {st.epoch + 1}: selection WA {fig['WA']:.4f} UA {fig['UA']:.4f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
        improved = score > st.best
        if improved:
            st.best, st.best_epoch = score, st.epoch + 1
        st.epoch, st.step = st.epoch + 1, 0
        st.seconds = time.perf_counter() - t_start
        save_ckpt(best=improved)
        if stop_after_steps is not None and seen >= stop_after_steps and st.epoch < opts.epochs:
            return paused()

    # the kept epoch: a temperature fitted on the selection part, then the held-out split scored once
    from scipy.special import softmax

    from .linear import fit_temperature

    model.load_state_dict(torch.load(out / "best.pt", weights_only=True))
    zs = logits_of(Xs)
    temp = fit_temperature(zs, ys)
    result: dict[str, Any] = {"name": cfg.name, "kind": "face_cnn", "options": asdict(opts), "seed": cfg.seed,
                              "corpora": list(cfg.data.corpora), "n_fit": len(yf), "n_selection": len(ys),
                              "n_test": len(test), "history": st.history, "best_epoch": st.best_epoch,
                              "train_seconds": round(st.seconds, 1), "steps_per_epoch": steps_per_epoch,
                              "selection": figures(ys, zs),
                              "calibration": {"temperature": temp,
                                              "ece_select_before": expected_calibration_error(softmax(zs, axis=1), ys),
                                              "ece_select_after": expected_calibration_error(softmax(zs / temp, axis=1), ys)}}
    if test:
        Xt, yt = arrays(test)
        zt = logits_of(Xt)
        result["test"] = figures(yt, zt) | {
            "split": sorted({str(it.split) for it in test}),
            "ece_before": expected_calibration_error(softmax(zt, axis=1), yt),
            "ece_after": expected_calibration_error(softmax(zt / temp, axis=1), yt)}
    (out / "results.json").write_text(json.dumps(result, indent=2, default=float), encoding="utf-8")
    if save is not None:
        result["saved"] = str(save_weights(save, model.state_dict(), opts, temp, cfg, result,
                                           [FER2013[c] for c in ORDER]))
    return result


def save_weights(path: str | Path, state: dict[str, Any], opts: FaceCNNOptions, temperature: float, cfg: Any,
                 result: dict[str, Any], canonical: list[str]) -> Path:
    """The shipped file: int8 weights per output channel (``face_net.pack_state``) and a header."""
    import torch
    from safetensors.torch import save_file

    from ..features.face_net import ORDER, pack_state

    meta = {"format": FACE_FORMAT, "width": opts.width, "dropout": opts.dropout, "order": list(ORDER),
            "canonical": canonical, "input": "48x48 grey, pixels / 255", "tta": opts.tta, "temperature": temperature,
            "licence": cfg.licence, "training": {k: result[k] for k in ("options", "seed", "corpora", "n_fit", "n_selection",
                                                                          "best_epoch", "train_seconds", "history")},
            "selection": result.get("selection"), "test": result.get("test"), "calibration": result.get("calibration")}
    tensors = pack_state(torch, state)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"emofuse": json.dumps(meta, default=float)})
    return path
