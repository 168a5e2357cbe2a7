"""What a training run writes besides ``results.json``: ``report.md``, ``confusion.png`` and ``curves.png``
(training and validation score along the C grid for linear heads, along the epochs for networks)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    _plt().close(fig)
    return path


def plot_confusion(cm: np.ndarray, labels: Sequence[str], path: str | Path, title: str) -> Path:
    """Row-normalised confusion matrix with counts in the cells."""
    plt = _plt()
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * n, 0.8 + 0.8 * n))
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black",
                    fontsize=8)
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_c_curves(folds: Sequence[Mapping[str, Any]], path: str | Path, title: str, metric: str) -> Path:
    """Training (dashed) and validation (solid) score along the C grid, one colour per split: the training
    curve of a linear head, whose capacity knob is C. The chosen C is marked."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, f in enumerate(folds):
        col = f"C{i % 10}"
        val, train = f.get("val_score_by_C") or {}, f.get("train_score_by_C") or {}
        if val:
            Cs = sorted(val, key=float)
            ax.plot([float(c) for c in Cs], [100 * val[c] for c in Cs], "-o", color=col, ms=3, label=f["split"])
            if repr(f["C"]) in val:
                ax.plot([f["C"]], [100 * val[repr(f["C"])]], "*", color=col, ms=10)
        if train:
            Cs = sorted(train, key=float)
            ax.plot([float(c) for c in Cs], [100 * train[c] for c in Cs], "--", color=col, alpha=0.6)
    ax.set_xscale("log")
    ax.set_xlabel("C (inverse L2 strength)")
    ax.set_ylabel(f"{metric} %")
    ax.set_title(f"{title}: train (dashed) / validation (solid), * = chosen", fontsize=9)
    if 0 < len(folds) <= 12:
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_epoch_curves(history: Sequence[Mapping[str, float]] | Mapping[str, Sequence[Mapping[str, float]]],
                      path: str | Path, title: str = "", metric: str = "UA") -> Path:
    """Training loss and validation metric per epoch (one line per run when given ``{run: history}``)."""
    plt = _plt()
    runs = history if isinstance(history, Mapping) else {"": history}
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    key = "val_loss" if metric == "loss" else f"val_{metric}"
    for label, h in runs.items():
        ep = [r["epoch"] for r in h]
        a.plot(ep, [r["train_loss"] for r in h], label=label or None)
        b.plot(ep, [r[key] for r in h], label=label or None)
    a.set_xlabel("epoch")
    a.set_ylabel("training loss")
    b.set_xlabel("epoch")
    b.set_ylabel(f"validation {metric}")
    if len(runs) > 1:
        b.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path, dpi=100)


