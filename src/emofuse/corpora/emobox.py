"""EmoBox speaker-independent folds (Ma et al. 2024, https://github.com/emo-box/EmoBox; metadata MIT).

Layout: ``<folds_dir>/fold_N/<corpus>_{train,test}_fold_N.jsonl``, one JSON object per line whose
``wav`` is a path in EmoBox's download layout (``downloads/ravdess/audio/.../03-01-05-01-02-01-18.wav``).
The paths never match a local copy, so items are matched on the file *stem* (which is the manifest id
of RAVDESS and SAVEE items).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from ..errors import InputError
from .manifest import Item, Problems

LAYOUT = "<folds>/fold_1/<corpus>_train_fold_1.jsonl and <corpus>_test_fold_1.jsonl (EmoBox)"


def emobox_folds(folds_dir: str | Path) -> dict[int, tuple[set[str], set[str]]]:
    """``{fold: (train_ids, test_ids)}`` with ids = file stems of the ``wav`` entries."""
    folds_dir = Path(folds_dir).expanduser()
    if not folds_dir.is_dir():
        raise InputError(f"EmoBox folds folder {folds_dir} does not exist; expected {LAYOUT}")
    out: dict[int, tuple[set[str], set[str]]] = {}
    for d in folds_dir.glob("fold_*"):
        m = re.fullmatch(r"fold_(\d+)", d.name)
        if not m or not d.is_dir():
            continue
        k = int(m.group(1))
        sets = []
        for part in ("train", "test"):
            files = sorted(d.glob(f"*_{part}_fold_{k}.jsonl"))
            if len(files) != 1:
                raise InputError(f"EmoBox fold folder {d} has {len(files)} *_{part}_fold_{k}.jsonl files; "
                                 f"expected exactly one ({LAYOUT})")
            ids = set()
            with open(files[0], encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        wav = json.loads(line)["wav"]
                    except (ValueError, KeyError, TypeError) as e:
                        raise InputError(f"{files[0]} line {n} is not an EmoBox entry with a 'wav' field ({e})") from e
                    ids.add(Path(wav.replace("\\", "/")).stem)
            sets.append(ids)
        out[k] = (sets[0], sets[1])
    if not out:
        raise InputError(f"EmoBox folds folder {folds_dir} has no fold_N folders; expected {LAYOUT}")
    return dict(sorted(out.items()))


def test_fold_of(folds: dict[int, tuple[set[str], set[str]]], problems: Problems, what: str = "") -> dict[str, int]:
    """id -> the fold whose *test* list holds it; an id tested in several folds keeps the first and is
    reported (``what`` prefixes the message, e.g. "speech clip ")."""
    test_of: dict[str, int] = {}
    for k, (_, test) in folds.items():
        for i in test:
            if i in test_of:
                problems.add(f"{what}listed as test item in several EmoBox folds (first fold kept)", i)
            test_of.setdefault(i, k)
    return test_of


def assign_folds(items: list[Item], folds: dict[int, tuple[set[str], set[str]]], problems: Problems) -> list[Item]:
    """Set each item's ``fold`` to the fold whose *test* list holds it. Fold entries without a local file,
    local items in no test list, and items tested in several folds are reported in ``problems``."""
    test_of = test_fold_of(folds, problems)
    have = {it.id for it in items}
    listed = set().union(*(tr | te for tr, te in folds.values())) if folds else set()
    for i in sorted(listed - have):
        problems.add("listed in the EmoBox folds but not found locally", i)
    out = []
    for it in items:
        if it.id not in test_of:
            problems.add("in no EmoBox test fold (fold left None)", it.id)
            out.append(it)
        else:
            out.append(dataclasses.replace(it, fold=test_of[it.id]))
    return out


def attach_folds(items: list[Item], root: Path, corpus: str, folds_dir: str | Path | None,
                 problems: Problems) -> list[Item]:
    """Items with EmoBox folds from ``folds_dir``, or from a ``<corpus>_folds`` folder beside ``root`` (the
    shared data layout); unchanged when there are none."""
    if folds_dir is None and (root.parent / f"{corpus}_folds").is_dir():
        folds_dir = root.parent / f"{corpus}_folds"
    return items if folds_dir is None else assign_folds(items, emobox_folds(folds_dir), problems)
