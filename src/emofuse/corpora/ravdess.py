"""RAVDESS speech (Livingstone & Russo 2018, https://zenodo.org/record/1188976). Licence: CC BY-NC-SA 4.0.

1440 acted North-American English utterances (audio-only speech part), 24 actors (odd numbers male),
2 fixed sentences, 60 clips per actor. Layout: ``<root>/Actor_01/03-01-05-01-02-01-01.wav`` (original,
48 kHz) or ``.flac`` (the shared copy, 16 kHz). The file name ``MM-VV-EE-II-SS-RR-AA`` codes:
MM modality (03 audio-only; 01/02 are the video files), VV vocal channel (01 speech, 02 song),
EE emotion, II intensity (01 normal, 02 strong; neutral has normal only), SS statement (01 "Kids are
talking by the door", 02 "Dogs are sitting by the door"), RR repetition, AA actor.

Rules: only audio-only speech files (MM 03, VV 01) are items; song and video files are reported in the
manifest warnings, not loaded. **calm -> neutral**: calm is a low-arousal, neutral-valence state and is
merged into neutral (the 8-class label stays in ``original_label``). ``id`` = file stem; ``speaker`` =
``ravdess-AA``; ``text`` = the statement; ``split`` None (RAVDESS has no official split); ``fold`` = the
EmoBox fold in which the clip is a test item, when ``<root>/../ravdess_folds`` exists (6 speaker-
independent folds of 4 actors each).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError
from ..taxonomy import RAVDESS_CODES, RAVDESS_NAMES
from .emobox import attach_folds, emobox_folds
from .manifest import Corpus, Item, Manifest, Problems, require_dir

NAME = "ravdess"
SUBDIR = "speech/ravdess"  # below the shared data root
LAYOUT = "<root>/Actor_01/03-01-01-01-01-01-01.wav (or .flac), Actor_01..Actor_24"
AUDIO = (".wav", ".flac")

# The emotion code EE -> RAVDESS's own 8 class names (kept as ``original_label``; defined in the taxonomy).
CODES: dict[str, str] = RAVDESS_CODES
# original_label -> canonical (taxonomy.RAVDESS_NAMES: calm -> neutral). Nothing is dropped.
LABEL_MAP: dict[str, str | None] = RAVDESS_NAMES
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
INTENSITY = {"01": "normal", "02": "strong"}
_NAME = re.compile(r"(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)")


def load(root: str | Path, folds_dir: str | Path | None = None) -> Manifest:
    """Items for every speech clip under ``root``; folds from ``folds_dir`` (default: a sibling
    ``ravdess_folds`` folder when it exists)."""
    root = require_dir(Path(root), "RAVDESS", LAYOUT)
    actors = sorted(d for d in root.iterdir() if d.is_dir() and re.fullmatch(r"Actor_\d\d", d.name))
    if not actors:
        raise InputError(f"RAVDESS root {root} has no Actor_XX folders; expected {LAYOUT}")
    probs = Problems(NAME)
    items: list[Item] = []
    for d in actors:
        for p in sorted(d.iterdir()):
            if p.name.startswith(".") or p.is_dir():
                continue
            m = _NAME.fullmatch(p.stem)
            if p.suffix.lower() not in AUDIO or not m:
                probs.add("skipped: not a RAVDESS audio file MM-VV-EE-II-SS-RR-AA.wav/.flac", p)
                continue
            mod, voc, emo, inten, stmt, rep, actor = m.groups()
            if mod != "03" or voc != "01":
                probs.add("skipped: not audio-only speech (modality 03, vocal channel 01)", p)
                continue
            if emo not in CODES or inten not in INTENSITY or stmt not in STATEMENTS:
                probs.add("skipped: unknown emotion, intensity or statement code", p)
                continue
            if d.name != f"Actor_{actor}":
                probs.add("skipped: actor code differs from its Actor_XX folder", p)
                continue
            orig = CODES[emo]
            items.append(Item(
                id=p.stem, corpus=NAME, paths=(p,), text=STATEMENTS[stmt], speaker=f"ravdess-{actor}",
                label=LABEL_MAP[orig], original_label=orig,
                extra={"emotion_code": emo, "intensity": INTENSITY[inten], "statement": int(stmt),
                       "repetition": int(rep), "actor": int(actor),
                       "gender": "male" if int(actor) % 2 else "female"},
            ))
    if not items:
        raise InputError(f"RAVDESS root {root} has Actor_XX folders but no speech clips in them; expected {LAYOUT}")
    items = attach_folds(items, root, "ravdess", folds_dir, probs)
    return Manifest(items, probs.lines())


__all__ = ["CODES", "LABEL_MAP", "LAYOUT", "emobox_folds", "load"]


CORPORA = (Corpus("ravdess", load, SUBDIR, LAYOUT),)
