"""Evaluation protocols: how a manifest is cut into train / validation / test splits.

    from emofuse.training.protocols import PROTOCOLS, make_splits
    for split in make_splits("kfold", manifest, k=5, seed=0):
        train, val, test = split.select(manifest)

Every protocol is a function ``(items, **params) -> list[Split]`` registered in :data:`PROTOCOLS`:

``holdout``  the corpus's official train / val (or dev) / test splits; a missing val split is carved from
             train (by speaker when known, else stratified by label); a missing test split is left empty.
``kfold``    speaker-independent k-fold CV: the items' ``fold`` field (EmoBox folds) when set, else
             GroupKFold over speakers.
``loso``     leave-one-speaker-out.
``loco``     leave-one-corpus-out (multi-corpus / cross-corpus work).
``random``   a stratified random split: speaker-DEPENDENT, for comparison with papers that use one.

Rules shared by all protocols:

* Ids in a :class:`Split` are :func:`~emofuse.corpora.item_key` strings ``"<corpus>/<id>"``: item ids are
  only unique within a corpus, and multi-corpus protocols (``loco``) must not confuse two corpora's items.
* Speakers are likewise compared as ``"<corpus>/<speaker>"`` (speaker "01" of two corpora are two
  people). Items with ``speaker=None`` cannot leak a speaker and are ignored by the speaker check.
* Validation data always comes from the *training* pool (never the test fold/speaker/corpus), so model
  selection never sees test speakers. When speakers are known it is carved by whole speakers; with
  ``val_group = FIELD`` (e.g. ``"dialogue"`` for MELD, ``"video"`` for MOSI) by whole values of
  ``item.extra[FIELD]`` instead, ``val_fraction`` of them chosen by a seeded hash of the value, so that the
  language variants of one corpus (``mosi-en``, ``mosi-zh``) hold out the same clips.
* :func:`inner_folds` cuts a training pool into speaker-disjoint (fit, validation) pairs for
  hyper-parameter selection by cross-validation inside a split.
* ``labelled_only=True`` (default) drops items whose ``label`` is None: they cannot be scored by a
  classifier, and keeping them would silently change fold sizes.
* Everything is deterministic given ``seed``: items are sorted by key first (input order does not
  matter) and each fold draws from its own ``numpy`` generator seeded with ``(seed, fold index)``.
* Speaker-independent protocols (kfold, loso, loco) verify their output with
  :func:`check_speaker_independent` and raise ValueError naming a leaking speaker. Bad parameters or data
  raise :class:`~emofuse.errors.InputError` (a ValueError) naming the fix.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..corpora.manifest import Item, item_key, speaker_key
from ..errors import InputError
from ..registry import Registry
from ..taxonomy import EMOTIONS

__all__ = ["PROTOCOLS", "Protocol", "Split", "carve_val", "check_params", "check_speaker_independent", "holdout",
           "inner_folds", "kfold", "loco", "loso", "make_splits", "random_split"]

PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """One train / val / test partition, as tuples of :func:`item_key` ids.

    ``val`` may be empty (``val_speakers=0``) and ``test`` may be empty (holdout on a corpus without a
    test split). ``speaker_independent`` records whether the protocol guarantees (and has checked) that
    no speaker appears in two parts. ``test_labels``, when given, are the classes the test part is scored
    on: predictions are restricted to them (leave-one-corpus-out scores a corpus on its own classes).
    """

    name: str
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    speaker_independent: bool = False
    test_labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for part in PARTS:
            object.__setattr__(self, part, tuple(getattr(self, part)))
        object.__setattr__(self, "test_labels", tuple(self.test_labels))
        # Overlap between parts is the one leak no protocol may ever produce: fail loudly here.
        seen: dict[str, str] = {}
        for part in PARTS:
            ids = getattr(self, part)
            if len(set(ids)) != len(ids):
                dup = next(i for i in ids if ids.count(i) > 1)
                raise ValueError(f"split {self.name!r}: id {dup!r} appears twice in {part}")
            for i in ids:
                if i in seen:
                    raise ValueError(f"split {self.name!r}: id {i!r} is in both {seen[i]} and {part}")
                seen[i] = part
        if not self.train:
            raise InputError(f"split {self.name!r}: empty training set (fewer validation speakers or a smaller "
                             "val_fraction leave some for training)")

    def select(self, items: Iterable[Item]) -> tuple[list[Item], list[Item], list[Item]]:
        """The ``(train, val, test)`` items of ``items``, in the split's order. ValueError if an id of
        the split is not among ``items`` (the split was made from another manifest)."""
        by_key = {item_key(it): it for it in items}
        out = []
        for part in PARTS:
            ids = getattr(self, part)
            missing = [i for i in ids if i not in by_key]
            if missing:
                raise ValueError(f"split {self.name!r}: {len(missing)} {part} ids are not in the items "
                                 f"(e.g. {missing[0]!r}); build the splits from the same manifest")
            out.append([by_key[i] for i in ids])
        return out[0], out[1], out[2]


def check_speaker_independent(split: Split, items: Iterable[Item]) -> None:
    """Raise ValueError naming the first speaker (``corpus/speaker``) whose items lie in two parts of
    ``split``. Items with an unknown speaker are ignored; an id not among ``items`` is an error."""
    spk = {item_key(it): speaker_key(it) for it in items}
    where: dict[str, str] = {}
    for part in PARTS:
        for i in getattr(split, part):
            if i not in spk:
                raise ValueError(f"split {split.name!r}: id {i!r} is not among the items")
            s = spk[i]
            if s is None:
                continue
            if s in where and where[s] != part:
                raise ValueError(f"split {split.name!r} is not speaker-independent: speaker {s!r} is in "
                                 f"both {where[s]} and {part} (e.g. item {i!r})")
            where.setdefault(s, part)


# ---------------------------------------------------------------------------------------------- helpers


def _prepare(items: Sequence[Item], labelled_only: bool) -> list[Item]:
    """Labelled items (if asked), sorted by key so that input order never changes a split."""
    out = [it for it in items if not labelled_only or it.label is not None]
    if not out:
        raise InputError("no items to split" + (" (all unlabelled; pass labelled_only=False?)" if items else ""))
    keys = [item_key(it) for it in out]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise InputError(f"item {dup!r} appears twice in the items")
    return sorted(out, key=item_key)


def _rng(seed: int, index: int) -> np.random.Generator:
    # One generator per fold: fold i's val does not depend on how many draws earlier folds made.
    return np.random.default_rng([seed, index])


def _n_of(spec: int | float, n: int, what: str) -> int:
    """A count (int) or fraction of ``n`` (float in [0, 1)) -> a count, at least 1 for a non-zero fraction."""
    if isinstance(spec, bool) or not isinstance(spec, (int, float)):
        raise InputError(f"{what} must be an int count or a float fraction, not {spec!r}")
    if isinstance(spec, float):
        if not 0.0 <= spec < 1.0:
            raise InputError(f"{what}={spec}: a fraction must be in [0, 1)")
        return 0 if spec == 0.0 else max(1, round(spec * n))
    if spec < 0:
        raise InputError(f"{what}={spec} must be >= 0")
    return spec


def _stratified(items: Sequence[Item], fractions: Sequence[float], rng: np.random.Generator) -> list[list[Item]]:
    """Cut ``items`` into ``len(fractions) + 1`` parts, each label spread in proportion (the remainder
    goes to the first part, i.e. train). Labels are kept in their own groups so rare emotions are not
    lost from val/test by chance."""
    groups: dict[str, list[Item]] = defaultdict(list)
    for it in items:
        groups[it.label or ""].append(it)
    parts: list[list[Item]] = [[] for _ in range(len(fractions) + 1)]
    for lab in sorted(groups):
        g = groups[lab]
        perm = [g[j] for j in rng.permutation(len(g))]
        start = 0
        for p, f in enumerate(fractions, 1):
            n = int(round(f * len(g)))
            n = min(n, len(g) - start - 1) if len(g) - start > 1 else 0  # keep one item for train
            parts[p].extend(perm[start:start + max(n, 0)])
            start += max(n, 0)
        parts[0].extend(perm[start:])
    return parts


def _group_value(it: Item, field: str | None) -> object:
    return None if field in (None, "speaker") else it.extra.get(field)  # type: ignore[arg-type]


def carve_val(pool: Sequence[Item], rng: np.random.Generator, val_speakers: int | float,
              val_fraction: float, val_group: str | None = None) -> tuple[list[Item], list[Item]]:
    """Split a training pool into (train, val). Items with a known speaker go by whole speakers
    (``val_speakers`` of them, at least one speaker always left for training) so that val measures
    generalisation to new speakers and never shares a speaker with train; items without a speaker
    (``val_fraction`` of them) are stratified by label. Done per corpus, so that every training corpus
    is represented in val in proportion.

    ``val_group`` = an ``extra`` field (e.g. ``"dialogue"``): items that have it go by whole values of it
    instead, each value held out with probability ``val_fraction`` by a hash seeded once per call, so
    that two corpora sharing the values (translations of one corpus) hold out the same groups."""
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"val_fraction={val_fraction}: a fraction must be in [0, 1)")
    by_field = val_group not in (None, "speaker")
    salt = int(rng.integers(2**31)) if by_field else 0
    by_corpus: dict[str, list[Item]] = defaultdict(list)
    for it in pool:
        by_corpus[it.corpus].append(it)
    train: list[Item] = []
    val: list[Item] = []
    for corpus in sorted(by_corpus):
        group = by_corpus[corpus]
        if by_field:
            for it in group:
                g = _group_value(it, val_group)
                if g is not None:
                    held = zlib.crc32(f"{salt}:{g}".encode()) / 2**32 < val_fraction
                    (val if held else train).append(it)
            group = [it for it in group if _group_value(it, val_group) is None]
        speakers = sorted({it.speaker for it in group if it.speaker is not None})
        n = min(_n_of(val_speakers, len(speakers), "val_speakers"), max(len(speakers) - 1, 0))
        chosen = {speakers[j] for j in rng.permutation(len(speakers))[:n]}
        for it in group:
            if it.speaker is not None:
                (val if it.speaker in chosen else train).append(it)
        unknown = [it for it in group if it.speaker is None]
        if unknown:
            tr, va = _stratified(unknown, [val_fraction], rng)
            train.extend(tr)
            val.extend(va)
    return train, val


def inner_folds(pool: Sequence[Item], k: int, seed: int) -> list[tuple[list[Item], list[Item]]]:
    """``k`` (fit, validation) pairs over ``pool`` with disjoint speakers (``corpus/speaker``): the sorted
    speakers, permuted with ``seed``, are dealt into ``k`` groups (leave-one-speaker-out when there are at
    most ``k``); each group is validation once. For choosing hyper-parameters on a split's training part."""
    if k < 2:
        raise InputError(f"select_folds={k}: cross-validation needs at least 2 folds (or 0 to select on the "
                         "split's validation part)")
    missing = [it for it in pool if it.speaker is None]
    if missing:
        raise InputError(f"select_folds needs a speaker for every item; {len(missing)} have none (e.g. "
                         f"{item_key(missing[0])!r}); set model.select_folds = 0 for such corpora")
    speakers = sorted({speaker_key(it) for it in pool})  # type: ignore[type-var]
    if len(speakers) < 2:
        raise InputError(f"select_folds needs at least 2 training speakers; found {speakers}")
    k = min(k, len(speakers))
    order = np.random.default_rng(seed).permutation(len(speakers))
    parts = [{speakers[j] for j in order[i::k]} for i in range(k)]
    return [([it for it in pool if speaker_key(it) not in p], [it for it in pool if speaker_key(it) in p])
            for p in parts]


