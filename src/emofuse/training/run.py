"""Config-driven training runs: corpora -> cached features -> protocol splits -> a linear head or a fusion
network per split -> figures, report and (optionally) the saved model.

    from emofuse.training.config import load_config
    from emofuse.training.run import run, evaluate_head
    result = run(load_config("configs/voice_ravdess_kfold.toml"), workers=2)

    emofuse train configs/ship_voice_whisper_base.toml [--workers N] [--save PATH]
    emofuse evaluate --head H.safetensors --corpus meld --data ../shared/data [--split test|val|all]

**Selection never sees what is evaluated.** Per split, the evaluated part is the split's test part, or its
validation part when it has no test items (a holdout corpus whose test labels are withheld; every figure
is then labelled "validation"). Hyper-parameters are chosen on data outside it:

* linear heads: every (C, class weight, corpus weight) of the grid is scored by ``model.select`` (UA by
  default; per corpus and averaged when a table) on the split's validation part, or on
  ``model.select_folds`` speaker-disjoint folds of its training part, or — when the validation part is
  the evaluated one — on a part carved from the training items as the protocols carve validation. Ties go
  to the smaller C. ``data.train_views`` add rows (other poolings of the same training items) to every
  fit, never to a selection or evaluation part.
* networks: the epoch is chosen on the split's validation part (:func:`emofuse.training.networks.fit`).

**Saved models** (``save``): a linear head is fitted on every item some split of the first protocol
fitted or selected on (for k-fold and leave-one-out protocols: all items; for holdout: its training
split), with the grid point of the best mean selection score over that protocol's splits; its metadata
records every protocol's figures. A network checkpoint is the first split's network (epoch chosen on its
validation part), as the figures describe.

``data.normalize`` ("corpus" or "speaker") z-scores the features within each corpus or speaker, using
that group's own (unlabelled) features, test speakers included: the usual speaker normalisation of
cross-corpus speech emotion work. It is transductive, so the report says so, and no head trained this
way can be saved for ``analyze``.

Outputs in ``cfg.out``: ``config.toml``, ``results.json``, ``fold-<split>.json``, ``report.md``,
``confusion.png`` and ``curves.png``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..corpora.manifest import Item, item_key
from ..errors import InputError
from .config import TrainConfig, config_to_dict, dump_config
from ..corpora import CORPUS_FEATURES
from .data import Labelled, labelled, modalities, normalize, regression_items, subsample, vectors
from .metrics import SUMMARY_KEYS, classification_metrics, regression_metrics, summarize_folds
from .protocols import Split, carve_val, inner_folds, make_splits
from .run_report import plot_c_curves, plot_confusion, plot_epoch_curves, report_markdown

__all__ = ["evaluate_head", "run"]


def _log(progress: bool, msg: str) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------- linear heads


def _carve_selection(train: list[Item], params: dict[str, Any], cfg: TrainConfig, split: str
                     ) -> tuple[list[Item], list[Item]]:
    """(fit, selection) items carved from a split's training items, as the protocols carve validation (its
    ``val_speakers`` / ``val_fraction`` / ``val_group``): for splits whose validation part is the evaluated one."""
    a, b = carve_val(train, np.random.default_rng([cfg.seed, 99]), params.get("val_speakers", 0.2),
                     float(params.get("val_fraction", 0.1)), params.get("val_group"))
    if not b or not a:
        raise InputError(f"{cfg.name}: could not carve a selection part from split {split!r}'s training items; "
                         "lower val_speakers / val_fraction, or use a protocol with a test part")
    return a, b


GridPoint = tuple[float, "str | None", tuple[tuple[str, float], ...]]  # C, class weight, corpus weights


class _Linear:
    """Per-split fitting of linear heads (see the module docstring)."""

    def __init__(self, cfg: TrainConfig, data: Labelled, X: np.ndarray, views: list[np.ndarray]) -> None:
        assert cfg.model is not None
        self.cfg, self.m, self.data, self.X, self.views = cfg, cfg.model, data, X, views
        self.y = np.array(data.y, dtype=object)
        self.corpus = np.array([it.corpus for it in data.items], dtype=object)
        self.row = {item_key(it): n for n, it in enumerate(data.items)}
        weights = [[(c, w) for w in ws] for c, ws in self.m.corpus_weight]
        self.options = [(cw, tuple(wt)) for cw in self.m.class_weights for wt in itertools.product(*weights)]
        self.curves: list[dict[GridPoint, float]] = []  # first protocol's selection scores, per split
        self.fitted_rows: set[int] = set()
        self.evaluated_rows: set[int] = set()
        # calibration: each grid point's held-out log-probabilities on the selection rows (of the split being
        # fitted; reset per split), and the first protocol's, per split
        self.last_logp: dict[GridPoint, list[tuple[list[int], np.ndarray]]] = {}
        self.logps: list[dict[GridPoint, list[tuple[list[int], np.ndarray]]]] = []

    # -- pieces

    def _rows(self, items: Sequence[Item]) -> list[int]:
        return sorted(self.row[item_key(it)] for it in items)

    def _fit_data(self, rows: Sequence[int], wt: tuple[tuple[str, float], ...]) -> tuple[np.ndarray, np.ndarray, Any]:
        rows = list(rows)
        X = np.vstack([self.X[rows]] + [v[rows] for v in self.views])
        y = np.tile(self.y[rows], 1 + len(self.views))
        w = None
        if wt:
            per = dict(wt)
            w = np.tile(np.array([per.get(c, 1.0) for c in self.corpus[rows]], dtype=np.float64), 1 + len(self.views))
        return X, y, w

    def score(self, rows: Sequence[int], pred: Sequence[str]) -> float:
        """The selection score of predictions ``pred`` on ``rows``."""
        sel = self.m.select
        labels = self.data.labels
        if isinstance(sel, str):
            return classification_metrics(list(self.y[list(rows)]), list(pred), labels)[sel]
        pred = np.asarray(pred, dtype=object)
        rows = np.asarray(rows)
        vals = []
        for corpus, metric in sel:
            k = self.corpus[rows] == corpus
            if k.any():
                vals.append(classification_metrics(list(self.y[rows[k]]), list(pred[k]), labels)[metric])
        return float(np.mean(vals))

    def _feature(self) -> Any:
        from ..checkpoints import FeatureSpec

        return FeatureSpec.of_extractor(self.cfg.data.extractor or "", self.X.shape[1])  # type: ignore[arg-type]

    def _head(self, rows: Sequence[int], point: GridPoint, meta: dict[str, Any] | None = None) -> Any:
        from .linear import fit_head

        C, cw, wt = point
        X, y, w = self._fit_data(rows, wt)
        return fit_head(X, list(y), self.data.labels, C, self._feature(), meta, cw, self.cfg.seed, w)

    def grid_scores(self, pairs: Sequence[tuple[list[int], list[int]]]
                    ) -> tuple[dict[GridPoint, float], dict[GridPoint, float]]:
        """Mean selection score (and mean training score) of every grid point over the (fit, select) pairs."""
        from ..checkpoints import FeatureSpec
        from .linear import c_path, to_head

        spec = FeatureSpec("selection", self.X.shape[1])
        sel: dict[GridPoint, list[float]] = {}
        tr: dict[GridPoint, list[float]] = {}
        for cw, wt in self.options:
            for fit_rows, sel_rows in pairs:
                X, y, w = self._fit_data(fit_rows, wt)
                for C, clf, mean, scale in c_path(X, list(y), self.m.C_grid, cw, self.cfg.seed, w):
                    head = to_head(clf, mean, scale, self.data.labels, spec, {})
                    p = head.scores(self.X[sel_rows])
                    pred = [self.data.labels[i] for i in p.argmax(axis=1)]
                    sel.setdefault((C, cw, wt), []).append(self.score(sel_rows, pred))
                    tr.setdefault((C, cw, wt), []).append(self.score(fit_rows, head.predict_labels(self.X[fit_rows])))
                    if self.m.calibrate:
                        self.last_logp.setdefault((C, cw, wt), []).append((list(sel_rows), np.log(p + 1e-12)))
        return {k: float(np.mean(v)) for k, v in sel.items()}, {k: float(np.mean(v)) for k, v in tr.items()}

    def _held_out(self, logp: Sequence[tuple[list[int], np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """Selection rows' log-probabilities and true class indices, pooled over the selection pairs."""
        rows = [r for rs, _ in logp for r in rs]
        y = np.array([self.data.labels.index(c) for c in self.y[rows]])
        return np.vstack([lp for _, lp in logp]), y

    def _temperature(self, logp: Sequence[tuple[list[int], np.ndarray]]) -> dict[str, Any]:
        """Temperature scaling fitted on held-out selection log-probabilities; ECE there before/after."""
        from scipy.special import softmax

        from .linear import fit_temperature
        from .metrics import expected_calibration_error as ece

        z, y = self._held_out(logp)
        T = fit_temperature(z, y)
        return {"temperature": T, "ece_select_before": ece(softmax(z, axis=1), y),
                "ece_select_after": ece(softmax(z / T, axis=1), y), "n_calibration_rows": int(len(y))}

    def _calibration(self, logp: Sequence[tuple[list[int], np.ndarray]], head: Any, ev: Sequence[int]) -> dict[str, Any]:
        """:meth:`_temperature` of a split, and ECE before/after on its evaluated rows (never part of the fit)."""
        from scipy.special import softmax

        from .metrics import expected_calibration_error as ece

        cal = self._temperature(logp)
        ze = np.log(head.scores(self.X[list(ev)]) + 1e-12)
        ye = np.array([self.data.labels.index(c) for c in self.y[list(ev)]])
        return cal | {"ece_evaluated_before": ece(softmax(ze, axis=1), ye),
                      "ece_evaluated_after": ece(softmax(ze / cal["temperature"], axis=1), ye)}

    @staticmethod
    def best(scores: dict[GridPoint, float]) -> GridPoint:
        """The highest score; ties to the smaller C, then the earlier grid option."""
        order = list(scores)
        return max(order, key=lambda k: (round(scores[k], 12), -k[0], -order.index(k)))

    # -- a split

    def split(self, sp: Split, primary: bool, params: dict[str, Any]) -> tuple[dict[str, Any], list[int], list[str]]:
        tr, va, te = ([self.row[k] for k in ids] for ids in (sp.train, sp.val, sp.test))
        self.last_logp = {}
        items = self.data.items
        if te:
            on, ev = "test", te
            if self.m.select_folds:
                fit = tr + va
                pairs = [(self._rows(a), self._rows(b)) for a, b in
                         inner_folds([items[i] for i in fit], self.m.select_folds, self.cfg.seed)]
            elif va:
                fit, pairs = tr, [(tr, va)]
            else:
                fit, pairs = tr, []
        else:
            if not va:
                raise InputError(f"split {sp.name!r} has neither test nor validation items to evaluate on")
            on, ev = "validation", va
            if self.m.select_folds:
                fit = tr
                pairs = [(self._rows(a), self._rows(b)) for a, b in
                         inner_folds([items[i] for i in tr], self.m.select_folds, self.cfg.seed)]
            else:  # choose on a part carved from train, never on the evaluated validation part
                a, b = _carve_selection([items[i] for i in tr], params, self.cfg, sp.name)
                fit = self._rows(a)
                pairs = [(fit, self._rows(b))]
        n_points = len(self.m.C_grid) * len(self.options)
        if not pairs:
            if n_points > 1:
                raise InputError(f"{self.cfg.name}: split {sp.name!r} has no validation items, so the grid of "
                                 f"{n_points} settings cannot be chosen from; give single values or a protocol with "
                                 "validation data")
            scores, train_scores = {(self.m.C_grid[0],) + self.options[0]: float("nan")}, {}
        else:
            scores, train_scores = self.grid_scores(pairs)
        point = self.best(scores) if pairs else next(iter(scores))
        head = self._head(fit, point)  # evaluation labels are read only after this
        pred = _predict(head, self.X[ev], sp.test_labels if on == "test" else ())
        record_cal = self._calibration(self.last_logp[point], head, ev) if self.m.calibrate and pairs else None
        if primary:
            self.curves.append(scores)
            self.logps.append(self.last_logp)
            self.fitted_rows |= (set(tr) | set(va) | set(te)) - set(ev)
            self.evaluated_rows |= set(ev)
        C, cw, wt = point
        same = [k for k in scores if k[1:] == point[1:]]
        record = {"n_train": len(fit), "n_select": len(set().union(*(set(b) for _, b in pairs))) if pairs else 0,
                  "select_folds": self.m.select_folds, "C": C, "class_weight": cw or "none",
                  "corpus_weight": dict(wt), "val_score_by_C": {repr(k[0]): scores[k] for k in same},
                  "train_score_by_C": {repr(k[0]): train_scores[k] for k in same if k in train_scores},
                  "grid": [{"C": k[0], "class_weight": k[1] or "none", "corpus_weight": dict(k[2]), "score": v}
                           for k, v in scores.items()]}
        if record_cal is not None:
            record["calibration"] = record_cal
        return record | {"evaluated_on": on}, ev, pred

    # -- the final head

    def final(self, result: dict[str, Any]) -> Any:
        """The head to save: the best mean selection score over the first protocol's splits, fitted on every
        row those splits fitted or selected on."""
        keys = list(self.curves[0])
        mean = {k: float(np.nanmean([c.get(k, np.nan) for c in self.curves])) for k in keys}
        point = self.best(mean) if len(keys) > 1 else keys[0]
        rows = sorted(self.fitted_rows)
        t = time.perf_counter()
        head = self._head(rows, point)
        cal: dict[str, Any] = {}
        pooled = [x for lp in self.logps for x in lp.get(point, [])]
        if self.m.calibrate and pooled:  # one temperature from every split's held-out selection rows
            from .linear import calibrated

            cal = self._temperature(pooled)
            head = calibrated(head, cal["temperature"])
        C, cw, wt = point
        result["final"] = {"C": C, "class_weight": cw or "none", "corpus_weight": dict(wt), "n_items": len(rows),
                           "n_rows": len(rows) * (1 + len(self.views)), "mean_select_score": mean[point],
                           "fit_seconds": round(time.perf_counter() - t, 2)} | ({"calibration": cal} if cal else {})
        if not self.evaluated_rows & set(rows):  # holdout: the saved head has not seen the evaluated part either
            ev = sorted(self.evaluated_rows)
            result["final"]["evaluated"] = _scores([self.data.y[i] for i in ev], head.predict_labels(self.X[ev]),
                                                   [self.data.items[i].corpus for i in ev], self.data.labels)
        return head

    def regression(self, head: Any, progress: bool, workers: int) -> dict[str, Any]:
        """Ridge valence/arousal regressors on ``head``'s standardised features (sets head.R, head.c)."""
        from .linear import fit_ridge

        rc = self.cfg.regression
        assert rc is not None
        out: dict[str, Any] = {}
        R = np.zeros((head.W.shape[0], 2), np.float32)
        c = np.zeros(2, np.float32)
        for target, corp_metrics in rc.targets:
            metric = dict(corp_metrics)
            per = regression_items(list(metric), self.cfg.data.root, target)
            train = [it for c_ in per for it in per[c_] if it.split == "train"]
            evals = {c_: ([it for it in per[c_] if it.split == "test"]
                          or [it for it in per[c_] if it.split in ("val", "dev")]) for c_ in per}
            if not train or not all(evals.values()):
                raise InputError(f"regression.{target}: each corpus needs official train and val/dev/test splits")
            allits = train + [it for v in evals.values() for it in v]
            X, failed = vectors(allits, self.cfg.data.extractor or "", self.cfg.data.cache, workers, progress)
            keep = [n for n, it in enumerate(allits) if item_key(it) not in failed]
            Z = {item_key(allits[n]): (X[n] - head.mean) / head.scale for n in keep}
            t = {item_key(it): float(getattr(it, target)) for it in allits}
            tr_items = [it for it in train if item_key(it) in Z]
            fit_items, sel_items = carve_val(tr_items, np.random.default_rng([self.cfg.seed, 98]), 0.2,
                                             rc.val_fraction, rc.val_group)

            def arrays(its: Sequence[Item]) -> tuple[np.ndarray, np.ndarray]:
                return (np.stack([Z[item_key(it)] for it in its]), np.array([t[item_key(it)] for it in its]))

            def scored(w: np.ndarray, b: float, its: Sequence[Item]) -> float:
                vals = []
                for corpus, met in corp_metrics:
                    own = [it for it in its if it.corpus == corpus]
                    if own:
                        Zs, ts = arrays(own)
                        vals.append(regression_metrics(ts, Zs @ w + b)[met])
                return float(np.nanmean(vals))

            Zf, tf = arrays(fit_items)
            scores = {a: scored(*fit_ridge(Zf, tf, a), sel_items) for a in rc.alpha_grid}
            alpha = max(scores, key=lambda a: (round(scores[a], 12), -a))
            w, b = fit_ridge(*arrays(tr_items), alpha)
            by_corpus = {}
            for corpus, its in evals.items():
                its = [it for it in its if item_key(it) in Z]
                Zs, ts = arrays(its)
                m = regression_metrics(ts, np.clip(Zs @ w + b, -1, 1))
                by_corpus[corpus] = {"evaluated_on": "test" if its[0].split == "test" else "validation", "n": len(its),
                                     **{k: m[k] for k in ("Corr", "MAE", "Acc2_non0", "Acc2_has0")}}
            j = 0 if target == "valence" else 1
            R[:, j], c[j] = w, b
            out[target] = {"alpha": alpha, "select_score_by_alpha": {repr(a): v for a, v in scores.items()},
                           "n_train": len(tr_items), "n_select": len(sel_items), "by_corpus": by_corpus,
                           "corpora": list(metric)}
            _log(progress, f"  regression {target}: alpha {alpha:g}, " + ", ".join(
                f"{k} Corr {v['Corr']:.3f}" for k, v in by_corpus.items()))
        head.R, head.c = R, c
        return out


