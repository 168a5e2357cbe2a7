"""Fusion networks compared under one protocol: every registered network x every modality subset.

    python benchmarks/fusion.py --data ../shared/data --out runs/bench-fusion            # full run
    python benchmarks/fusion.py --quick --out runs/bench-fusion-quick                    # smoke test
    python benchmarks/fusion.py --estimate                                               # time 1 run per model

Data: RAVDESS audio-visual, 1440 clips, 24 actors. Modalities: ``au`` = the 35 OpenFace facial
action units and ``mfcc`` = the 259 MFCC statistics of ``multimodal/ravdess_au_mfcc.npz``; ``voice`` =
emofuse's own ``voice-whisper-base`` vectors (pooled Whisper-base encoder states, 1024) of the same trials'
speech clips (``speech/ravdess``, ids matching after the first field); with ``--seq``, ``voice_seq`` =
``voice-whisper-base-seq`` (0.5 s chunks of the encoder states, [T, 512]) for the models that accept
sequences. Classes: RAVDESS's 8 (calm kept as its own class, unlike emofuse's canonical taxonomy, so the
figures compare with the literature).

Protocols: ``kfold`` = the EmoBox 6 speaker-independent folds; per fold 20 % of the TRAINING actors are
carved out as validation (seeded), features are standardised with the training part's statistics, the
epoch is chosen on validation UA, the test fold is scored once. ``random`` = a stratified random split,
20 % test, 10 % of all clips (from the 80 %) validation, same selection on validation only
(speaker-DEPENDENT; the published 85.6 % AU+MFCC accuracy was selected on its test set). Mean ± std over
folds x seeds. Columns: UA and WA (mean ± std), parameters, training seconds per run and CPU inference
latency per sample (batch 1, 1 thread; measured inside the worker, so with --workers 2 the other worker
shares the machine).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

from emofuse.training.networks import Part, TrainOptions  # noqa: E402  (torch-free import)

SOURCES = {"au": "ravdess_av:au", "mfcc": "ravdess_av:mfcc", "voice": "voice-whisper-base",
           "voice_seq": "voice-whisper-base-seq"}
PUBLISHED = "85.6 % accuracy, AU + MFCC, random split selected on the test set"


@dataclass(frozen=True)
class Job:
    model: str
    subset: tuple[str, ...]
    protocol: str  # "kfold" | "random"
    split: str
    seed: int
    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]


def all_subsets(modalities: Sequence[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset, unimodal first, in the given modality order."""
    return [c for r in range(1, len(modalities) + 1) for c in itertools.combinations(modalities, r)]


# ------------------------------------------------------------------------------------------- worker

_W: dict[str, Any] = {}


def _init(part: Part, labels: list[str], options: TrainOptions, fusion: dict[str, Any]) -> None:
    _W.update(part=part, labels=labels, options=options, fusion=fusion)


def accepts_sequences(model: str) -> bool:
    """Whether ``model`` takes [B, T, d] inputs (probed on a tiny batch: the registry does not say)."""
    import torch

    from emofuse.networks import FusionConfig, build

    try:
        net = build(model, FusionConfig(dims={"s": 4, "v": 3}, n_classes=2, regression=False)).eval()
        with torch.no_grad():
            net({"s": torch.zeros(2, 3, 4), "v": torch.zeros(2, 3)}, {"s": torch.ones(2, 3, dtype=torch.bool)})
        return True
    except Exception:  # noqa: BLE001 - a model that rejects sequences raises ValueError (or worse)
        return False


def _latency_ms(model: Any, part: Part, n: int = 30) -> float:
    """Median wall time of one forward pass at batch 1, 1 thread, over up to ``n`` samples."""
    import torch

    from emofuse.training.networks import _tensors

    torch.set_num_threads(1)
    model.eval()
    times = []
    with torch.no_grad():
        for i in range(min(n, len(part))):
            x, k = _tensors(part, np.array([i]))
            t = time.perf_counter()
            model(x, k or None)
            times.append(time.perf_counter() - t)
    return 1000.0 * float(np.median(times[1:] if len(times) > 1 else times))


