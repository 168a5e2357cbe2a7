"""CMU-MOSI (Zadeh et al. 2016) and CH-SIMS (Yu et al. 2020) utterance transcripts. Licence: research use.

* MOSI: 2,199 opinion-video utterances of 93 YouTube videos (89 speakers), official train 1,284 /
  val 229 / test 686; sentiment in [-3, 3]. Layout ``<root>/mosi.csv`` with columns
  ``name,split,sentiment,chinese,english`` (English transcript, Chinese translation).
* CH-SIMS: 2,281 Chinese utterances of 60 videos, official train 1,368 / val 456 / test 457; sentiment
  in [-1, 1]. Layout ``<root>/sims.csv``, same columns (Chinese transcript, English translation).

Rescaling: valence = sentiment / 3 for MOSI and = sentiment for SIMS (both in [-1, 1]); arousal None.
No categorical labels: ``label`` None, ``original_label`` = the sentiment as written. ``text`` = the
transcript in the corpus's own language (MOSI: English as written, upper case; SIMS: Chinese), both
languages in ``extra["english"]``/``extra["chinese"]``. ``id`` = ``name``; ``extra["video"]`` = the video
the clip comes from (name up to its last ``_``; use it to keep videos on one side of a split);
``speaker`` None (not given). ``split``: ``valid``/``validation`` are read as ``val``.

Language variants (for text models, one corpus name each so that each has its own feature-cache rows):
``mosi-en`` / ``sims-en`` take the English text, ``mosi-zh`` / ``sims-zh`` the Chinese; English written all
in upper case (MOSI's transcripts) is put in sentence case, as ASR writes it at analysis time. Items keep
their ``id``, so the two variants of one clip share it (and ``extra["video"]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import InputError
from .manifest import Corpus, Item, Manifest, Problems, read_csv, require_dir, split_name

COLUMNS = ("name", "split", "sentiment", "chinese", "english")
SCALE = {"mosi": 3.0, "sims": 1.0}
LANG = {"mosi": "english", "sims": "chinese"}
TITLE = {"mosi": "CMU-MOSI", "sims": "CH-SIMS"}
SUBDIR = {"mosi": "text/mosi", "sims": "text/sims"}


def layout(corpus: str) -> str:
    return f"<root>/{corpus}.csv with columns {','.join(COLUMNS)} (sentiment in [-{SCALE[corpus]:g}, {SCALE[corpus]:g}])"


def load(root: str | Path, corpus: str) -> Manifest:
    if corpus not in SCALE:
        raise InputError(f"unknown sentiment corpus {corpus!r}; expected one of {list(SCALE)}")
    title = TITLE[corpus]
    root = require_dir(Path(root), title, layout(corpus))
    f = root if root.is_file() else root / f"{corpus}.csv"
    if not f.is_file():
        raise InputError(f"{title} root {root} has no {corpus}.csv; expected {layout(corpus)}")
    scale = SCALE[corpus]
    probs = Problems(corpus)
    items = []
    for i, r in enumerate(read_csv(f, title, COLUMNS)):
        name = r["name"].strip()
        where = f"{f.name} row {i + 1} ({name})"
        split = split_name(r["split"])
        if split is None:
            probs.add("skipped: split is not train/val/test", where)
            continue
        try:
            s = float(r["sentiment"])
        except ValueError:
            probs.add("skipped: sentiment is not a number", where)
            continue
        if not -scale <= s <= scale:
            probs.add(f"skipped: sentiment outside [-{scale:g}, {scale:g}]", where)
            continue
        items.append(Item(id=name, corpus=corpus, text=r[LANG[corpus]].strip(), split=split,
                          original_label=r["sentiment"].strip(), valence=s / scale,
                          extra={"video": name.rsplit("_", 1)[0], "sentiment": s,
                                 "english": r["english"].strip(), "chinese": r["chinese"].strip()}))
    return Manifest(items, probs.lines())


def load_mosi(root: str | Path) -> Manifest:
    return load(root, "mosi")


def load_sims(root: str | Path) -> Manifest:
    return load(root, "sims")


def sentence_case(s: str) -> str:
    """MOSI's English transcripts are all upper case; ASR output at analysis time is sentence case."""
    s = s.strip()
    if s and s.upper() == s and any(ch.isalpha() for ch in s):
        s = s.lower()
        s = s[0].upper() + s[1:]
        s = s.replace(" i ", " I ").replace(" i'", " I'")
    return s


def load_variant(root: str | Path, corpus: str, lang: str) -> Manifest:
    """``corpus`` in the language ``lang`` ("en" or "zh"): items renamed to the corpus ``<corpus>-<lang>``."""
    from dataclasses import replace

    m = load(root, corpus)
    name = f"{corpus}-{lang}"
    items = [replace(it, corpus=name, text=sentence_case(it.extra["english"]) if lang == "en"
                     else str(it.extra["chinese"]).strip()) for it in m]
    return Manifest(items, [w.replace(f"{corpus}:", f"{name}:", 1) for w in m.warnings])


def _loader(corpus: str, lang: str | None = None) -> Callable[[Path], Manifest]:
    return (lambda root: load(root, corpus)) if lang is None else (lambda root: load_variant(root, corpus, lang))


CORPORA = tuple(Corpus(c if lang is None else f"{c}-{lang}", _loader(c, lang), SUBDIR[c], layout(c))
                for c in ("mosi", "sims") for lang in (None, "en", "zh"))
