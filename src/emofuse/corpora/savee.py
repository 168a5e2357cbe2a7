"""SAVEE, Surrey Audio-Visual Expressed Emotion (Haq & Jackson 2009, http://kahlan.eps.surrey.ac.uk/savee/).
Licence: free for research use (registration with the University of Surrey).

480 acted British English utterances, 4 male speakers (DC, JE, JK, KL), 120 each: 30 neutral and 15 of
each other emotion. Layouts accepted: flat ``<root>/DC_a01.wav`` (or ``.flac``, the shared copy) or the
original ``<root>/DC/a01.wav`` (AudioData). The code before the number is the emotion: a anger,
d disgust, f fear, h happiness, n neutral, sa sadness, su surprise.

Rules: every code maps to a canonical label, nothing is dropped (see :data:`LABEL_MAP`). ``id`` =
``SPK_codeNN`` in both layouts (the EmoBox file stem); ``speaker`` = ``savee-SPK``; ``text`` None (the
TIMIT sentence lists are not part of the audio release); ``split`` None; ``fold`` = the EmoBox test fold
(4 speaker-independent folds, one speaker each) when ``<root>/../savee_folds`` exists.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError
from ..taxonomy import SAVEE
from .emobox import attach_folds, emobox_folds
from .manifest import Corpus, Item, Manifest, Problems, require_dir

NAME = "savee"
SUBDIR = "speech/savee"
LAYOUT = "<root>/DC_a01.wav (or .flac) for speakers DC, JE, JK, KL, or <root>/DC/a01.wav"
AUDIO = (".wav", ".flac")

CODES: dict[str, str] = {"a": "anger", "d": "disgust", "f": "fear", "h": "happiness", "n": "neutral",
                         "sa": "sadness", "su": "surprise"}
# original_label -> canonical, built from taxonomy.SAVEE (keyed by code). Nothing is dropped.
LABEL_MAP: dict[str, str | None] = {CODES[c]: SAVEE[c] for c in CODES}
_FLAT = re.compile(r"([A-Z]{2})_([a-z]{1,2})(\d\d)")
_CODE = re.compile(r"([a-z]{1,2})(\d\d)")


def load(root: str | Path, folds_dir: str | Path | None = None) -> Manifest:
    root = require_dir(Path(root), "SAVEE", LAYOUT)
    probs = Problems(NAME)
    found: list[tuple[Path, str, str, str]] = []  # path, speaker, code, number
    for p in sorted(root.iterdir()):
        if p.is_dir() and re.fullmatch(r"[A-Z]{2}", p.name):
            for q in sorted(p.iterdir()):
                m = _CODE.fullmatch(q.stem)
                if q.suffix.lower() in AUDIO and m:
                    found.append((q, p.name, m.group(1), m.group(2)))
                elif not q.name.startswith(".") and q.suffix.lower() in AUDIO:
                    probs.add("skipped: name is not <code><NN>.wav", q)
        elif p.is_file() and p.suffix.lower() in AUDIO:
            m = _FLAT.fullmatch(p.stem)
            if m:
                found.append((p, m.group(1), m.group(2), m.group(3)))
            else:
                probs.add("skipped: name is not SPK_<code><NN>.wav", p)
    if not found:
        raise InputError(f"SAVEE root {root} has no SAVEE audio files; expected {LAYOUT}")
    items = []
    for p, spk, code, num in found:
        if code not in CODES:
            probs.add(f"skipped: unknown emotion code (known: {', '.join(CODES)})", p)
            continue
        orig = CODES[code]
        items.append(Item(id=f"{spk}_{code}{num}", corpus=NAME, paths=(p,), speaker=f"savee-{spk}",
                          label=LABEL_MAP[orig], original_label=orig,
                          extra={"emotion_code": code, "number": int(num)}))
    items = attach_folds(items, root, "savee", folds_dir, probs)
    return Manifest(items, probs.lines())


__all__ = ["CODES", "LABEL_MAP", "LAYOUT", "emobox_folds", "load"]


CORPORA = (Corpus("savee", load, SUBDIR, LAYOUT),)