def run_job(job: Job) -> dict[str, Any]:
    """Train one (model, subset, split, seed) and score its test part; runs inside a worker."""
    from emofuse.networks import FusionConfig
    from emofuse.training.networks import apply_norm, run_split

    part: Part = _W["part"].select(job.subset)
    labels: list[str] = _W["labels"]
    opts: TrainOptions = replace(_W["options"], seed=job.seed)
    config = FusionConfig(dims=tuple((m, int(part.inputs[m].shape[-1])) for m in job.subset), n_classes=len(labels),
                          **({"regression": False} | _W["fusion"]))
    tr, va, te = (np.asarray(x, dtype=np.int64) for x in (job.train, job.val, job.test))
    res, vm, tm, norm = run_split(job.model, config, part, tr, va, te, labels, opts)
    lat = _latency_ms(res.model, apply_norm(part.take(te[:30]), norm))
    return {"model": job.model, "subset": "+".join(job.subset), "protocol": job.protocol, "split": job.split,
            "seed": job.seed, "UA": tm["UA"], "WA": tm["WA"], "macro_f1": tm["macro_f1"], "val_UA": vm["UA"],
            "best_epoch": res.best_epoch, "epochs": len(res.history), "params": res.n_params,
            "train_seconds": res.seconds, "latency_ms": lat}


def run_jobs(jobs: Sequence[Job], part: Part, labels: list[str], options: TrainOptions, fusion: dict[str, Any],
             workers: int = 2, log: Any = sys.stderr) -> list[dict[str, Any]]:
    """All jobs, in a pool of ``workers`` processes (one torch thread each), or in-process for 1."""
    out: list[dict[str, Any]] = []
    t0 = time.perf_counter()

    def note(r: dict[str, Any]) -> None:
        out.append(r)
        if log is not None:
            print(f"[{len(out)}/{len(jobs)} {time.perf_counter() - t0:6.0f}s] {r['model']:>16} {r['subset']:<22} "
                  f"{r['protocol']:<6} {r['split']:<8} s{r['seed']} UA {100 * r['UA']:5.1f} "
                  f"({r['train_seconds']:.1f} s)", file=log, flush=True)

    if workers <= 1:
        _init(part, labels, options, fusion)
        for j in jobs:
            note(run_job(j))
        return out
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn: a forked torch (OpenMP pools) can deadlock; each worker gets the arrays once
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init,
                             initargs=(part, labels, options, fusion)) as pool:
        for fut in as_completed([pool.submit(run_job, j) for j in jobs]):
            note(fut.result())
    return out


# ------------------------------------------------------------------------------------------- core


def make_jobs(models: Sequence[str], subsets: Sequence[tuple[str, ...]],
              splits: Mapping[str, Mapping[int, Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]]]],
              seq_models: set[str] | None = None, seq_modalities: set[str] = frozenset({"voice_seq"})) -> list[Job]:
    """``splits[protocol][seed]`` = [(name, train rows, val rows, test rows)]. Subsets with a sequence
    modality go only to models in ``seq_models``."""
    jobs = []
    for model in models:
        for sub in subsets:
            if set(sub) & set(seq_modalities) and (seq_models is None or model not in seq_models):
                continue
            for protocol, by_seed in splits.items():
                for seed, parts in by_seed.items():
                    for name, tr, va, te in parts:
                        jobs.append(Job(model, tuple(sub), protocol, name, seed, tuple(map(int, tr)),
                                        tuple(map(int, va)), tuple(map(int, te))))
    return jobs