# ------------------------------------------------------------------------------------------- networks


class _Network:
    """Per-split training of a fusion network: standardise with the training rows, choose the epoch on the
    validation rows, score the evaluated rows once."""

    def __init__(self, cfg: TrainConfig, data: Labelled, part: Any, kinds: dict[str, str], threads: int | None) -> None:
        from ..networks import FusionConfig

        assert cfg.fusion is not None
        self.cfg, self.data, self.part, self.kinds = cfg, data, part, kinds
        self.options = cfg.fusion.train if threads is None else dataclasses.replace(cfg.fusion.train, threads=threads)
        self.config = FusionConfig(dims=tuple((m, int(x.shape[-1])) for m, x in part.inputs.items()),
                                   n_classes=len(data.labels), **{"regression": False} | cfg.fusion.params)
        self.row = {item_key(it): n for n, it in enumerate(data.items)}
        self.first: tuple[Any, dict[str, Any], str] | None = None
        self.curves: dict[str, list[dict[str, float]]] = {}

    def split(self, sp: Split, primary: bool, params: dict[str, Any]) -> tuple[dict[str, Any], list[int], list[str]]:
        from .networks import apply_norm, predict, run_split

        tr, va, te = (np.array([self.row[k] for k in ids], dtype=np.int64) for ids in (sp.train, sp.val, sp.test))
        if not len(va):
            raise InputError(f"split {sp.name}: no validation items; fusion training selects its epoch on them")
        on, ev, sel = "test", te, va
        if not len(te):  # the validation part is evaluated: choose the epoch on a part carved from train instead
            a, b = _carve_selection([self.data.items[i] for i in tr], params, self.cfg, sp.name)
            on, ev, sel = "validation", va, np.array(sorted(self.row[item_key(it)] for it in b), dtype=np.int64)
            tr = np.array(sorted(self.row[item_key(it)] for it in a), dtype=np.int64)
        labels = self.data.labels
        res, vm, _, norm = run_split(self.cfg.fusion.model, self.config, self.part, tr, sel, np.zeros(0, np.int64),  # type: ignore[union-attr]
                                     labels, self.options)
        logits = predict(res.model, apply_norm(self.part.take(ev), norm))["logits"]
        pred = [labels[i] for i in logits.argmax(1)]
        self.curves[sp.name] = res.history
        if primary and self.first is None:
            self.first = (res, {"norm": norm, "val": vm}, sp.name)
        record = {"evaluated_on": on, "n_train": len(tr), "n_select": len(sel), "best_epoch": res.best_epoch,
                  "epochs_run": len(res.history),
                  "seconds": round(res.seconds, 2), "val": {k: vm[k] for k in ("UA", "WA", "macro_f1")},
                  "history": res.history, "n_params": res.n_params}
        return record, list(ev), pred

    def save(self, path: Path, result: dict[str, Any]) -> Path:
        from ..checkpoints import FeatureSpec, save_network

        assert self.first is not None and self.cfg.fusion is not None
        res, info, split = self.first
        sources = dict(self.cfg.data.modalities)
        feats = {}
        for mod in self.part.inputs:
            mean, std = (tuple(v.tolist()) for v in info["norm"][mod])
            src, dim = sources[mod], int(self.part.inputs[mod].shape[-1])
            spec = (FeatureSpec(src, dim, self.kinds[mod], CORPUS_FEATURES[src], mean, std) if src in CORPUS_FEATURES
                    else FeatureSpec.of_extractor(src, dim, mean, std))
            feats[mod] = spec.to_dict()
        first = result["folds"][0]
        meta = {"features": feats, "labels": self.data.labels, "label_set": self.cfg.data.labels,
                "training": {"corpora": list(self.cfg.data.corpora), "protocol": self.cfg.protocol.name,
                             "protocol_params": self.cfg.protocol.params, "fold": split, "seed": self.cfg.seed,
                             "options": dataclasses.asdict(self.options), "best_epoch": res.best_epoch,
                             "run": self.cfg.name, "config": config_to_dict(self.cfg)},
                "metrics": {"validation": {k: info["val"][k] for k in ("UA", "WA", "macro_f1")},
                            first["evaluated_on"]: {k: first["metrics"][k] for k in ("UA", "WA", "macro_f1")},
                            "note": f"selected on {split}'s validation part; figures of that split"},
                "licence": self.cfg.licence}
        return save_network(path, res.model, self.cfg.fusion.model, meta)