def _split(name: str, train: Iterable[Item], val: Iterable[Item], test: Iterable[Item],
           items: Sequence[Item], speaker_independent: bool, test_labels: tuple[str, ...] = ()) -> Split:
    s = Split(name, tuple(sorted(map(item_key, train))), tuple(sorted(map(item_key, val))),
              tuple(sorted(map(item_key, test))), speaker_independent, test_labels)
    if speaker_independent:
        check_speaker_independent(s, items)
    return s


def _need_speakers(items: Sequence[Item], protocol: str) -> None:
    missing = [it for it in items if it.speaker is None]
    if missing:
        raise InputError(f"{protocol} needs a speaker for every item; {len(missing)} have none "
                         f"(e.g. {item_key(missing[0])!r}); use holdout or random for such corpora")


# -------------------------------------------------------------------------------------------- protocols


def holdout(items: Sequence[Item], *, seed: int = 0, val_speakers: int | float = 0.2,
            val_fraction: float = 0.1, val_group: str | None = None, labelled_only: bool = True) -> list[Split]:
    """The official splits: ``train``; ``val`` and ``dev`` (both as validation); ``test``.

    Items without a split are left out. If no item is in val/dev, validation is carved from train,
    seeded: ``val_speakers`` whole training speakers (count or fraction) where speakers are known,
    ``val_fraction`` of the items stratified by label where they are not. If no item is in test, the test part is EMPTY:
    figures reported for such a corpus are then validation figures and must be labelled as such
    (e.g. GoEmotions-style corpora whose test labels are withheld). Official splits are kept as
    published, so the result is not checked for speaker independence (e.g. MELD's characters recur).
    """
    its = _prepare(items, labelled_only)
    parts: dict[str, list[Item]] = {"train": [], "val": [], "test": []}
    for it in its:
        if it.split is not None:
            parts["val" if it.split == "dev" else it.split].append(it)
    if not parts["train"]:
        raise InputError("holdout needs items with split='train'; this corpus has no official split "
                         "(use kfold, loso or random)")
    train, val = parts["train"], parts["val"]
    if not val:
        train, val = carve_val(train, _rng(seed, 0), val_speakers, val_fraction, val_group)
    return [_split("holdout", train, val, parts["test"], its, speaker_independent=False)]


