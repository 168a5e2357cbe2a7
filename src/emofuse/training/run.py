"""Config-driven training runs: corpora -> cached features -> protocol splits -> linear heads -> report.

    from emofuse.training.config import load_config
    from emofuse.training.run import run
    result = run(load_config("configs/voice_ravdess_kfold.toml"), workers=2)

    emofuse train configs/voice_ravdess_kfold.toml [--workers N] [--save-head]
    emofuse evaluate --head out/head.safetensors --corpus meld --data ../shared/data \
        --extractor text-minilm-l6 [--split test|val|all]

Per split, C is chosen on the split's VALIDATION part only (UA, ties to the smaller C); the head fitted on
the training part with that C is evaluated once on the test part. A split without test items (e.g. a
holdout corpus whose test labels are withheld) is evaluated on its validation part and labelled
"validation" everywhere; C is then chosen on a part carved from its training items (as the protocols
carve validation), never on the data it is evaluated on.

``data.normalize`` ("corpus" or "speaker") z-scores the features within each corpus or speaker, using
that group's own (unlabelled) features, test speakers included: the usual speaker normalisation of
cross-corpus speech emotion work. It is transductive, so the report says so.

Outputs in ``cfg.out``: ``config.toml`` (the run's config), ``results.json``, ``report.md``,
``confusion.png``, ``curves.png`` (training and validation UA along the C grid, per split) and, with ``save_head``, ``head.safetensors`` (fitted on all labelled data with the
median chosen C).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..corpora import prepare
from ..corpora.manifest import Item
from ..errors import EmofuseError, InputError
from ..taxonomy import EMOTIONS
from .config import TrainConfig, config_to_dict, dump_config, load_config
from .metrics import classification_metrics, confusion_markdown, summarize_folds, summary_markdown
from .protocols import item_key, make_splits

__all__ = ["evaluate_main", "load_data", "run", "train_main"]



# ------------------------------------------------------------------------------------------- data


def _subsample(items: list[Item], limit: int | None, seed: int) -> list[Item]:
    """A seeded subsample of ``limit`` items (sorted by key first, so input order does not matter)."""
    if limit is None or len(items) <= limit:
        return items
    items = sorted(items, key=item_key)
    idx = np.sort(np.random.default_rng([seed, 7]).permutation(len(items))[:limit])
    return [items[i] for i in idx]


def load_data(cfg: TrainConfig, workers: int = 1, progress: bool = True) -> tuple[list[Item], np.ndarray, dict[str, Any]]:
    """Labelled items of the config's corpora (concatenated), their features (extracted into the cache
    where missing) and a small info dict (warnings, failed items)."""
    from ..extract import extract, load_features

    items: list[Item] = []
    warnings: list[str] = []
    for name in cfg.data.corpora:
        m = prepare(name, cfg.data.root)
        warnings.extend(m.warnings)
        labelled = [it for it in m if it.label is not None]
        if not labelled:
            raise InputError(f"corpus {name} at {cfg.data.root} has no labelled items")
        items.extend(_subsample(labelled, cfg.data.limit, cfg.seed))
    cache = Path(cfg.data.cache)
    rep = extract(items, cfg.data.extractor, cache, workers=workers, progress=progress)
    failed = {i for i, _ in rep.failures}
    if failed:
        warnings.append(f"{len(failed)} items failed feature extraction and are left out "
                        f"(e.g. {sorted(failed)[0]!r})")
        items = [it for it in items if it.id not in failed]
    _, X = load_features(items, cfg.data.extractor, cache)
    info = {"warnings": warnings, "n_failed": len(failed), "extract": {"cached": rep.n_cached, "computed": rep.n_done}}
    return items, X, info


def normalize(X: np.ndarray, items: Sequence[Item], mode: str) -> np.ndarray:
    """Z-score the rows of ``X`` within each corpus or speaker (items without a speaker: their corpus)."""
    if mode == "none":
        return X
    if mode not in ("corpus", "speaker"):
        raise InputError(f"normalize must be 'none', 'corpus' or 'speaker', not {mode!r}")
    groups = [it.corpus if mode == "corpus" or it.speaker is None else f"{it.corpus}/{it.speaker}" for it in items]
    out = np.empty_like(X, dtype=np.float32)
    for g in set(groups):
        rows = np.flatnonzero([x == g for x in groups])
        out[rows] = (X[rows] - X[rows].mean(axis=0)) / (X[rows].std(axis=0) + 1e-6)
    return out


# ------------------------------------------------------------------------------------------- fitting


def _present(labels: Sequence[str]) -> list[str]:
    s = set(labels)
    return [e for e in EMOTIONS if e in s]


def _fit(X: np.ndarray, y: Sequence[str], C: float, cfg: TrainConfig, meta: dict[str, Any] | None = None):
    from .linear import fit_head

    return fit_head(X, list(y), _present(y), C, meta or {}, class_weight=cfg.model.class_weight, seed=cfg.seed)


def _predict(head: Any, X: np.ndarray) -> list[str]:
    if len(X) == 0:
        return []
    return [EMOTIONS[i] for i in head.predict_proba(X).argmax(axis=1)]


def choose_C(Xtr: np.ndarray, ytr: Sequence[str], Xva: np.ndarray, yva: Sequence[str], cfg: TrainConfig,
             labels: Sequence[str], curve: dict[str, float] | None = None) -> tuple[float, dict[str, float], Any]:
    """The C of the grid with the best validation UA (ties: the smaller C), the scores, and its head.
    Only training and validation data are passed in: test labels cannot influence the choice.
    ``curve``, when given, receives the training UA per C (the other half of the training curve)."""
    grid = sorted(cfg.model.C_grid)
    if len(yva) == 0:
        if len(grid) > 1:
            raise InputError(f"{cfg.name}: a split has no validation items, so C cannot be chosen from "
                             f"C_grid={list(grid)}; give a single C or a protocol with validation data")
        return grid[0], {}, _fit(Xtr, ytr, grid[0], cfg)
    best: tuple[float, float, Any] | None = None
    scores: dict[str, float] = {}
    for C in grid:
        head = _fit(Xtr, ytr, C, cfg)
        ua = classification_metrics(list(yva), _predict(head, Xva), labels)["UA"]
        scores[repr(C)] = ua
        if curve is not None:
            curve[repr(C)] = classification_metrics(list(ytr), _predict(head, Xtr), labels)["UA"]
        if best is None or ua > best[1] + 1e-12:
            best = (C, ua, head)
    assert best is not None
    return best[0], scores, best[2]


# ------------------------------------------------------------------------------------------- run


def _carve_from_train(train: list[Item], row: dict[str, int], cfg: TrainConfig) -> tuple[list[int], list[int]]:
    """(train rows, selection rows): a validation part carved from the training items, as the protocols
    carve one (whole speakers where known, else stratified), seeded by the config."""
    from .protocols import carve_val

    p = cfg.protocol.params
    tr, va = carve_val(train, np.random.default_rng([cfg.seed, 99]), p.get("val_speakers", 0.2),
                        float(p.get("val_fraction", 0.1)))
    if not va:
        raise InputError(f"{cfg.name}: could not carve a validation part from the training items")
    return sorted(row[item_key(it)] for it in tr), sorted(row[item_key(it)] for it in va)



def run(cfg: TrainConfig, workers: int = 1, progress: bool = True, save_head: bool = False) -> dict[str, Any]:
    """Run the experiment of ``cfg``; writes the outputs into ``cfg.out`` and returns the results dict."""
    t0 = time.perf_counter()
    if save_head and cfg.data.normalize != "none":
        raise InputError(f"{cfg.name}: --save-head needs data.normalize = \"none\": `emofuse analyze` sees one "
                         "recording at a time and cannot z-score per speaker or corpus as training did")
    items, X, info = load_data(cfg, workers=workers, progress=progress)
    X = normalize(X, items, cfg.data.normalize)
    row = {item_key(it): n for n, it in enumerate(items)}
    splits = make_splits(cfg.protocol.name, items, seed=cfg.seed, **cfg.protocol.params)
    labels = _present([it.label for it in items])  # type: ignore[misc]
    folds: list[dict[str, Any]] = []
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for sp in splits:
        ts = time.perf_counter()
        tr = [row[k] for k in sp.train]
        va = [row[k] for k in sp.val]
        te = [row[k] for k in sp.test]
        y = [it.label for it in items]
        if te:
            on, ev, sel = "test", te, va
        else:  # no test part: evaluate on val, and choose C on a part carved from train (never on val)
            if not va:
                raise InputError(f"split {sp.name!r} has neither test nor validation items to evaluate on")
            on, ev = "validation", va
            tr, sel = _carve_from_train([items[i] for i in tr], row, cfg)
        ytr, ysel = [y[i] for i in tr], [y[i] for i in sel]
        train_ua: dict[str, float] = {}
        C, scores, head = choose_C(X[tr], ytr, X[sel], ysel, cfg, labels, train_ua)
        # only now are the evaluation items' labels read
        m = classification_metrics([y[i] for i in ev], _predict(head, X[ev]), labels)
        cm += np.asarray(m["confusion_matrix"], dtype=np.int64)
        folds.append({"split": sp.name, "evaluated_on": on, "n_train": len(tr), "n_val": len(va), "n_test": len(te),
                      "n_select": len(sel),
                      "C": C, "val_UA_by_C": scores, "train_UA_by_C": train_ua,
                      "speaker_independent": sp.speaker_independent,
                      "seconds": round(time.perf_counter() - ts, 3), "metrics": m})
    evaluated_on = sorted({f["evaluated_on"] for f in folds})
    summary = summarize_folds(folds)
    result: dict[str, Any] = {
        "name": cfg.name, "config": config_to_dict(cfg), "protocol": cfg.protocol.name,
        "evaluated_on": evaluated_on[0] if len(evaluated_on) == 1 else "mixed",
        "n_items": len(items), "labels": labels, "label_counts": {lab: sum(it.label == lab for it in items) for lab in labels},
        "feature_dim": int(X.shape[1]), "folds": folds, "summary": summary,
        "chosen_C": [f["C"] for f in folds], "confusion_matrix": cm.tolist(), "data": info,
    }
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if save_head:
        Cs = sorted(f["C"] for f in folds)
        C_final = Cs[(len(Cs) - 1) // 2]  # lower median: a value of the grid
        head = _fit(X, [it.label for it in items], C_final, cfg, _head_meta(cfg, items, result, C_final))
        head.save(out / "head.safetensors")
        result["head"] = {"path": str(out / "head.safetensors"), "C": C_final}
    result["seconds"] = round(time.perf_counter() - t0, 3)
    (out / "config.toml").write_text(dump_config(cfg), encoding="utf-8")
    (out / "results.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    _plot_confusion(cm, labels, out / "confusion.png", f"{cfg.name} ({result['evaluated_on']}, summed over splits)")
    _plot_curves(folds, out / "curves.png", cfg.name)
    (out / "report.md").write_text(_report(cfg, result), encoding="utf-8")
    return result


def _head_meta(cfg: TrainConfig, items: list[Item], result: dict[str, Any], C: float) -> dict[str, Any]:
    from ..extract import get_extractor

    ex = get_extractor(cfg.data.extractor)
    return {
        "kind": ex.modality,
        "feature": {"extractor": ex.name, "dim": result["feature_dim"], **ex.identity()},
        "training": {"config": config_to_dict(cfg), "C": C, "class_weight": cfg.model.class_weight,
                     "corpora": list(cfg.data.corpora), "n_items": len(items),
                     "label_counts": result["label_counts"], "fit_on": "all labelled items"},
        "metrics": {k: round(v["mean"], 4) for k, v in result["summary"].items()}
        | {f"{k}_std": round(v["std"], 4) for k, v in result["summary"].items()},
        "metrics_note": f"{cfg.protocol.name} {result['evaluated_on']} figures, mean over {len(result['folds'])} "
                        f"split(s); C chosen per split on validation data",
    }


def _plot_confusion(cm: np.ndarray, labels: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(labels), 0.8 + 0.8 * len(labels)))
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black",
                    fontsize=8)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_curves(folds: list[dict[str, Any]], path: Path, title: str) -> None:
    """Training (dashed) and validation (solid) UA along the C grid, one colour per split: the training
    curve of a linear head, whose only capacity knob is C. The chosen C is marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, f in enumerate(folds):
        col = f"C{i % 10}"
        if f["val_UA_by_C"]:
            Cs = sorted(f["val_UA_by_C"], key=float)
            ax.plot([float(c) for c in Cs], [100 * f["val_UA_by_C"][c] for c in Cs], "-o", color=col, ms=3,
                    label=f["split"])
            ax.plot([f["C"]], [100 * f["val_UA_by_C"][repr(f["C"])]], "*", color=col, ms=10)
        if f["train_UA_by_C"]:
            Cs = sorted(f["train_UA_by_C"], key=float)
            ax.plot([float(c) for c in Cs], [100 * f["train_UA_by_C"][c] for c in Cs], "--", color=col, alpha=0.6)
    ax.set_xscale("log")
    ax.set_xlabel("C (inverse L2 strength)")
    ax.set_ylabel("UA %")
    ax.set_title(f"{title}: train (dashed) / validation (solid), * = chosen", fontsize=9)
    if len(folds) <= 12:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _report(cfg: TrainConfig, r: dict[str, Any]) -> str:
    on = r["evaluated_on"]
    L = [f"# {cfg.name}", "",
         f"Corpora: {', '.join(cfg.data.corpora)} ({r['n_items']} labelled items); features `{cfg.data.extractor}` "
         f"(dim {r['feature_dim']}); protocol `{cfg.protocol.name}` {cfg.protocol.params or ''}; "
         f"linear head, C from {list(cfg.model.C_grid)} by validation UA, class_weight={cfg.model.class_weight}.", ""]
    if cfg.data.normalize != "none":
        L += [f"Features z-scored per {cfg.data.normalize} with that group's own unlabelled features (test "
              "groups included: transductive normalisation).", ""]
    if on != "test":
        L += [f"**These are {on} figures** (no test items in some split; there C was chosen on a part carved "
              "from train, and the head was fitted on the rest of train).", ""]
    L += ["| split | on | train | val | test | C-selection items | C | UA | WA | macro-F1 |", "|---" * 10 + "|"]
    for f in r["folds"]:
        m = f["metrics"]
        L.append(f"| {f['split']} | {f['evaluated_on']} | {f['n_train']} | {f['n_val']} | {f['n_test']} | {f['n_select']} | {f['C']:g} | "
                 f"{100 * m['UA']:.1f} | {100 * m['WA']:.1f} | {100 * m['macro_f1']:.1f} |")
    L += summary_markdown(r["summary"], len(r["folds"]), on) + confusion_markdown(r["labels"], r["confusion_matrix"])
    L += ["", "![confusion](confusion.png)", "", "![training curves](curves.png)", "", f"Run time {r.get('seconds', 0):.1f} s."]
    if r["data"]["warnings"]:
        L += ["", "Warnings:", ""] + [f"- {w}" for w in r["data"]["warnings"]]
    return "\n".join(L) + "\n"


