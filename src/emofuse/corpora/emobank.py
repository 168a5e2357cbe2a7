"""EmoBank (Buechel & Hahn 2017, https://github.com/JULIELab/EmoBank). Licence: CC BY-SA 4.0.

10,062 English sentences (shared copy: 9,062 = train 8,062 + dev 1,000; the official test split is not
there) rated for valence, arousal and dominance on 1..5 (reader+writer mean). Layout: ``<root>/emobank.csv``
(or the csv itself as root) with columns ``id,split,V,A,D,text``.

Rescaling: valence = (V - 3) / 2, arousal = (A - 3) / 2, both in [-1, 1]; dominance likewise into
``extra["dominance"]`` (raw values in ``extra["V"/"A"/"D"]``). No categorical labels: ``label`` None,
``original_label`` = ``"V=<V> A=<A> D=<D>"`` as written. ``id`` = the csv id; ``text`` = the sentence
(stripped); ``speaker`` None. Ratings outside 1..5 are skipped and reported.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .manifest import Corpus, Item, Manifest, Problems, read_csv, require_dir, split_name

NAME = "emobank"
SUBDIR = "text/emobank"
LAYOUT = "<root>/emobank.csv with columns id,split,V,A,D,text (V, A, D on 1..5)"
COLUMNS = ("id", "split", "V", "A", "D", "text")


def rescale(x: float) -> float:
    """1..5 -> [-1, 1]."""
    return (x - 3.0) / 2.0


def load(root: str | Path) -> Manifest:
    root = require_dir(Path(root), "EmoBank", LAYOUT)
    f = root if root.is_file() else root / "emobank.csv"
    if not f.is_file():
        raise InputError(f"EmoBank root {root} has no emobank.csv; expected {LAYOUT}")
    probs = Problems(NAME)
    items = []
    for i, r in enumerate(read_csv(f, "EmoBank", COLUMNS)):
        where = f"{f.name} row {i + 1} ({r['id']})"
        split = split_name(r["split"])
        if split is None:
            probs.add("skipped: split is not train/dev/test", where)
            continue
        try:
            v, a, d = (float(r[k]) for k in ("V", "A", "D"))
        except ValueError:
            probs.add("skipped: V/A/D is not a number", where)
            continue
        if not all(1.0 <= x <= 5.0 for x in (v, a, d)):
            probs.add("skipped: V/A/D outside 1..5", where)
            continue
        items.append(Item(id=r["id"].strip(), corpus=NAME, text=r["text"].strip(), split=split,
                          original_label=f"V={r['V'].strip()} A={r['A'].strip()} D={r['D'].strip()}",
                          valence=rescale(v), arousal=rescale(a),
                          extra={"V": v, "A": a, "D": d, "dominance": rescale(d)}))
    return Manifest(items, probs.lines())


CORPORA = (Corpus("emobank", load, SUBDIR, LAYOUT),)