def kfold(items: Sequence[Item], *, k: int = 5, seed: int = 0, val_speakers: int | float = 0.2,
          val_fraction: float = 0.1, val_group: str | None = None, labelled_only: bool = True) -> list[Split]:
    """Speaker-independent k-fold cross-validation, one Split per fold (every item tested once).

    When items carry ``fold`` (EmoBox folds: the fold in which the item is a test item), those folds
    are used as published; a corpus whose items carry none is cut into ``k`` folds of its speakers
    (``sklearn.model_selection.GroupKFold``: deterministic, balanced by item count), numbered 1..k
    beside the published ones, so fold f tests every corpus's fold f. Validation is carved from the
    fold's TRAINING speakers only (``val_speakers``: a count or a fraction), with a seed per fold; never
    from the test fold.
    """
    its = _prepare(items, labelled_only)
    fold_of: dict[str, int] = {item_key(it): it.fold for it in its if it.fold is not None}
    for c in sorted({it.corpus for it in its}):
        mine = [it for it in its if it.corpus == c]
        has = [it.fold is not None for it in mine]
        if any(has) and not all(has):
            bad = next(it for it in mine if it.fold is None)
            raise InputError(f"kfold: some items of {c} have a fold and some not (e.g. {item_key(bad)!r}); "
                             "assign every item of a corpus a fold, or clear them all to use speaker folds")
        if any(has):
            continue
        _need_speakers(mine, "kfold")
        groups = [speaker_key(it) for it in mine]
        n_spk = len(set(groups))
        if not 2 <= k <= n_spk:
            raise InputError(f"kfold: k={k} must be between 2 and the number of speakers of {c} ({n_spk})")
        from sklearn.model_selection import GroupKFold  # the `train` extra

        for i, (_, te) in enumerate(GroupKFold(n_splits=k).split(mine, groups=groups)):
            fold_of.update({item_key(mine[j]): i + 1 for j in te})
    tests = [(f"fold{f}", [it for it in its if fold_of[item_key(it)] == f]) for f in sorted(set(fold_of.values()))]
    out = []
    for i, (name, test) in enumerate(tests):
        test_keys = {item_key(it) for it in test}
        train, val = carve_val([it for it in its if item_key(it) not in test_keys], _rng(seed, i),
                               val_speakers, val_fraction, val_group)
        out.append(_split(name, train, val, test, its, speaker_independent=True))
    return out


