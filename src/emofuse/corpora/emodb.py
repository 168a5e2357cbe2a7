"""EmoDB, the Berlin Database of Emotional Speech (Burkhardt et al. 2005, Interspeech;
http://emodb.bilderbar.info). Licence: free for research use as distributed by TU Berlin (no formal
open licence is stated; cite the paper).

535 acted German utterances, 16 kHz, 10 actors (5 female: 08, 09, 13, 14, 16; 5 male: 03, 10, 11, 12,
15), 10 everyday sentences (a01 a02 a04 a05 a07 b01 b02 b03 b09 b10), 7 emotions (anger 127, boredom 81,
disgust 46, fear 69, happiness 71, sadness 62, neutral 79). Layout: ``<root>/wav/03a01Fa.wav`` (the
official zip; a flat ``<root>/03a01Fa.wav`` is accepted too). The file stem ``SSTTTEV`` codes: SS speaker,
TTT text code, E emotion letter (German initials: W Wut anger, L Langeweile boredom, E Ekel disgust,
A Angst fear, F Freude happiness, T Trauer sadness, N neutral), V version letter (a, b, c ...).

Rules: **boredom -> None (dropped)**: boredom is a low-arousal, negative-valence state; it is neither
neutral (merging it would put a distinct, audibly marked emotion into the neutral class and bias
neutral towards sad) nor any other canonical class. Boredom clips stay in the manifest with
``label`` None and ``original_label`` "boredom" so that they can be used (e.g. for valence/arousal
work) or filtered out with ``m.filter(label=taxonomy.EMOTIONS)``. Every other letter maps to a
canonical label (see :data:`LABEL_MAP`). ``id`` = file stem; ``speaker`` = ``emodb-SS``; ``text`` = the
German sentence; ``split`` None (no official split); ``fold`` = the EmoBox test fold when
``<root>/../emodb_folds`` (or ``folds_dir``) exists, else None.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError
from .emobox import attach_folds
from .manifest import Corpus, Item, Manifest, Problems, require_dir

NAME = "emodb"
SUBDIR = ""  # not in the shared data
LAYOUT = "<root>/wav/03a01Fa.wav (speaker SS, text TTT, emotion letter W/L/E/A/F/T/N, version letter)"
AUDIO = (".wav", ".flac")

# Emotion letter -> EmoDB's own (English) class name, kept as ``original_label``.
CODES: dict[str, str] = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness",
                         "T": "sadness", "N": "neutral"}
# original_label -> canonical; boredom is dropped (None) by the rule above.
LABEL_MAP: dict[str, str | None] = {
    "anger": "angry", "boredom": None, "disgust": "disgusted", "fear": "fearful", "happiness": "happy",
    "sadness": "sad", "neutral": "neutral",
}
SPEAKERS: dict[str, str] = {"03": "male", "08": "female", "09": "female", "10": "male", "11": "male",
                            "12": "male", "13": "female", "14": "female", "15": "male", "16": "female"}
TEXTS: dict[str, str] = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Stück Papier befindet sich da oben neben dem Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}
_NAME = re.compile(r"(\d\d)([ab]\d\d)([A-Z])([a-z])")


def load(root: str | Path, folds_dir: str | Path | None = None) -> Manifest:
    """Items for every clip in ``<root>/wav`` (or ``<root>`` itself when it holds the clips)."""
    root = require_dir(Path(root), "EmoDB", LAYOUT)
    wav = root / "wav" if (root / "wav").is_dir() else root
    if not wav.is_dir():
        raise InputError(f"EmoDB root {root} is not a folder; expected {LAYOUT}")
    probs = Problems(NAME)
    items: list[Item] = []
    audio = [p for p in sorted(wav.iterdir()) if p.is_file() and p.suffix.lower() in AUDIO]
    for p in audio:
        m = _NAME.fullmatch(p.stem)
        if not m:
            probs.add("skipped: name is not an EmoDB SSTTTEV.wav file name", p)
            continue
        spk, text, emo, version = m.groups()
        if emo not in CODES:
            probs.add(f"skipped: unknown emotion letter (known: {', '.join(CODES)})", p)
            continue
        if spk not in SPEAKERS or text not in TEXTS:
            probs.add("loaded with a note: speaker or text code not in the EmoDB release", p)
        orig = CODES[emo]
        items.append(Item(
            id=p.stem, corpus=NAME, paths=(p,), text=TEXTS.get(text), speaker=f"emodb-{spk}",
            label=LABEL_MAP[orig], original_label=orig,
            extra={"emotion_code": emo, "text_code": text, "version": version,
                   "gender": SPEAKERS.get(spk)},
        ))
    if not items:
        where = "has EmoDB-like audio files but none parses" if audio else "has no EmoDB audio files"
        raise InputError(f"EmoDB root {root} {where}; expected {LAYOUT}")
    items = attach_folds(items, root, "emodb", folds_dir, probs)
    return Manifest(items, probs.lines())


__all__ = ["CODES", "LABEL_MAP", "LAYOUT", "TEXTS", "load"]


CORPORA = (Corpus("emodb", load, SUBDIR, LAYOUT),)