# ------------------------------------------------------------------------------------------- CLI


def train_main(argv: Sequence[str] | None = None) -> int:
    """``emofuse train CONFIG.toml [--workers N] [--save-head] [--out DIR]``; 0 on success, 2 on input errors."""
    ap = argparse.ArgumentParser(prog="emofuse train", description="Train and evaluate a head from a config.")
    ap.add_argument("config", type=Path)
    ap.add_argument("--workers", type=int, default=1, help="feature-extraction processes")
    ap.add_argument("--save-head", action="store_true", help="also fit a head on all labelled data and save it")
    ap.add_argument("--out", default=None, help="output folder (overrides the config's `out`)")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    try:
        cfg = load_config(a.config)
        if a.out:
            from dataclasses import replace

            cfg = replace(cfg, out=a.out)
        r = run(cfg, workers=a.workers, progress=not a.no_progress, save_head=a.save_head)
    except (EmofuseError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    s = r["summary"]
    print(f"{cfg.name}: {len(r['folds'])} split(s), {r['evaluated_on']}: UA {s['UA']['text']}  WA {s['WA']['text']}  "
          f"macro-F1 {s['macro_f1']['text']}  (C per split {r['chosen_C']}, {r['seconds']:.1f} s)")
    print(f"report: {Path(cfg.out) / 'report.md'}")
    return 0


def evaluate_main(argv: Sequence[str] | None = None) -> int:
    """``emofuse evaluate --head H --corpus NAME --data ROOT --extractor NAME [--split test|val|all]``."""
    from ..experts import LinearHead
    from ..extract import extract, load_features

    ap = argparse.ArgumentParser(prog="emofuse evaluate", description="Evaluate a saved head on a corpus.")
    ap.add_argument("--head", type=Path, required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--extractor", required=True)
    ap.add_argument("--split", choices=("test", "val", "all"), default="test")
    ap.add_argument("--cache", default=".cache/features")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--limit", type=int, default=None, help="a seeded subsample of N items")
    ap.add_argument("--out", type=Path, default=None, help="metrics JSON (default: next to the head)")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    try:
        head = LinearHead.load(a.head)
        want = head.meta.get("feature", {}).get("extractor")
        if want and want != a.extractor:
            raise InputError(f"head {a.head} was trained on {want!r} features, not {a.extractor!r}")
        m = prepare(a.corpus, a.data)
        items = [it for it in m if it.label is not None]
        if a.split == "test":
            items = [it for it in items if it.split == "test"]
        elif a.split == "val":
            items = [it for it in items if it.split in ("val", "dev")]
        if not items:
            raise InputError(f"corpus {a.corpus} has no labelled items in split {a.split!r}; try --split all")
        items = _subsample(items, a.limit, 0)
        rep = extract(items, a.extractor, Path(a.cache), workers=a.workers, progress=not a.no_progress)
        failed = {i for i, _ in rep.failures}
        items = [it for it in items if it.id not in failed]
        _, X = load_features(items, a.extractor, Path(a.cache))
        if X.shape[1] != head.W.shape[0]:
            raise InputError(f"features have dim {X.shape[1]} but head {a.head} expects {head.W.shape[0]}")
        y = [it.label for it in items]
        labels = _present(y + list(head.labels))  # type: ignore[operator]
        met = classification_metrics(y, _predict(head, X), labels)
    except (EmofuseError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    res = {"head": str(a.head), "corpus": a.corpus, "split": a.split, "extractor": a.extractor, "n": len(items),
           "n_failed": len(failed), "labels": labels, "metrics": met}
    out = a.out or a.head.with_name(f"{a.head.stem}.eval-{a.corpus}-{a.split}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2), encoding="utf-8")
    print(f"{a.corpus} {a.split} ({len(items)} items): UA {100 * met['UA']:.1f}  WA {100 * met['WA']:.1f}  "
          f"macro-F1 {100 * met['macro_f1']:.1f}  -> {out}")
    return 0
