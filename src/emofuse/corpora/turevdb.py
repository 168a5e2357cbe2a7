"""TurEV-DB (Canpolat et al. 2020, https://github.com/Xeonen/TurEV-DB), Turkish emotional speech.
Licence: CC BY-NC-ND 4.0.

1,735 acted single Turkish words by 6 speakers (82 words, each said in several takes and four emotions).
Layout: ``<root>/<Emotion>/<speaker>_<code>_<word>.wav`` (``.opus`` in the shared copy) with the emotion
folders Angry, Calm, Happy, Sad; the speaker is the part before the first ``_`` (e.g. ``1984``), the
code after it (hl, kz, mt, sk) is kept in ``extra`` as given.

Rules: **Calm -> neutral**, as RAVDESS calm (a low-arousal, neutral-valence state); the other folders map
to angry, happy, sad (see :data:`LABEL_MAP`). ``id`` = ``<Emotion>/<stem>`` (a word's stem repeats across
the emotion folders); ``speaker`` = ``turevdb-<speaker>``; ``text`` = the word of the file name (ASCII, as
given); ``split``/``fold`` None: EmoBox's TurEV-DB fold puts every speaker on both sides, so the protocols
make speaker-independent folds by speaker instead.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError
from .manifest import Corpus, Item, Manifest, Problems, require_dir

NAME = "turevdb"
SUBDIR = "speech/turevdb"
LAYOUT = "<root>/{Angry,Calm,Happy,Sad}/<speaker>_<code>_<word>.wav (or .opus, .flac)"
AUDIO = (".wav", ".opus", ".flac")

# Emotion folder -> canonical (Calm -> neutral). Nothing is dropped.
LABEL_MAP: dict[str, str | None] = {"Angry": "angry", "Calm": "neutral", "Happy": "happy", "Sad": "sad"}
_NAME = re.compile(r"(\d+)_([a-z]+)_(\w+)")


def load(root: str | Path) -> Manifest:
    root = require_dir(Path(root), "TurEV-DB", LAYOUT)
    probs = Problems(NAME)
    folders = [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    known = [d for d in folders if d.name in LABEL_MAP]
    if not known:
        raise InputError(f"TurEV-DB root {root} has no emotion folders ({', '.join(LABEL_MAP)}); expected {LAYOUT}")
    for d in folders:
        if d.name not in LABEL_MAP:
            probs.add(f"skipped: not an emotion folder (known: {', '.join(LABEL_MAP)})", d)
    items: list[Item] = []
    for d in known:
        seen: set[str] = set()
        for p in sorted(d.iterdir()):
            if p.name.startswith(".") or p.is_dir():
                continue
            m = _NAME.fullmatch(p.stem)
            if p.suffix.lower() not in AUDIO or not m:
                probs.add("skipped: not a TurEV-DB audio file <speaker>_<code>_<word>.wav/.opus", p)
                continue
            if p.stem in seen:
                probs.add("skipped: the same clip in a second format", p)
                continue
            seen.add(p.stem)
            spk, code, word = m.groups()
            items.append(Item(id=f"{d.name}/{p.stem}", corpus=NAME, paths=(p,), text=word, speaker=f"turevdb-{spk}",
                              label=LABEL_MAP[d.name], original_label=d.name, extra={"code": code}))
    if not items:
        raise InputError(f"TurEV-DB root {root} has emotion folders but no audio files in them; expected {LAYOUT}")
    return Manifest(items, probs.lines())


__all__ = ["LABEL_MAP", "LAYOUT", "load"]


CORPORA = (Corpus("turevdb", load, SUBDIR, LAYOUT),)