# ------------------------------------------------------------------------------------------- the run


def _predict(head: Any, X: np.ndarray, among: Sequence[str] = ()) -> list[str]:
    """The head's labels for the rows of ``X``; with ``among``, the most probable of those classes only."""
    if not among:
        return list(head.predict_labels(X))
    p = head.scores(X)
    cols = [head.labels.index(c) for c in among if c in head.labels]
    return [head.labels[cols[j]] for j in np.argmax(p[:, cols], axis=1)]


def _by_corpus(folds: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per evaluated corpus: mean ± std over the splits that evaluate it."""
    corpora = sorted({c for f in folds for c in f["by_corpus"]})
    out = {}
    for c in corpora:
        own = [{"metrics": f["by_corpus"][c]} for f in folds if c in f["by_corpus"]]
        out[c] = summarize_folds(own) | {"n_splits": len(own)}
    return out


def _scores(truth: Sequence[str], pred: Sequence[str], corpora: Sequence[str], labels: Sequence[str]
            ) -> dict[str, Any]:
    """Classification metrics overall, and per corpus of the rows."""
    m = classification_metrics(list(truth), list(pred), labels)
    corp = np.asarray(corpora, dtype=object)
    by = {}
    for c in sorted(set(corpora)):
        k = np.flatnonzero(corp == c)
        mc = classification_metrics([truth[i] for i in k], [pred[i] for i in k], labels)
        by[c] = {key: mc[key] for key in SUMMARY_KEYS} | {"n": int(len(k)), "per_class_recall": mc["per_class_recall"]}
    return m | {"by_corpus": by}


def _protocol(learner: Any, cfg: TrainConfig, data: Labelled, pc: Any, primary: bool,
              progress: bool) -> dict[str, Any]:
    labels = data.labels
    y = data.y
    splits = make_splits(pc.name, data.items, seed=cfg.seed, **pc.params)
    folds = []
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for sp in splits:
        t = time.perf_counter()
        record, ev, pred = learner.split(sp, primary, dict(pc.params))
        m = _scores([y[i] for i in ev], pred, [data.items[i].corpus for i in ev], labels)
        by = m.pop("by_corpus")
        cm += np.asarray(m["confusion_matrix"], dtype=np.int64)
        folds.append({"split": sp.name, "n_train": len(sp.train), "n_val": len(sp.val), "n_test": len(sp.test),
                      "speaker_independent": sp.speaker_independent, "seconds": round(time.perf_counter() - t, 3),
                      **record, "metrics": m, "by_corpus": by})
        _log(progress, f"  {pc.name} {sp.name}: {record['evaluated_on']} UA {100 * m['UA']:.1f} WA {100 * m['WA']:.1f}")
    on = sorted({f["evaluated_on"] for f in folds})
    return {"protocol": pc.name, "params": dict(pc.params), "evaluated_on": on[0] if len(on) == 1 else "mixed",
            "folds": folds, "summary": summarize_folds(folds), "by_corpus": _by_corpus(folds),
            "confusion_matrix": cm.tolist()}


def _metrics_record(result: dict[str, Any]) -> dict[str, Any]:
    """The figures a saved head records: per protocol, mean ± std overall and per evaluated corpus."""
    def lite(p: dict[str, Any]) -> dict[str, Any]:
        return {"evaluated_on": p["evaluated_on"], "splits": len(p["folds"]),
                "summary": {k: {"mean": round(v["mean"], 4), "std": round(v["std"], 4)} for k, v in p["summary"].items()},
                "by_corpus": {c: {k: ({"mean": round(v["mean"], 4), "std": round(v["std"], 4)} if isinstance(v, dict)
                                      else v) for k, v in s.items()} for c, s in p["by_corpus"].items()}}

    out = {p["protocol"]: lite(p) for p in [result] + result.get("other_protocols", [])}
    if "evaluated" in result.get("final", {}):  # the saved head's own figures on the (unseen) evaluated part
        e = result["final"]["evaluated"]
        out[result["protocol"]]["saved_head"] = {k: round(e[k], 4) for k in SUMMARY_KEYS} | {
            "by_corpus": {c: {k: (round(v, 4) if isinstance(v, float) else v) for k, v in b.items()}
                          for c, b in e["by_corpus"].items()}}
    if result.get("regression"):
        out["regression"] = {t: {"alpha": r["alpha"], "by_corpus": r["by_corpus"]} for t, r in result["regression"].items()}
    return out


def run(cfg: TrainConfig, workers: int = 1, progress: bool = True, save: str | Path | None = None,
        threads: int | None = None, resume: bool = False, stop_after_steps: int | None = None) -> dict[str, Any]:
    """Run the experiment of ``cfg`` (see the module docstring); writes the outputs into ``cfg.out``,
    the trained head or network to ``save`` when given, and returns the results dict. A ``[finetune]``
    run goes to :func:`emofuse.training.finetune.run_finetune` (``resume``: continue its checkpoint;
    ``stop_after_steps``: pause after that many steps)."""
    if cfg.finetune is not None:
        from .finetune import run_finetune

        return run_finetune(cfg, cfg.finetune, save=save, resume=resume, progress=progress,
                            stop_after_steps=stop_after_steps)
    if cfg.face_cnn is not None:
        from .face_cnn import run_face_cnn

        return run_face_cnn(cfg, cfg.face_cnn, save=save, resume=resume, progress=progress,
                            stop_after_steps=stop_after_steps)
    if resume or stop_after_steps is not None:
        raise InputError(f"{cfg.name}: --resume / --stop-after-steps are for [finetune] and [face_cnn] runs; linear heads and fusion networks "
                         "are trained from the start each time")
    t0 = time.perf_counter()
    if save is not None and cfg.data.normalize != "none":
        raise InputError(f"{cfg.name}: saving needs data.normalize = \"none\": `emofuse analyze` sees one "
                         "recording at a time and cannot z-score per speaker or corpus as training did")
    if cfg.fusion is not None and cfg.fusion.params.get("regression"):
        raise InputError(f"{cfg.name}: fusion.regression = true, but no corpus here gives valence targets to a "
                         "fusion run, so the valence head would never be trained; leave it out")
    data = labelled(cfg.data.corpora, cfg.data.root, cfg.data.labels, cfg.data.limit, cfg.seed)
    info: dict[str, Any] = {"warnings": list(data.warnings)}
    result: dict[str, Any] = {"name": cfg.name, "kind": cfg.kind, "config": config_to_dict(cfg)}
    learner: Any
    if cfg.kind == "linear":
        extractor = cfg.data.extractor or ""
        info["extract"] = {}
        X, failed = vectors(data.items, extractor, cfg.data.cache, workers, progress, info["extract"])
        views = [vectors(data.items, v, cfg.data.cache, workers, progress, info["extract"]) for v in cfg.data.train_views]
        failed |= set().union(*(f for _, f in views))
        if failed:
            info["warnings"].append(f"{len(failed)} items failed feature extraction and are left out "
                                    f"(e.g. {sorted(failed)[0]!r})")
        keep = [n for n, it in enumerate(data.items) if item_key(it) not in failed]
        data = data.take(keep)
        X = normalize(X[keep], data.items, cfg.data.normalize)
        vx = [normalize(v[keep], data.items, cfg.data.normalize) for v, _ in views]
        info["n_failed"] = len(failed)
        learner = _Linear(cfg, data, X, vx)
        result |= {"feature_dim": int(X.shape[1]), "select_metric": cfg.model.select if isinstance(  # type: ignore[union-attr]
            cfg.model.select, str) else " / ".join(f"{c}: {m}" for c, m in cfg.model.select)}  # type: ignore[union-attr]
    else:
        from .networks import Part

        data, inputs, masks, kinds = modalities(data, cfg.data.corpora[0], cfg.data.root, dict(cfg.data.modalities),
                                                cache=cfg.data.cache, workers=workers, progress=progress)
        info["warnings"] = list(data.warnings)
        lab = {c: i for i, c in enumerate(data.labels)}
        part = Part(inputs, np.array([lab[c] for c in data.y], dtype=np.int64), None, masks)
        learner = _Network(cfg, data, part, kinds, threads)
        result |= {"sources": dict(cfg.data.modalities), "kinds": kinds}
    result |= {"corpora": list(cfg.data.corpora), "labels": data.labels, "n_items": len(data.items),
               "label_counts": {c: data.y.count(c) for c in data.labels}, "data": info}

    from threadpoolctl import threadpool_limits  # many small BLAS fits: threads only oversubscribe the cores

    with threadpool_limits(threads or 1) if cfg.kind == "linear" else contextlib.nullcontext():
        protos = [_protocol(learner, cfg, data, pc, i == 0, progress) for i, pc in enumerate(cfg.protocols)]
        result |= {k: v for k, v in protos[0].items()} | {"other_protocols": protos[1:]}
        if cfg.kind == "linear":
            result["chosen_C"] = [f["C"] for f in result["folds"]]
            head = learner.final(result) if (save is not None or cfg.regression is not None) else None
            if cfg.regression is not None:
                result["regression"] = learner.regression(head, progress, workers)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if save is not None:
        if cfg.kind == "linear":
            head.meta = _head_meta(cfg, result, time.perf_counter() - t0)
            from ..checkpoints import save_head

            path = save_head(save, head)
            what = f"linear head, C={result['final']['C']:g}, fitted on {result['final']['n_items']} items"
        else:
            path = learner.save(Path(save), result)
            what = f"{cfg.fusion.model} network trained on {result['folds'][0]['split']}'s training part"  # type: ignore[union-attr]
        result["saved"] = {"path": str(path), "what": what}
    result["seconds"] = round(time.perf_counter() - t0, 2)
    (out / "config.toml").write_text(dump_config(cfg), encoding="utf-8")
    (out / "results.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    for p in [result] + result["other_protocols"]:
        for f in p["folds"]:
            name = f["split"] if p is result else f"{p['protocol']}-{f['split']}"
            name = re.sub(r"[^\w.-]+", "_", name)  # loso splits are named after corpus/speaker
            (out / f"fold-{name}.json").write_text(json.dumps(f, indent=2), encoding="utf-8")
    plot_confusion(np.asarray(result["confusion_matrix"]), data.labels, out / "confusion.png",
                   f"{cfg.name} ({result['evaluated_on']}, summed over splits)")
    if cfg.kind == "linear":
        plot_c_curves(result["folds"], out / "curves.png", cfg.name, result["select_metric"])
    else:
        plot_epoch_curves(learner.curves, out / "curves.png", f"{cfg.name}: training loss / validation "
                          f"{learner.options.metric}", learner.options.metric)
        result["n_params"] = result["folds"][0]["n_params"] if result["folds"] else 0
    (out / "report.md").write_text(report_markdown(result), encoding="utf-8")
    return result


def _head_meta(cfg: TrainConfig, result: dict[str, Any], seconds: float) -> dict[str, Any]:
    from ..extractors import EXTRACTORS

    return {
        "kind": EXTRACTORS[cfg.data.extractor or ""].modality,
        "training": {"config": config_to_dict(cfg), "corpora": list(cfg.data.corpora), "labels": cfg.data.labels,
                     "train_views": list(cfg.data.train_views), "label_counts": result["label_counts"],
                     **result["final"], "fit_on": "every item the first protocol's splits fitted or selected on",
                     "seconds": round(seconds, 1)},
        "metrics": _metrics_record(result),
        "metrics_note": (f"{cfg.protocol.name} figures ({result['evaluated_on']}), mean ± std (sample std) over splits; "
                         "hyper-parameters chosen per split on data outside the evaluated part"),
        "licence": cfg.licence,
    }


# ------------------------------------------------------------------------------------------- evaluate a head


def evaluate_head(head_path: str | Path, corpus: str, root: str | Path, extractor: str | None = None,
                  split: str = "test", cache: str | Path | None = None, workers: int = 1, limit: int | None = None,
                  out: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Score a saved head on ``corpus`` (its ``split`` part: test, val (val or dev) or all); writes the
    metrics JSON to ``out`` (default ``runs/eval-<head>-<corpus>-<split>.json``) and returns it."""
    from ..checkpoints import check_identity, load_head
    from .data import class_name

    if split not in ("test", "val", "all"):
        raise InputError(f"split must be test, val or all, not {split!r}")
    head = load_head(head_path)
    want = head.feature.source
    if extractor is not None and extractor != want:
        raise InputError(f"head {head_path} was trained on {want!r} features, not {extractor!r}; pass "
                         f"--extractor {want} (or leave it out)")
    check_identity(head.feature, f"head {head_path}")
    label_set = str(head.meta.get("training", {}).get("labels", "canonical"))
    data = labelled([corpus], root, label_set)
    items = data.items
    if split == "test":
        items = [it for it in items if it.split == "test"]
    elif split == "val":
        items = [it for it in items if it.split in ("val", "dev")]
    if not items:
        raise InputError(f"corpus {corpus} has no labelled items in split {split!r}; try --split all")
    items = subsample(items, limit, 0)
    X, failed = vectors(items, want, cache, workers, progress)
    keep = [n for n, it in enumerate(items) if item_key(it) not in failed]
    if X.shape[1] != head.W.shape[0]:
        raise InputError(f"features have dim {X.shape[1]} but head {head_path} expects {head.W.shape[0]}")
    y = [class_name(items[n], label_set) for n in keep]
    labels = list(head.labels) + sorted(set(y) - set(head.labels))
    met = classification_metrics(y, head.predict_labels(X[keep]), labels)
    res = {"head": str(head_path), "corpus": corpus, "split": split, "extractor": want, "n": len(keep),
           "n_failed": len(failed), "labels": labels, "metrics": met}
    path = Path(out) if out else Path("runs") / f"eval-{Path(head_path).stem}-{corpus}-{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=2), encoding="utf-8")
    res["out"] = str(path)
    return res
