"""nEMO (Christop 2024, https://github.com/amu-cai/nEMO), Polish emotional speech. Licence: CC BY-NC-SA 4.0.

4,481 acted Polish utterances (3.1 h) by 9 actors; each actor reads sentences in six emotions. Layout:
``<root>/<SPK>_<emotion>_<N>.wav`` (the release; ``.opus`` in the shared copy) beside ``<root>/data.tsv``
(columns ``file_id`` (the ``.wav`` name), ``emotion``, ``raw_text``, ``normalized_text``, ``speaker_id``,
``gender``, ``age``). The file name's emotion is one of anger, fear, happiness, neutral, sadness, surprised.

Rules: every emotion maps to a canonical label (see :data:`LABEL_MAP`); nEMO has no disgust. ``id`` = file
stem; ``speaker`` = ``nemo-SPK`` (the file-name prefix, e.g. ``EB0``); ``text`` = ``raw_text`` of data.tsv;
``extra`` gender and age from data.tsv. A file data.tsv does not list keeps its label (from the name) without
text and is counted in the warnings, as is a data.tsv emotion that disagrees with the file name (skipped) and
a data.tsv row without a file. ``split``/``fold`` None: nEMO has no official folds; the protocols make
speaker-independent ones by speaker.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError
from .manifest import Corpus, Item, Manifest, Problems, read_csv, require_dir

NAME = "nemo"
SUBDIR = "speech/nemo"
LAYOUT = "<root>/EB0_anger_1.wav (or .opus, .flac) for each clip, and <root>/data.tsv (file_id, emotion, raw_text, speaker_id, gender, age)"
AUDIO = (".wav", ".opus", ".flac")

# nEMO's emotion names -> canonical. Nothing is dropped; disgusted never occurs.
LABEL_MAP: dict[str, str | None] = {"anger": "angry", "fear": "fearful", "happiness": "happy", "neutral": "neutral",
                                    "sadness": "sad", "surprised": "surprised"}
_NAME = re.compile(r"([A-Z]{2}\d)_([a-z]+)_(\d+)")


def _table(path: Path, probs: Problems) -> dict[str, dict[str, str]]:
    """data.tsv rows by file stem ({} when the file is absent: counted in the warnings)."""
    if not path.is_file():
        probs.add("without a transcript: data.tsv is missing", path)
        return {}
    rows = read_csv(path, "nEMO", ("file_id", "emotion", "raw_text"), delimiter="\t")
    return {Path(r["file_id"].strip()).stem: {k: v.strip() for k, v in r.items()} for r in rows if r["file_id"].strip()}


def load(root: str | Path) -> Manifest:
    root = require_dir(Path(root), "nEMO", LAYOUT)
    probs = Problems(NAME)
    rows = _table(root / "data.tsv", probs)
    items: list[Item] = []
    seen: set[str] = set()
    for p in sorted(root.iterdir()):
        if p.name.startswith(".") or p.is_dir() or p.suffix.lower() not in AUDIO:
            continue
        m = _NAME.fullmatch(p.stem)
        if not m:
            probs.add("skipped: name is not <SPK>_<emotion>_<N>", p)
            continue
        spk, emo, _ = m.groups()
        if emo not in LABEL_MAP:
            probs.add(f"skipped: unknown emotion (known: {', '.join(LABEL_MAP)})", p)
            continue
        if p.stem in seen:
            probs.add("skipped: the same clip in a second format", p)
            continue
        seen.add(p.stem)
        row = rows.get(p.stem)
        if row is None and rows:
            probs.add("without a transcript: not in data.tsv", p)
        if row is not None and row.get("emotion") and row["emotion"] != emo:
            probs.add("skipped: data.tsv gives another emotion than the file name", p)
            continue
        extra: dict[str, object] = {}
        if row is not None:
            extra = {"gender": row.get("gender") or None, "age": int(row["age"]) if row.get("age", "").isdigit() else None}
        items.append(Item(id=p.stem, corpus=NAME, paths=(p,), text=(row or {}).get("raw_text") or None,
                          speaker=f"nemo-{spk}", label=LABEL_MAP[emo], original_label=emo, extra=extra))
    if not items:
        raise InputError(f"nEMO root {root} has no nEMO audio files; expected {LAYOUT}")
    missing = sorted(set(rows) - seen)
    for stem in missing:
        probs.add("in data.tsv without an audio file", stem)
    return Manifest(items, probs.lines())


__all__ = ["LABEL_MAP", "LAYOUT", "load"]


CORPORA = (Corpus("nemo", load, SUBDIR, LAYOUT),)