# ------------------------------------------------------------------------------------------- markdown


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def confusion_markdown(labels: Sequence[str], cm: Sequence[Sequence[int]]) -> list[str]:
    """A confusion matrix as Markdown table lines (rows true, columns predicted)."""
    lines = ["| true \\ pred | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    return lines + [f"| {lab} | " + " | ".join(str(v) for v in row) + " |" for lab, row in zip(labels, cm)]


def _protocol_markdown(p: Mapping[str, Any], labels: Sequence[str], kind: str) -> list[str]:
    on = p["evaluated_on"]
    L = [f"## Protocol `{p['protocol']}` {p.get('params') or ''}", ""]
    if on != "test":
        L += [f"**These are {on} figures** (no test items in some split; hyper-parameters were then chosen on "
              "a part carved from train, never on the evaluated part).", ""]
    if kind == "linear":
        L += ["| split | on | train | val | test | selection items | C | class weight | UA | WA | macro-F1 | "
              "T | ECE before → after |", "|---" * 13 + "|"]
        for f in p["folds"]:
            m = f["metrics"]
            cal = f.get("calibration")
            ece = (f"{cal['temperature']:.2f} | {cal['ece_evaluated_before']:.3f} → {cal['ece_evaluated_after']:.3f}"
                   if cal else "– | –")
            L.append(f"| {f['split']} | {f['evaluated_on']} | {f['n_train']} | {f['n_val']} | {f['n_test']} | "
                     f"{f['n_select']} | {f['C']:g} | {f['class_weight']} | {_pct(m['UA'])} | {_pct(m['WA'])} | "
                     f"{_pct(m['macro_f1'])} | {ece} |")
        if any(f.get("calibration") for f in p["folds"]):
            L += ["", "T: the temperature fitted on the split's selection rows (held-out predictions of the grid "
                  "search); ECE (15 bins) on the evaluated part before → after dividing the logits by T."]
    else:
        L += ["| split | on | train | val | test | best epoch | val UA | UA | WA | macro-F1 | s |", "|---" * 11 + "|"]
        for f in p["folds"]:
            m = f["metrics"]
            L.append(f"| {f['split']} | {f['evaluated_on']} | {f['n_train']} | {f['n_val']} | {f['n_test']} | "
                     f"{f['best_epoch']} | {_pct(f['val']['UA'])} | {_pct(m['UA'])} | {_pct(m['WA'])} | "
                     f"{_pct(m['macro_f1'])} | {f['seconds']:.1f} |")
    s = p["summary"]
    L += ["", f"**Mean ± std over {len(p['folds'])} split(s) ({on}):** UA {s['UA']['text']}, WA {s['WA']['text']}, "
          f"macro-F1 {s['macro_f1']['text']}, weighted F1 {s['weighted_f1']['text']}", ""]
    if len(p["by_corpus"]) > 1:
        L += ["Per evaluated corpus (mean ± std over the splits that evaluate it):", "",
              "| corpus | splits | UA | WA | macro-F1 | weighted F1 |", "|---|---|---|---|---|---|"]
        for c, cs in p["by_corpus"].items():
            L.append(f"| {c} | {cs['n_splits']} | {cs['UA']['text']} | {cs['WA']['text']} | {cs['macro_f1']['text']} | "
                     f"{cs['weighted_f1']['text']} |")
        L.append("")
    if p["protocol"] == "loco":  # one matrix per held-out corpus, on its own classes
        for f in p["folds"]:
            cm = np.asarray(f["metrics"]["confusion_matrix"])
            keep = [i for i, lab in enumerate(labels) if cm[i].sum() or cm[:, i].sum()]
            L += [f"Confusion matrix of {f['split']} (rows true, columns predicted):", ""]
            L += confusion_markdown([labels[i] for i in keep], cm[np.ix_(keep, keep)].tolist()) + [""]
        return L
    L += ["Confusion matrix (rows true, columns predicted, summed over splits):", ""]
    return L + confusion_markdown(labels, p["confusion_matrix"]) + [""]


def report_markdown(r: Mapping[str, Any]) -> str:
    """The run's ``report.md`` (linear heads and networks)."""
    cfg = r["config"]
    d = cfg["data"]
    L = [f"# {r['name']}", ""]
    if r["kind"] == "linear":
        m = cfg["model"]
        views = f" (+ training views {', '.join(d['train_views'])})" if d.get("train_views") else ""
        L += [f"Corpora: {', '.join(d['corpora'])} ({r['n_items']} labelled items, {len(r['labels'])} classes: "
              f"{', '.join(r['labels'])}); features `{d['extractor']}`{views} (dim {r['feature_dim']}); linear head, "
              f"C from {m['C_grid']}, class weight {m['class_weight']}, selected by {r['select_metric']} on "
              + (f"{m['select_folds']} speaker-disjoint folds of each split's training part." if m["select_folds"]
                 else "each split's validation part."), ""]
        if d.get("normalize", "none") != "none":
            L += [f"Features z-scored per {d['normalize']} with that group's own unlabelled features (test groups "
                  "included: transductive normalisation).", ""]
    else:
        mods = ", ".join(f"{mod} = `{src}` ({r['kinds'][mod]})" for mod, src in r["sources"].items())
        t = cfg["fusion"]["train"]
        L += [f"Fusion network `{cfg['fusion']['model']}` ({r['n_params']:,} parameters) on {', '.join(d['corpora'])} "
              f"({r['n_items']} labelled items, {len(r['labels'])} classes: {', '.join(r['labels'])}); modalities "
              f"{mods}. Features standardised with each split's training statistics; the epoch is chosen on the "
              f"validation part by {t['metric']} (patience {t['patience']}).", ""]
    for p in [r] + list(r.get("other_protocols", [])):
        L += _protocol_markdown(p, r["labels"], r["kind"])
    cal = r.get("final", {}).get("calibration")
    if cal:
        L += [f"**Calibration of the saved head:** temperature {cal['temperature']:.2f}, fitted on the held-out "
              f"selection predictions of every split ({cal['n_calibration_rows']} rows); ECE there "
              f"{cal['ece_select_before']:.3f} → {cal['ece_select_after']:.3f}.", ""]
    e = r.get("final", {}).get("evaluated")
    if e:  # holdout: the saved head (fitted on train, selection part included) never saw the evaluated part
        L += [f"**The saved head** (C={r['final']['C']:g}, class weight {r['final']['class_weight']}, fitted on "
              f"{r['final']['n_items']} items) on the same {r['evaluated_on']} part: UA {_pct(e['UA'])}, "
              f"WA {_pct(e['WA'])}, macro-F1 {_pct(e['macro_f1'])}, weighted F1 {_pct(e['weighted_f1'])}"
              + "".join(f"; {c}: UA {_pct(b['UA'])}, macro-F1 {_pct(b['macro_f1'])}, weighted F1 "
                        f"{_pct(b['weighted_f1'])}" for c, b in e["by_corpus"].items()) + ".", ""]
    if r.get("regression"):
        L += ["## Valence / arousal regressors", "",
              "Ridge on the head's standardised features; alpha chosen on a part carved from the training splits; "
              "figures on each corpus's evaluation split.", "",
              "| target | alpha | corpus | on | n | Corr | MAE | Acc-2 (non-0) |", "|---|---|---|---|---|---|---|---|"]
        for target, t in r["regression"].items():
            for c, cm in t["by_corpus"].items():
                L.append(f"| {target} | {t['alpha']:g} | {c} | {cm['evaluated_on']} | {cm['n']} | {cm['Corr']:.3f} | "
                         f"{cm['MAE']:.3f} | {cm['Acc2_non0']:.3f} |")
        L.append("")
    L += ["![confusion](confusion.png)", "", "![training curves](curves.png)", "",
          f"Run time {r.get('seconds', 0):.1f} s."]
    if r.get("saved"):
        L += ["", f"Saved: `{r['saved']['path']}` ({r['saved']['what']})."]
    warnings = r.get("data", {}).get("warnings") or []
    if warnings:
        L += ["", "Warnings:", ""] + [f"- {w}" for w in warnings]
    return "\n".join(L) + "\n"