def aggregate(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (protocol, model, subset): mean ± std over folds x seeds, params, seconds, latency."""
    from emofuse.training.metrics import mean_std

    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        groups[(r["protocol"], r["model"], r["subset"])].append(r)
    rows = []
    for (protocol, model, subset), rs in groups.items():
        ua, ua_sd = mean_std([r["UA"] for r in rs])
        wa, wa_sd = mean_std([r["WA"] for r in rs])
        rows.append({"protocol": protocol, "model": model, "subset": subset, "n_runs": len(rs),
                     "UA": ua, "UA_std": ua_sd, "WA": wa, "WA_std": wa_sd,
                     "val_UA": float(np.mean([r["val_UA"] for r in rs])), "params": rs[0]["params"],
                     "train_seconds": float(np.mean([r["train_seconds"] for r in rs])),
                     "latency_ms": float(np.median([r["latency_ms"] for r in rs]))})
    order = {"kfold": 0, "random": 1}
    rows.sort(key=lambda r: (order.get(r["protocol"], 9), r["subset"].count("+"), r["subset"], -r["UA"]))
    return rows


def target_check(results: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]], protocol: str = "kfold") -> str:
    """The speaker-independent target (beat ``late`` by more than the fold std), every choice made on
    VALIDATION UA: per modality subset, the network with the best mean validation UA against ``late`` on the same subset (and the
    best unimodal model): test UA difference, the fold std it must exceed, and the paired difference
    over the same (fold, seed) runs with the number of runs the network wins."""
    from emofuse.training.metrics import mean_std

    rows = [r for r in rows if r["protocol"] == protocol]
    runs: dict[tuple[str, str], dict[tuple[str, int], float]] = defaultdict(dict)
    for r in results:
        if r["protocol"] == protocol:
            runs[(r["model"], r["subset"])][(r["split"], r["seed"])] = r["UA"]
    uni = [r for r in rows if "+" not in r["subset"]]
    if not uni:
        return ""
    best_uni = max(uni, key=lambda r: r["val_UA"])
    L = ["", f"### Target check ({protocol}; every choice on validation UA)", "",
         f"Best unimodal model by validation: {best_uni['model']} {best_uni['subset']}, test UA "
         f"{100 * best_uni['UA']:.1f} ± {100 * best_uni['UA_std']:.1f}.", "",
         "| subset | network (best val) | its UA | `late` UA | Δ | fold std | Δ > std | paired Δ (mean ± std) | wins | "
         "Δ vs best unimodal |",
         "|---|---|---|---|---|---|---|---|---|---|"]
    for subset in dict.fromkeys(r["subset"] for r in rows):
        nets = [r for r in rows if r["subset"] == subset and r["model"] != "late"]
        late = next((r for r in rows if r["subset"] == subset and r["model"] == "late"), None)
        if not nets or late is None:
            continue
        net = max(nets, key=lambda r: r["val_UA"])
        a, b = runs[(net["model"], subset)], runs[("late", subset)]
        keys = sorted(set(a) & set(b))
        d = [a[k] - b[k] for k in keys]
        dm, ds = mean_std(d) if d else (float("nan"), float("nan"))
        delta, std = net["UA"] - late["UA"], max(net["UA_std"], late["UA_std"])
        L.append(f"| {subset} | {net['model']} | {100 * net['UA']:.1f} ± {100 * net['UA_std']:.1f} | "
                 f"{100 * late['UA']:.1f} ± {100 * late['UA_std']:.1f} | {100 * delta:+.1f} | {100 * std:.1f} | "
                 f"{'yes' if delta > std else 'no'} | {100 * dm:+.1f} ± {100 * ds:.1f} | "
                 f"{sum(x > 0 for x in d)}/{len(d)} | {100 * (net['UA'] - best_uni['UA']):+.1f} |")
    L.append("")
    L.append("Fold std = the larger of the two models' std over folds x seeds. The paired Δ compares the two "
             "models on the same test fold and seed, which removes the between-speaker spread both share.")
    return "\n".join(L) + "\n"


def markdown(rows: Sequence[dict[str, Any]], header: str = "") -> str:
    L = [header] if header else []
    for protocol in dict.fromkeys(r["protocol"] for r in rows):
        title = ("EmoBox 6 speaker-independent folds, validation actors from the training actors"
                 if protocol == "kfold" else "random 80/20 split (stratified; validation from the 80 %; "
                 "speaker-dependent)")
        L += ["", f"### {protocol}: {title}", "",
              "| model | subset | UA % (mean ± std) | WA % (mean ± std) | val UA % | runs | params | train s/run | "
              "latency ms/sample |",
              "|---|---|---|---|---|---|---|---|---|"]
        for r in (r for r in rows if r["protocol"] == protocol):
            L.append(f"| {r['model']} | {r['subset']} | {100 * r['UA']:.1f} ± {100 * r['UA_std']:.1f} | "
                     f"{100 * r['WA']:.1f} ± {100 * r['WA_std']:.1f} | {100 * r['val_UA']:.1f} | {r['n_runs']} | {r['params']:,} | "
                     f"{r['train_seconds']:.1f} | {r['latency_ms']:.2f} |")
    return "\n".join(L) + "\n"


# ------------------------------------------------------------------------------------------- data


def load(data: Path, modalities: Sequence[str], cache: Path | None, workers: int) -> tuple[list[Any], Part, list[str], dict[str, str]]:
    from emofuse.training.data import labelled, modalities as load_modalities

    d, inputs, masks, kinds = load_modalities(labelled(["ravdess_av"], data, "original"), "ravdess_av", data,
                                              {m: SOURCES[m] for m in modalities}, cache=cache, workers=workers,
                                              progress=True)
    idx = {lab: i for i, lab in enumerate(d.labels)}
    return d.items, Part(inputs, np.array([idx[c] for c in d.y], dtype=np.int64), None, masks), d.labels, kinds


def make_splits(items: Sequence[Any], seeds: Sequence[int], folds: Sequence[int] | None,
                protocols: Sequence[str]) -> dict[str, dict[int, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]]]:
    from emofuse.corpora import item_key
    from emofuse.training.protocols import kfold, random_split

    row = {item_key(it): n for n, it in enumerate(items)}

    def rows(ids: Sequence[str]) -> np.ndarray:
        return np.array([row[k] for k in ids], dtype=np.int64)

    out: dict[str, dict[int, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]]] = {}
    for p in protocols:
        out[p] = {}
        for seed in seeds:
            sp = (kfold(items, seed=seed, val_speakers=0.2) if p == "kfold"
                  else random_split(items, seed=seed, val_fraction=0.1, test_fraction=0.2))
            if p == "kfold" and folds:
                sp = [s for i, s in enumerate(sp, 1) if i in folds]
            out[p][seed] = [(s.name, rows(s.train), rows(s.val), rows(s.test)) for s in sp]
    return out


# ------------------------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    from emofuse.networks import NETWORKS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("EMOFUSE_DATA", ROOT.parent / "shared" / "data")))
    ap.add_argument("--cache", type=Path, default=None, help="feature cache (default: emofuse.store.feature_cache_dir())")
    ap.add_argument("--models", default=",".join(NETWORKS), help="comma-separated (default: all registered)")
    ap.add_argument("--modalities", default="au,mfcc,voice", help="pool the subsets are drawn from")
    ap.add_argument("--subsets", default=None, help="e.g. 'au+mfcc,voice' (default: every non-empty subset)")
    ap.add_argument("--seq", action="store_true", help="add voice_seq (voice-whisper-base-seq) for sequence models")
    ap.add_argument("--protocols", default="kfold,random")
    ap.add_argument("--folds", default=None, help="EmoBox folds to run, e.g. 1,2 (default: all 6)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--workers", type=int, default=2, help="processes, one torch thread each")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--patience", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--modality-dropout", type=float, default=0.0)
    ap.add_argument("--weight-decay", type=float, default=1e-2)
    ap.add_argument("--quick", action="store_true", help="smoke test: 1 seed, 2 folds, 15 epochs")
    ap.add_argument("--estimate", action="store_true",
                    help="time one full-size run per model (all modalities, fold 1) and print the full run's wall time")
    ap.add_argument("--out", type=Path, default=None, help="folder for results.json and table.md")
    a = ap.parse_args(argv)

    models = [m.strip() for m in a.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in NETWORKS]
    if unknown:
        ap.error(f"unknown models {unknown}; registered: {', '.join(NETWORKS)}")
    mods = [m.strip() for m in a.modalities.split(",") if m.strip()] + (["voice_seq"] if a.seq else [])
    seeds = [int(s) for s in a.seeds.split(",")]
    folds = [int(f) for f in a.folds.split(",")] if a.folds else None
    protocols = [p.strip() for p in a.protocols.split(",") if p.strip()]
    epochs, patience = a.epochs, a.patience
    if a.quick:
        seeds, folds, epochs, patience = seeds[:1], folds or [1, 2], min(epochs, 15), min(patience, 5)
    options = TrainOptions(epochs=epochs, patience=patience, batch_size=a.batch_size, lr=a.lr,
                           weight_decay=a.weight_decay, threads=1)
    fusion = {"hidden": a.hidden, "dropout": a.dropout, "modality_dropout": a.modality_dropout}
    if a.subsets:
        subsets = [tuple(s.split("+")) for s in a.subsets.split(",")]
        bad = {m for s in subsets for m in s} - set(mods)
        if bad:
            ap.error(f"subsets name modalities {sorted(bad)} not in --modalities {mods}")
    else:
        subsets = all_subsets(mods)

    t0 = time.perf_counter()
    items, part, labels, kinds = load(a.data, mods, a.cache, a.workers)
    print(f"data: {len(items)} clips, {len(labels)} classes ({', '.join(labels)}), "
          + ", ".join(f"{m} {tuple(part.inputs[m].shape[1:])} {kinds[m]}" for m in mods), file=sys.stderr)
    seq_models = {m for m in models if accepts_sequences(m)} if a.seq else set()

    if a.estimate:
        return estimate(models, mods, seq_models, items, part, labels, options, fusion, subsets, folds, seeds,
                        protocols, a.workers)

    splits = make_splits(items, seeds, folds, protocols)
    jobs = make_jobs(models, subsets, splits, seq_models)
    print(f"{len(jobs)} runs on {a.workers} worker(s)", file=sys.stderr)
    results = run_jobs(jobs, part, labels, options, fusion, a.workers)
    rows = aggregate(results)
    header = (f"## Fusion benchmark: RAVDESS audio-visual, {len(labels)} classes (calm kept apart)\n\n"
              f"Seeds {seeds}, folds {folds or 'all 6'}, {options.epochs} epochs max (patience {options.patience}, "
              f"selection on validation UA), hidden {a.hidden}, dropout {a.dropout}, modality dropout "
              f"{a.modality_dropout}, AdamW lr {a.lr} weight decay {a.weight_decay}, batch {a.batch_size}. Published reference: {PUBLISHED}. Wall time {time.perf_counter() - t0:.0f} s "
              f"on {a.workers} worker(s).")
    table = markdown(rows, header) + target_check(results, rows)
    print(table)
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "results.json").write_text(json.dumps({
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()},
            "options": asdict(options), "fusion": fusion, "labels": labels, "n_items": len(items),
            "rows": rows, "runs": results, "seconds": time.perf_counter() - t0}, indent=2), encoding="utf-8")
        (a.out / "table.md").write_text(table, encoding="utf-8")
        print(f"wrote {a.out / 'results.json'} and {a.out / 'table.md'}", file=sys.stderr)
    return 0


def estimate(models: Sequence[str], mods: Sequence[str], seq_models: set[str], items: Sequence[Any], part: Part,
             labels: list[str], options: TrainOptions, fusion: dict[str, Any], subsets: Sequence[tuple[str, ...]],
             folds: Sequence[int] | None, seeds: Sequence[int], protocols: Sequence[str], workers: int) -> int:
    """Time one run per model on the largest subset (fold 1, seed 0, full epochs), then scale by the
    number of runs of the full benchmark. An upper-ish bound: smaller subsets train faster."""
    splits = make_splits(items, [seeds[0]], [1], ["kfold"])
    n_splits = (len(folds) if folds else 6) * len(seeds) * ("kfold" in protocols) + len(seeds) * ("random" in protocols)
    total = 0.0
    print("| model | params | seconds for one run (all modalities, fold 1) | epochs | runs in full benchmark | est. CPU seconds |")
    print("|---|---|---|---|---|---|")
    for m in models:
        full = max((s for s in subsets if not (set(s) & {"voice_seq"}) or m in seq_models), key=len)
        jobs = make_jobs([m], [full], splits, seq_models)
        t = time.perf_counter()
        r = run_jobs(jobs, part, labels, options, fusion, workers=1, log=None)[0]
        dt = time.perf_counter() - t
        n_sub = sum(1 for s in subsets if not (set(s) & {"voice_seq"}) or m in seq_models)
        n_runs = n_sub * n_splits
        total += dt * n_runs
        print(f"| {m} | {r['params']:,} | {dt:.1f} | {r['epochs']} | {n_runs} | {dt * n_runs:.0f} |", flush=True)
    print(f"\nestimated full-run wall time on {workers} worker(s): {total / max(workers, 1) / 60:.0f} min "
          f"({total / 3600:.1f} CPU hours; an upper bound: unimodal runs are cheaper than the all-modality run timed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
