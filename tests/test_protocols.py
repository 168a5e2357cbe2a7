"""Evaluation protocols on synthetic manifests (no corpus needed)."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

import numpy as np

from emofuse.corpora.manifest import Item, item_key, speaker_key
from emofuse.errors import InputError, UnknownNameError
from emofuse.taxonomy import EMOTIONS
from emofuse.training.protocols import PROTOCOLS, Split, carve_val, check_speaker_independent, inner_folds, make_splits

SPEAKERS = ("s1", "s2", "s3", "s4", "s5", "s6")
CORPORA = ("ca", "cb")


def synth(corpora=CORPORA, speakers=SPEAKERS, reps: int = 2, **fields) -> list[Item]:
    """6 speakers x 2 corpora x 7 labels x ``reps`` takes; ids repeat across corpora on purpose."""
    return [Item(id=f"{s}-{lab}-{r}", corpus=c, speaker=s, label=lab, **fields)
            for c in corpora for s in speakers for lab in EMOTIONS for r in range(reps)]


def spk_of(items, keys) -> set[str]:
    by = {item_key(it): it for it in items}
    return {speaker_key(by[k]) for k in keys}


def assert_disjoint(s: Split) -> None:
    assert not set(s.train) & set(s.val)
    assert not set(s.train) & set(s.test)
    assert not set(s.val) & set(s.test)


# ---------------------------------------------------------------------------------------------- Split


def test_split_rejects_overlap():
    with pytest.raises(ValueError, match="'a/1' is in both train and test"):
        Split("x", ("a/1", "a/2"), (), ("a/1",))


def test_checker_names_leaking_speaker():
    items = synth(corpora=("ca",))
    s1 = [item_key(it) for it in items if it.speaker == "s1"]
    rest = [item_key(it) for it in items if it.speaker != "s1"]
    leaky = Split("leaky", tuple(s1[1:] + rest[:5]), (), (s1[0],))
    with pytest.raises(ValueError, match="speaker 'ca/s1'"):
        check_speaker_independent(leaky, items)
    check_speaker_independent(Split("ok", tuple(rest), (), tuple(s1)), items)  # no raise


def test_speakers_are_per_corpus():
    # speaker "s1" of corpus ca and of corpus cb are two people: not a leak
    items = synth()
    a = tuple(item_key(it) for it in items if it.corpus == "ca")
    b = tuple(item_key(it) for it in items if it.corpus == "cb")
    check_speaker_independent(Split("x", a, (), b), items)


# ---------------------------------------------------------------------------------------- kfold / loso


@pytest.mark.parametrize("name,params", [("kfold", {"k": 3}), ("loso", {}), ("loco", {})])
def test_speaker_independent_protocols(name, params):
    items = synth()
    splits = make_splits(name, items, **params)
    for s in splits:
        assert_disjoint(s)
        assert s.speaker_independent
        check_speaker_independent(s, items)
        tr, va, te = spk_of(items, s.train), spk_of(items, s.val), spk_of(items, s.test)
        assert va and not (va & te) and not (tr & te) and not (tr & va)


@pytest.mark.parametrize("name,params,n", [("kfold", {"k": 4}, 4), ("loso", {}, 12)])
def test_every_item_tested_once(name, params, n):
    items = synth()
    splits = PROTOCOLS[name](items, **params)
    assert len(splits) == n
    counts = Counter(k for s in splits for k in s.test)
    assert set(counts) == {item_key(it) for it in items}
    assert set(counts.values()) == {1}
    for s in splits:  # each fold uses every item
        assert len(s.train) + len(s.val) + len(s.test) == len(items)


def test_kfold_uses_fold_field():
    # folds deliberately unlike GroupKFold's: fold 1 = s1+s2+s3 (half the data), 2 = s4, 3 = s5+s6
    fold_of = {"s1": 1, "s2": 1, "s3": 1, "s4": 2, "s5": 3, "s6": 3}
    items = [dataclasses.replace(it, fold=fold_of[it.speaker]) for it in synth(corpora=("ca",))]
    splits = make_splits("kfold", items, k=5, val_speakers=1)  # k is ignored: the folds are given
    assert [s.name for s in splits] == ["fold1", "fold2", "fold3"]
    for s, f in zip(splits, (1, 2, 3)):
        assert set(s.test) == {item_key(it) for it in items if it.fold == f}
        assert len(spk_of(items, s.val)) == 1


def test_kfold_groupkfold_without_folds():
    items = synth(corpora=("ca",))
    splits = make_splits("kfold", items, k=3)
    assert len(splits) == 3
    # GroupKFold: whole speakers per test fold, 6 speakers / 3 folds = 2 each
    assert all(len(spk_of(items, s.test)) == 2 for s in splits)


def test_kfold_keeps_published_folds_and_cuts_other_corpora_by_speaker():
    fold_of = {"s1": 1, "s2": 1, "s3": 2, "s4": 2, "s5": 3, "s6": 3}
    given = [dataclasses.replace(it, fold=fold_of[it.speaker]) for it in synth(corpora=("ca",))]
    other = synth(corpora=("cb",))
    splits = make_splits("kfold", given + other, k=2)
    assert [s.name for s in splits] == ["fold1", "fold2", "fold3"]
    corpus = {item_key(it): it.corpus for it in given + other}
    for s, f in zip(splits, (1, 2, 3)):
        assert {k for k in s.test if corpus[k] == "ca"} == {item_key(it) for it in given if it.fold == f}
        assert len(spk_of(other, [k for k in s.test if corpus[k] == "cb"])) == (3 if f < 3 else 0)
    tested = [k for s in splits for k in s.test if corpus[k] == "cb"]
    assert sorted(tested) == sorted(item_key(it) for it in other)  # every cb item tested once


def test_kfold_rejects_mixed_folds_and_missing_speakers():
    items = synth(corpora=("ca",))
    mixed = [dataclasses.replace(it, fold=1) if it.speaker == "s1" else it for it in items]
    with pytest.raises(ValueError, match="some items of ca have a fold"):
        make_splits("kfold", mixed)
    anon = [dataclasses.replace(it, speaker=None) for it in items]
    with pytest.raises(ValueError, match="needs a speaker"):
        make_splits("kfold", anon)
    with pytest.raises(ValueError, match="k=7"):
        make_splits("kfold", items, k=7)


def test_kfold_checks_given_folds_are_speaker_independent():
    items = synth(corpora=("ca",))
    bad = [dataclasses.replace(it, fold=1 + int(it.id.endswith("-1"))) for it in items]  # by take, not speaker
    with pytest.raises(ValueError, match="not speaker-independent"):
        make_splits("kfold", bad)


def test_val_speakers_count_and_fraction():
    items = synth(corpora=("ca",))
    for s in make_splits("loso", items, val_speakers=2):
        assert len(spk_of(items, s.val)) == 2
    for s in make_splits("loso", items, val_speakers=0.4):  # 0.4 * 5 training speakers = 2
        assert len(spk_of(items, s.val)) == 2
    for s in make_splits("loso", items, val_speakers=0):
        assert s.val == ()
    for s in make_splits("loso", items, val_speakers=99):  # at least one training speaker is kept
        assert len(spk_of(items, s.train)) == 1


# ----------------------------------------------------------------------------------------------- loco


def test_loco_leaves_each_corpus_out_once():
    items = synth(corpora=("ca", "cb", "cc"))
    splits = make_splits("loco", items)
    corpus = {item_key(it): it.corpus for it in items}
    assert [s.name for s in splits] == ["loco-ca", "loco-cb", "loco-cc"]
    for s, c in zip(splits, ("ca", "cb", "cc")):
        assert {corpus[k] for k in s.test} == {c}
        assert c not in {corpus[k] for k in s.train + s.val}
        # val is drawn from every training corpus
        assert {corpus[k] for k in s.val} == {"ca", "cb", "cc"} - {c}


def test_loco_scores_a_corpus_on_its_own_classes():
    four = ("neutral", "happy", "sad", "angry")
    items = synth(corpora=("ca",)) + [it for it in synth(corpora=("cb",)) if it.label in four]
    a, b = make_splits("loco", items)
    assert a.test_labels == EMOTIONS and b.test_labels == four
    assert all(s.test_labels == () for s in make_splits("loco", items, test_classes="all"))
    with pytest.raises(InputError, match="test_classes"):
        make_splits("loco", items, test_classes="some")


def test_loco_drops_unlabelled_and_needs_two_corpora():
    items = synth() + [Item(id="u", corpus="ca", speaker="s1")]
    assert all("ca/u" not in s.train + s.val + s.test for s in make_splits("loco", items))
    with pytest.raises(ValueError, match="at least 2 corpora"):
        make_splits("loco", synth(corpora=("ca",)))


# --------------------------------------------------------------------------------------------- random


def test_random_is_not_speaker_independent():
    items = synth()
    [s] = make_splits("random", items, seed=0)
    assert_disjoint(s)
    assert not s.speaker_independent
    with pytest.raises(ValueError, match="not speaker-independent"):
        check_speaker_independent(s, items)
    # stratified: every label in every part
    by = {item_key(it): it.label for it in items}
    for part in (s.train, s.val, s.test):
        assert {by[k] for k in part} == set(EMOTIONS)
    assert len(s.test) == pytest.approx(0.2 * len(items), abs=len(EMOTIONS))


# -------------------------------------------------------------------------------------------- holdout


def test_holdout_keeps_official_splits():
    items = []
    for it in synth(corpora=("ca",)):
        split = {"s1": "test", "s2": "dev", "s6": None}.get(it.speaker, "train")
        items.append(dataclasses.replace(it, split=split))
    [s] = make_splits("holdout", items)
    assert set(s.test) == {item_key(it) for it in items if it.split == "test"}
    assert set(s.val) == {item_key(it) for it in items if it.split == "dev"}
    assert set(s.train) == {item_key(it) for it in items if it.split == "train"}  # split=None left out


def test_holdout_carves_val_by_speaker_and_leaves_test_empty():
    items = [dataclasses.replace(it, split="train") for it in synth(corpora=("ca",))]
    [s] = make_splits("holdout", items, val_speakers=2, seed=3)
    assert s.test == ()
    assert len(spk_of(items, s.val)) == 2
    assert not spk_of(items, s.val) & spk_of(items, s.train)


def test_holdout_carves_val_by_label_without_speakers():
    items = [dataclasses.replace(it, split="train", speaker=None) for it in synth(corpora=("ca",), reps=10)]
    items += [dataclasses.replace(items[0], id="t", split="test")]
    [s] = make_splits("holdout", items, val_fraction=0.2)
    assert s.test == ("ca/t",)
    by = {item_key(it): it.label for it in items}
    assert Counter(by[k] for k in s.val) == {lab: 12 for lab in EMOTIONS}  # 20% of 60 per label


def test_holdout_needs_train():
    with pytest.raises(ValueError, match="split='train'"):
        make_splits("holdout", synth(corpora=("ca",)))


# ------------------------------------------------------------------------------------- seeds, labels


@pytest.mark.parametrize("name,params", [("kfold", {"k": 3}), ("loso", {}), ("loco", {}), ("random", {}),
                                         ("holdout", {})])
def test_seed_determinism(name, params):
    items = synth(corpora=CORPORA if name == "loco" else ("ca",))
    if name == "holdout":
        items = [dataclasses.replace(it, split="test" if it.speaker == "s1" else "train") for it in items]
    a = make_splits(name, items, seed=0, **params)
    assert a == make_splits(name, list(reversed(items)), seed=0, **params)  # input order does not matter
    vals = lambda splits: [s.val for s in splits]  # noqa: E731
    assert any(vals(make_splits(name, items, seed=sd, **params)) != vals(a) for sd in (1, 2, 3))


def test_labelled_only():
    items = synth(corpora=("ca",)) + [Item(id="u", corpus="ca", speaker="s1")]
    assert all("ca/u" not in s.train + s.val + s.test for s in make_splits("loso", items))
    kept = make_splits("loso", items, labelled_only=False)
    assert sum("ca/u" in s.test for s in kept) == 1


def test_unknown_protocol_and_select():
    with pytest.raises(ValueError, match="known: holdout"):
        make_splits("nope", [])
    items = synth(corpora=("ca",))
    s = make_splits("kfold", items, k=2)[0]
    tr, va, te = s.select(items)
    assert [item_key(it) for it in te] == list(s.test)
    assert len(tr) + len(va) + len(te) == len(items)


# ------------------------------------------------------------------------------------------ grouping


def test_val_group_holds_out_whole_groups_alike_in_corpus_variants():
    """val_group = an extra field: whole groups go to validation, and two corpora sharing the group values
    (translations of one corpus) hold out the same groups; items without the field are stratified."""
    items = [Item(id=f"v{g}_{k}", corpus=c, label=EMOTIONS[k % 7], extra={"video": f"v{g}"})
             for c in ("mosi-en", "mosi-zh") for g in range(40) for k in range(3)]
    items += [Item(id=f"x{k}", corpus="emobank", label=EMOTIONS[k % 7]) for k in range(70)]
    train, val = carve_val(items, np.random.default_rng([0, 98]), 0.2, 0.25, "video")
    held = {c: {it.extra["video"] for it in val if it.corpus == c} for c in ("mosi-en", "mosi-zh")}
    assert held["mosi-en"] == held["mosi-zh"] and 3 <= len(held["mosi-en"]) <= 20
    for it in train:  # no group on both sides
        assert it.corpus == "emobank" or it.extra["video"] not in held[it.corpus]
    assert 0 < sum(it.corpus == "emobank" for it in val) < 70  # stratified fraction of the ungrouped corpus
    # deterministic given the generator's seed, another seed holds out other groups
    _, val2 = carve_val(items, np.random.default_rng([0, 98]), 0.2, 0.25, "video")
    assert [item_key(it) for it in val2] == [item_key(it) for it in val]
    _, val3 = carve_val(items, np.random.default_rng([1, 98]), 0.2, 0.25, "video")
    assert {it.extra.get("video") for it in val3} != {it.extra.get("video") for it in val}


def test_holdout_carves_by_val_group():
    items = [Item(id=f"d{g}_{k}", corpus="meld", speaker=f"s{k}", split="train", label=EMOTIONS[k % 7],
                  extra={"dialogue": g}) for g in range(50) for k in range(4)]
    (sp,) = make_splits("holdout", items, val_group="dialogue", val_fraction=0.2)
    by = {it.extra["dialogue"] for it in items if item_key(it) in set(sp.val)}
    assert by and not by & {it.extra["dialogue"] for it in items if item_key(it) in set(sp.train)}


def test_inner_folds_are_speaker_disjoint_and_cover_the_pool():
    pool = synth(corpora=("ca",))
    folds = inner_folds(pool, 5, seed=0)
    assert len(folds) == 5  # 6 speakers dealt into 5 groups
    seen = []
    for fit, val in folds:
        assert not {speaker_key(it) for it in fit} & {speaker_key(it) for it in val}
        assert len(fit) + len(val) == len(pool)
        seen += [item_key(it) for it in val]
    assert sorted(seen) == sorted(item_key(it) for it in pool)  # every item validated exactly once
    assert len(inner_folds(synth(corpora=("ca",), speakers=("a", "b", "c")), 5, 0)) == 3  # leave-one-speaker-out
    assert inner_folds(pool, 5, 0) == folds and inner_folds(pool, 5, 1) != folds
    with pytest.raises(InputError, match="select_folds needs a speaker"):
        inner_folds([Item(id="x", corpus="c", label="happy")] + pool, 5, 0)
    with pytest.raises(InputError, match="at least 2 folds"):
        inner_folds(pool, 1, 0)


def test_protocol_parameter_and_name_errors_are_input_errors():
    with pytest.raises(UnknownNameError, match="unknown protocol 'kfolds'; known: holdout"):
        make_splits("kfolds", synth())
    with pytest.raises(InputError, match="protocol loco takes no parameter 'k'; it takes seed, val_speakers"):
        make_splits("loco", synth(), k=3)
    with pytest.raises(InputError, match="val_fraction must be int or float, not '0.1'"):
        make_splits("holdout", synth(), val_fraction="0.1")
    with pytest.raises(InputError, match="k must be int, not True"):
        make_splits("kfold", synth(), k=True)