def loso(items: Sequence[Item], *, seed: int = 0, val_speakers: int | float = 0.2,
         val_group: str | None = None, labelled_only: bool = True) -> list[Split]:
    """Leave-one-speaker-out: one Split per speaker (sorted by ``corpus/speaker``) testing on that
    speaker; validation speakers drawn (seeded, per split) from the remaining speakers."""
    its = _prepare(items, labelled_only)
    _need_speakers(its, "loso")
    speakers = sorted({speaker_key(it) for it in its})  # type: ignore[type-var]  # all known above
    if len(speakers) < 2:
        raise InputError(f"loso needs at least 2 speakers; found {speakers}")
    out = []
    for i, s in enumerate(speakers):
        test = [it for it in its if speaker_key(it) == s]
        train, val = carve_val([it for it in its if speaker_key(it) != s], _rng(seed, i), val_speakers, 0.1,
                               val_group)
        out.append(_split(f"loso-{s}", train, val, test, its, speaker_independent=True))
    return out


def loco(items: Sequence[Item], *, seed: int = 0, val_speakers: int | float = 0.2,
         val_fraction: float = 0.1, val_group: str | None = None, labelled_only: bool = True,
         test_classes: str = "own") -> list[Split]:
    """Leave-one-corpus-out: one Split per corpus (sorted), training on all the other corpora and
    testing on the one left out (cross-corpus generalisation). Validation is carved from each training
    corpus by speaker (by label where speakers are unknown), so the left-out corpus is never seen
    before testing. Only labelled items by default: the corpora share the canonical label set.
    ``test_classes``: "own" scores the left-out corpus on its own classes (predictions restricted to the
    labels it has: TurEV-DB's four, nEMO's six), the usual cross-corpus protocol; "all" on every class the
    head knows, as an analysis would answer.
    """
    if test_classes not in ("own", "all"):
        raise InputError(f"loco: test_classes must be 'own' or 'all', not {test_classes!r}")
    its = _prepare(items, labelled_only)
    corpora = sorted({it.corpus for it in its})
    if len(corpora) < 2:
        raise InputError(f"loco needs items from at least 2 corpora; found {corpora}")
    out = []
    for i, c in enumerate(corpora):
        test = [it for it in its if it.corpus == c]
        train, val = carve_val([it for it in its if it.corpus != c], _rng(seed, i), val_speakers, val_fraction,
                               val_group)
        own = tuple(e for e in EMOTIONS if any(it.label == e for it in test)) if test_classes == "own" else ()
        out.append(_split(f"loco-{c}", train, val, test, its, speaker_independent=True, test_labels=own))
    return out


