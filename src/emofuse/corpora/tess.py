"""TESS, Toronto Emotional Speech Set (Dupuis & Pichora-Fuller 2010, University of Toronto;
https://doi.org/10.5683/SP2/E8H2MF). Licence: CC BY-NC-ND 4.0.

2,800 clips: 2 female actresses, OAF (older, 64 years) and YAF (younger, 26 years), each saying 200
target words in the carrier phrase "Say the word ___" in 7 emotions (100 clips per speaker and emotion):
angry, disgust, fear, happy, neutral, pleasant surprise, sad. Layout: one folder per speaker and
emotion, ``<root>/OAF_angry/OAF_back_angry.wav``, ``<root>/YAF_pleasant_surprised/YAF_back_ps.wav``
(folder names vary in case and in "pleasant_surprise"/"pleasant_surprised"/"Pleasant_surprise"; the
Kaggle copy nests them one level deeper, which is accepted). The file stem is
``<speaker>_<word>_<emotion>`` with ``ps`` for pleasant surprise.

Rules: every emotion maps to a canonical label, nothing is dropped; **pleasant surprise -> surprised**
(see :data:`LABEL_MAP`). The emotion is read from the file name; a file whose speaker or emotion
differs from its folder's is skipped and reported. ``original_label`` = the normalised name
(``pleasant_surprise`` for ``ps``); ``id`` = file stem (a second file with the same stem, e.g. a
duplicated copy, is reported and skipped); ``speaker`` = ``tess-OAF``/``tess-YAF``; ``text`` = "Say the
word <word>"; ``split`` None; ``fold`` = the EmoBox test fold when ``<root>/../tess_folds`` (or
``folds_dir``) exists. Note: with two speakers, speaker-independent evaluation is 2-fold at best.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError
from .emobox import attach_folds
from .manifest import Corpus, Item, Manifest, Problems, require_dir

NAME = "tess"
SUBDIR = ""  # not in the shared data
LAYOUT = "<root>/OAF_angry/OAF_back_angry.wav, <root>/YAF_pleasant_surprised/YAF_back_ps.wav (speakers OAF, YAF)"
AUDIO = (".wav", ".flac")
SPEAKERS = ("OAF", "YAF")

# original_label -> canonical. Nothing is dropped.
LABEL_MAP: dict[str, str | None] = {
    "angry": "angry", "disgust": "disgusted", "fear": "fearful", "happy": "happy", "neutral": "neutral",
    "pleasant_surprise": "surprised", "sad": "sad",
}
# spellings met in file and folder names -> original_label
ALIASES: dict[str, str] = {**{k: k for k in LABEL_MAP}, "ps": "pleasant_surprise",
                           "pleasant_surprised": "pleasant_surprise"}
_FOLDER = re.compile(r"(OAF|YAF)_(.+)", re.IGNORECASE)
_FILE = re.compile(r"(OAF|YAF)_(.+)_([A-Za-z]+)", re.IGNORECASE)


def _folders(root: Path) -> list[Path]:
    def at(d: Path) -> list[Path]:
        return sorted(x for x in d.iterdir() if x.is_dir() and _FOLDER.fullmatch(x.name))

    found = at(root)
    if not found:  # the Kaggle copy: <root>/<something>/OAF_angry/...
        for sub in sorted(x for x in root.iterdir() if x.is_dir()):
            found += at(sub)
    return found


def load(root: str | Path, folds_dir: str | Path | None = None) -> Manifest:
    root = require_dir(Path(root), "TESS", LAYOUT)
    if not root.is_dir():
        raise InputError(f"TESS root {root} is not a folder; expected {LAYOUT}")
    folders = _folders(root)
    if not folders:
        raise InputError(f"TESS root {root} has no OAF_<emotion>/YAF_<emotion> folders; expected {LAYOUT}")
    probs = Problems(NAME)
    items: list[Item] = []
    seen: set[str] = set()
    for d in folders:
        fm = _FOLDER.fullmatch(d.name)
        f_spk, f_emo = fm.group(1).upper(), ALIASES.get(fm.group(2).lower())
        if f_emo is None:
            probs.add(f"skipped: folder emotion is not one of {', '.join(ALIASES)}", d)
            continue
        for p in sorted(d.iterdir()):
            if p.name.startswith(".") or p.is_dir():
                continue
            m = _FILE.fullmatch(p.stem)
            if p.suffix.lower() not in AUDIO or not m:
                probs.add("skipped: not a TESS audio file <speaker>_<word>_<emotion>.wav", p)
                continue
            spk, word, emo = m.group(1).upper(), m.group(2), ALIASES.get(m.group(3).lower())
            if emo is None:
                probs.add(f"skipped: file emotion is not one of {', '.join(ALIASES)}", p)
                continue
            if spk != f_spk or emo != f_emo:
                probs.add("skipped: speaker or emotion in the file name differs from its folder's", p)
                continue
            if p.stem in seen:
                probs.add("skipped: duplicate file stem (first kept)", p)
                continue
            seen.add(p.stem)
            items.append(Item(
                id=p.stem, corpus=NAME, paths=(p,), text=f"Say the word {word}", speaker=f"tess-{spk}",
                label=LABEL_MAP[emo], original_label=emo,
                extra={"word": word, "folder": d.name, "age_group": "older" if spk == "OAF" else "younger"},
            ))
    if not items:
        raise InputError(f"TESS root {root} has speaker/emotion folders but no TESS clips in them; expected {LAYOUT}")
    items = attach_folds(items, root, "tess", folds_dir, probs)
    return Manifest(items, probs.lines())


__all__ = ["ALIASES", "LABEL_MAP", "LAYOUT", "load"]


CORPORA = (Corpus("tess", load, SUBDIR, LAYOUT),)
