"""The data of a training run: labelled items of the config's corpora, their class names, and their cached
features (extracted where missing), for linear heads (one extractor, optional training views) and fusion
networks (one source per modality)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..corpora import CORPUS_FEATURES, prepare
from ..corpora.manifest import Item, item_key
from ..errors import InputError
from ..taxonomy import EMOTIONS, label_order

LABEL_SETS = ("canonical", "original")  # a run's classes: emofuse's 7, or one corpus's own
NORMALIZE = ("none", "corpus", "speaker")  # z-scoring of features within groups (transductive)



@dataclass
class Labelled:
    """Labelled items (in corpus order) and each one's class name under the run's label set."""

    items: list[Item]
    y: list[str]
    labels: list[str]  # class names in order (canonical: EMOTIONS order; original: taxonomy.label_order)
    warnings: list[str] = field(default_factory=list)

    def take(self, keep: Sequence[int]) -> "Labelled":
        return Labelled([self.items[i] for i in keep], [self.y[i] for i in keep], self.labels, self.warnings)


def subsample(items: list[Item], limit: int | None, seed: int) -> list[Item]:
    """A seeded subsample of ``limit`` items (sorted by key first, so input order does not matter)."""
    if limit is None or len(items) <= limit:
        return items
    items = sorted(items, key=item_key)
    idx = np.sort(np.random.default_rng([seed, 7]).permutation(len(items))[:limit])
    return [items[i] for i in idx]


def class_name(it: Item, label_set: str) -> str:
    return str(it.original_label or it.label) if label_set == "original" else str(it.label)


def labelled(corpora: Sequence[str], root: str | Path, label_set: str = "canonical", limit: int | None = None,
             seed: int = 0) -> Labelled:
    """The labelled items of ``corpora`` (concatenated; ``limit``: a seeded subsample per corpus)."""
    if label_set not in LABEL_SETS:
        raise InputError(f"labels must be one of {LABEL_SETS}, not {label_set!r}")
    if label_set == "original" and len(corpora) > 1:
        raise InputError("labels = 'original' keeps each corpus's own class names, which differ between corpora; "
                         "use labels = 'canonical' for several corpora")
    items: list[Item] = []
    warnings: list[str] = []
    for name in corpora:
        m = prepare(name, root)
        warnings.extend(m.warnings)
        own = [it for it in m if it.label is not None]
        if not own:
            raise InputError(f"corpus {name} at {root} has no labelled items")
        items.extend(subsample(own, limit, seed))
    y = [class_name(it, label_set) for it in items]
    labels = [e for e in EMOTIONS if e in set(y)] if label_set == "canonical" else label_order(set(y))
    return Labelled(items, y, labels, warnings)


def vectors(items: Sequence[Item], extractor: str, cache: str | Path | None, workers: int = 1,
            progress: bool = False, counts: dict[str, int] | None = None) -> tuple[np.ndarray, set[str]]:
    """``(X [n, d], failed item keys)``: features of ``items`` extracted into the cache where missing; rows
    of failed items are NaN (callers drop them). ``counts`` accumulates items ``cached`` / ``computed``."""
    from ..extract import extract, load_features

    rep = extract(items, extractor, cache, workers=workers, progress=progress)
    if counts is not None:
        counts["cached"] = counts.get("cached", 0) + rep.n_cached
        counts["computed"] = counts.get("computed", 0) + rep.n_done
    failed = set(rep.failed_keys)
    ok = [n for n, it in enumerate(items) if item_key(it) not in failed]
    if not ok:
        raise InputError(f"every item failed {extractor} extraction (e.g. {rep.failures[0][1] if rep.failures else '?'})")
    _, X = load_features([items[n] for n in ok], extractor, cache)
    out = np.full((len(items), X.shape[1]), np.nan, dtype=np.float32)
    out[ok] = X
    return out, failed


def normalize(X: np.ndarray, items: Sequence[Item], mode: str) -> np.ndarray:
    """Z-score the rows of ``X`` within each corpus or speaker (items without a speaker: their corpus)."""
    if mode == "none":
        return X
    if mode not in NORMALIZE:
        raise InputError(f"normalize must be one of {NORMALIZE}, not {mode!r}")
    groups = [it.corpus if mode == "corpus" or it.speaker is None else f"{it.corpus}/{it.speaker}" for it in items]
    out = np.empty_like(X, dtype=np.float32)
    for g in set(groups):
        rows = np.flatnonzero([x == g for x in groups])
        out[rows] = (X[rows] - X[rows].mean(axis=0)) / (X[rows].std(axis=0) + 1e-6)
    return out


def modalities(data: Labelled, corpus: str, root: str | Path, sources: Mapping[str, str], *,
               cache: str | Path | None = None, workers: int = 1, progress: bool = False
               ) -> tuple[Labelled, dict[str, np.ndarray], dict[str, np.ndarray], dict[str, str]]:
    """Features per modality for a network run: ``(data kept, inputs, masks (sequences), kinds)``.

    ``sources``: modality -> ``ravdess_av:au`` / ``ravdess_av:mfcc`` (columns of the audio-visual npz) or an
    extractor name (voice extractors of a ``ravdess_av`` item read its speech clip, ids matching after the
    first field). Items without features for some modality are left out (their count is a warning)."""
    from ..extract import extract, load_sequences
    from ..extractors import EXTRACTORS

    items = data.items
    inputs: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    keep = np.ones(len(items), dtype=bool)
    for mod, src in sources.items():
        if src in CORPUS_FEATURES:
            if corpus != src.split(":")[0]:
                raise InputError(f"modality {mod}: source {src} needs corpus {src.split(':')[0]!r}")
            from ..corpora import ravdess_av

            _, au, mfcc = ravdess_av.features(root)  # the shared data folder or the corpus folder
            table = {"ravdess_av:au": au, "ravdess_av:mfcc": mfcc}
            inputs[mod] = np.asarray(table[src][[it.extra["row"] for it in items]], dtype=np.float32)
            kinds[mod] = "vector"
            continue
        ex = EXTRACTORS[src]
        targets: list[Item | None] = list(items)
        if corpus == "ravdess_av":  # the speech clip of the same trial
            speech = {it.id: it for it in prepare("ravdess", root)}
            targets = [speech.get(it.extra["speech_id"]) for it in items]
        present = [n for n, t in enumerate(targets) if t is not None]
        rep = extract([targets[n] for n in present], ex.name, cache, workers=workers, progress=progress)  # type: ignore[misc]
        failed = set(rep.failed_keys)
        got = [n for n in present if item_key(targets[n]) not in failed]  # type: ignore[arg-type]
        keep[[n for n in range(len(items)) if n not in set(got)]] = False
        if not got:
            raise InputError(f"modality {mod}: no item has {ex.name} features")
        _, X, lengths = load_sequences([targets[n] for n in got], ex.name, cache)  # type: ignore[misc]
        full = np.zeros((len(items),) + X.shape[1:], dtype=np.float32)
        full[got] = X
        inputs[mod] = full
        if X.ndim == 3:
            mk = np.zeros(full.shape[:2], dtype=bool)
            for r, n_steps in zip(got, lengths):  # type: ignore[arg-type]
                mk[r, :n_steps] = True
            masks[mod] = mk
            kinds[mod] = "sequence"
        else:
            kinds[mod] = "vector"
    if not keep.all():
        idx = np.flatnonzero(keep)
        data = data.take(idx)
        data.warnings = data.warnings + [f"{int((~keep).sum())} items lack features of some modality and are "
                                         "left out"]
        inputs = {m: x[idx] for m, x in inputs.items()}
        masks = {m: k[idx] for m, k in masks.items()}
    return data, inputs, masks, kinds


def regression_items(corpora: Sequence[str], root: str | Path, target: str) -> dict[str, list[Item]]:
    """Per corpus, its items with a ``target`` (valence / arousal) value, all splits."""
    out: dict[str, list[Item]] = {}
    for c in corpora:
        own = [it for it in prepare(c, root) if getattr(it, target) is not None]
        if not own:
            raise InputError(f"regression.{target}: corpus {c} has no {target} values")
        out[c] = own
    return out


