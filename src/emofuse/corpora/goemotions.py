"""GoEmotions (Demszky et al. 2020, https://github.com/google-research/google-research/tree/master/goemotions).
Licence: CC BY 4.0.

58k Reddit comments, official train 43,410 / dev 5,426 / test 5,427, multi-label over 27 emotions +
neutral, and the same comments mapped to Ekman's 6 + neutral. Layout: ``<root>/ekman_labels.txt`` (one
name a line: anger, disgust, fear, joy, neutral, sadness, surprise) and
``<root>/ekman_{train,dev,test}.tsv`` (``text<TAB>comma-separated label ids<TAB>comment id``, no header);
optionally the fine-grained ``<root>/{split}.tsv`` with ``labels.txt`` (or ``emotions.txt``), joined on
the comment id into ``extra["fine_labels"]``.

Rule (multi-label): a comment whose Ekman labels are exactly one class is labelled with it (joy ->
happy); a comment with two or more Ekman classes gets ``label`` None and is kept, all its classes in
``extra["labels"]`` (``original_label`` = them joined by ``+``, e.g. ``joy+surprise``). Use
``m.filter(predicate=lambda it: it.label is not None)`` for the single-label set the text head trains on.
``id`` = the comment id; ``speaker`` None; ``text`` = the comment.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..taxonomy import GOEMOTIONS_EKMAN
from .manifest import Corpus, Item, Manifest, Problems, require_dir

NAME = "goemotions"
SUBDIR = "text/goemotions"
LAYOUT = "<root>/ekman_labels.txt and <root>/ekman_train.tsv (+ ekman_dev.tsv, ekman_test.tsv): text<TAB>label ids<TAB>id"
SPLITS = ("train", "dev", "test")

LABEL_MAP: dict[str, str | None] = dict(GOEMOTIONS_EKMAN)  # Ekman name -> canonical; nothing dropped
MULTI_SEP = "+"


def _names(path: Path) -> list[str]:
    return [x.strip() for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _read_tsv(path: Path, names: list[str], probs: Problems) -> list[tuple[str, list[str], str]]:
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                probs.add("skipped: line is not text<TAB>labels<TAB>id", f"{path.name} line {n}")
                continue
            try:
                ids = [int(i) for i in parts[1].split(",") if i.strip()]
                labs = [names[i] for i in ids]
            except (ValueError, IndexError):
                probs.add(f"skipped: label ids are not in 0..{len(names) - 1}", f"{path.name} line {n}")
                continue
            if not labs:
                probs.add("skipped: no label", f"{path.name} line {n}")
                continue
            out.append((parts[0].strip(), labs, parts[2].strip()))
    return out


def load(root: str | Path) -> Manifest:
    root = require_dir(Path(root), "GoEmotions", LAYOUT)
    files = {s: root / f"ekman_{s}.tsv" for s in SPLITS if (root / f"ekman_{s}.tsv").is_file()}
    if not files or not (root / "ekman_labels.txt").is_file():
        have = sorted(p.name for p in root.iterdir())[:8]
        raise InputError(f"GoEmotions root {root} lacks ekman_labels.txt or ekman_<split>.tsv (has {have}); "
                         f"expected {LAYOUT}")
    names = _names(root / "ekman_labels.txt")
    unknown = [n for n in names if n not in LABEL_MAP]
    if unknown:
        raise InputError(f"GoEmotions {root / 'ekman_labels.txt'} names {unknown}, not Ekman classes "
                         f"{list(LABEL_MAP)}")
    fine_names = next((_names(root / n) for n in ("labels.txt", "emotions.txt") if (root / n).is_file()), None)
    probs = Problems(NAME)
    items = []
    for split, f in files.items():
        fine: dict[str, list[str]] = {}
        if fine_names is not None and (root / f"{split}.tsv").is_file():
            fine = {cid: labs for _, labs, cid in _read_tsv(root / f"{split}.tsv", fine_names, probs)}
        for text, labs, cid in _read_tsv(f, names, probs):
            labs = list(dict.fromkeys(labs))
            extra: dict = {"labels": labs}
            if fine:
                if cid in fine:
                    extra["fine_labels"] = fine[cid]
                else:
                    probs.add(f"have no row in {split}.tsv (no fine_labels)", cid)
            label = LABEL_MAP[labs[0]] if len(labs) == 1 else None
            items.append(Item(id=cid, corpus=NAME, text=text, split=split, label=label,
                              original_label=MULTI_SEP.join(labs), extra=extra))
    return Manifest(items, probs.lines())


CORPORA = (Corpus("goemotions", load, SUBDIR, LAYOUT),)