def random_split(items: Sequence[Item], *, seed: int = 0, val_fraction: float = 0.1,
                 test_fraction: float = 0.2, labelled_only: bool = True) -> list[Split]:
    """A stratified (by label) random train/val/test split, seeded.

    SPEAKER-DEPENDENT: the same speakers appear in train and test, so figures are optimistic compared
    with speaker-independent protocols; use it only to compare with papers that report such a split.
    """
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= f < 1.0:
            raise InputError(f"random: {name}={f} must be in [0, 1)")
    if val_fraction + test_fraction >= 1.0:
        raise InputError("random: val_fraction + test_fraction must be < 1")
    its = _prepare(items, labelled_only)
    train, val, test = _stratified(its, [val_fraction, test_fraction], _rng(seed, 0))
    return [_split("random", train, val, test, its, speaker_independent=False)]


Protocol = Callable[..., list[Split]]

PROTOCOLS: Registry[Protocol] = Registry("protocol", {
    "holdout": holdout,
    "kfold": kfold,
    "loso": loso,
    "loco": loco,
    "random": random_split,
})


# The protocols' keyword parameters and the types they take (a bool is not a count).
PARAM_TYPES: dict[str, tuple[type, ...]] = {
    "seed": (int,), "k": (int,), "val_speakers": (int, float), "val_fraction": (int, float),
    "test_fraction": (int, float), "val_group": (str,), "labelled_only": (bool,), "test_classes": (str,)}


def check_params(name: str, params: dict[str, object]) -> None:
    """InputError naming a parameter that protocol ``name`` does not take, or a value of the wrong type."""
    import inspect

    fn = PROTOCOLS[name.strip().lower()]
    takes = [p for p in inspect.signature(fn).parameters if p != "items"]
    for k, v in params.items():
        if k not in takes:
            raise InputError(f"protocol {name} takes no parameter {k!r}; it takes {', '.join(takes)}")
        want = PARAM_TYPES.get(k, (object,))
        if (isinstance(v, bool) and bool not in want) or not isinstance(v, want):
            raise InputError(f"protocol {name}: {k} must be {' or '.join(t.__name__ for t in want)}, not {v!r}")


def make_splits(name: str, items: Sequence[Item], **params: object) -> list[Split]:
    """``PROTOCOLS[name](items, **params)``; UnknownNameError lists the protocols, InputError names a
    parameter the protocol does not take or a value of the wrong type."""
    check_params(name, params)
    return PROTOCOLS[name.strip().lower()](items, **params)
