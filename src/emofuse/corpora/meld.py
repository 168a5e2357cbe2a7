"""MELD, Multimodal EmotionLines Dataset (Poria et al. 2019, https://affective-meld.github.io/).
Licence: GPL-3.0.

Utterances of Friends TV dialogues: official train 9,989 / dev 1,109 / test 2,610. Layout:
``<root>/{train,dev,test}_sent_emo.csv`` with columns ``Sr No., Utterance, Speaker, Emotion, Sentiment,
Dialogue_ID, Utterance_ID, Season, Episode, StartTime, EndTime`` (the shared copy has train and dev).
Raw clips are ``dia{D}_utt{U}.mp4``; pass ``clips_dir`` (default ``<root>/clips`` when present) holding
them directly, per split (``<clips>/train/``), or in the official MELD.Raw folders
(``train_splits``, ``dev_splits_complete``, ``output_repeated_splits_test``). Clips that cannot be found
are reported in the warnings and their items keep empty ``paths``.

Rules: ``Emotion`` (anger, disgust, fear, joy, neutral, sadness, surprise) maps to canonical labels
(joy -> happy); nothing is dropped. ``id`` = ``{split}/dia{D}_utt{U}`` (dialogue ids restart per split);
``speaker`` = the character name as written; ``text`` = the utterance; ``extra``: dialogue, utterance,
sentiment (negative/neutral/positive, not turned into valence), season, episode, start, end.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..taxonomy import MELD
from .manifest import Corpus, Item, Manifest, Problems, read_csv, require_dir

NAME = "meld"
SUBDIR = "text/meld"
LAYOUT = "<root>/train_sent_emo.csv (+ dev_sent_emo.csv, test_sent_emo.csv) with columns Utterance, Speaker, Emotion, Sentiment, Dialogue_ID, Utterance_ID"
SPLITS = ("train", "dev", "test")
COLUMNS = ("Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID")
RAW_DIRS = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}

LABEL_MAP: dict[str, str | None] = dict(MELD)  # Emotion column -> canonical; nothing dropped


def clip_name(dialogue: int, utterance: int) -> str:
    return f"dia{dialogue}_utt{utterance}.mp4"


def _find_clip(clips: Path, split: str, name: str) -> Path | None:
    for d in (clips, clips / split, clips / RAW_DIRS[split], clips / split / RAW_DIRS[split]):
        if (d / name).is_file():
            return d / name
    return None


def load(root: str | Path, clips_dir: str | Path | None = None) -> Manifest:
    root = require_dir(Path(root), "MELD", LAYOUT)
    files = {s: root / f"{s}_sent_emo.csv" for s in SPLITS if (root / f"{s}_sent_emo.csv").is_file()}
    if not files:
        raise InputError(f"MELD root {root} has no <split>_sent_emo.csv; expected {LAYOUT}")
    if clips_dir is None and (root / "clips").is_dir():
        clips_dir = root / "clips"
    clips = Path(clips_dir).expanduser() if clips_dir is not None else None
    if clips is not None and not clips.is_dir():
        raise InputError(f"MELD clips folder {clips} does not exist; expected dia{{D}}_utt{{U}}.mp4 files in it")
    probs = Problems(NAME)
    items = []
    for split, f in files.items():
        for i, r in enumerate(read_csv(f, "MELD", COLUMNS)):
            where = f"{f.name} row {i + 1}"
            emo = r["Emotion"].strip().lower()
            if emo not in LABEL_MAP:
                probs.add(f"skipped: Emotion is not one of {list(LABEL_MAP)}", where)
                continue
            try:
                dia, utt = int(r["Dialogue_ID"]), int(r["Utterance_ID"])
            except ValueError:
                probs.add("skipped: Dialogue_ID/Utterance_ID is not an integer", where)
                continue
            paths: tuple[Path, ...] = ()
            if clips is not None:
                p = _find_clip(clips, split, clip_name(dia, utt))
                if p is None:
                    probs.add("have no clip file (paths left empty)", f"{split} {clip_name(dia, utt)}")
                else:
                    paths = (p,)
            extra = {"dialogue": dia, "utterance": utt, "sentiment": r["Sentiment"].strip().lower()}
            for k, col in (("season", "Season"), ("episode", "Episode"), ("start", "StartTime"), ("end", "EndTime")):
                if col in r:
                    v = r[col].strip()
                    extra[k] = int(v) if v.isdigit() else v
            items.append(Item(id=f"{split}/dia{dia}_utt{utt}", corpus=NAME, paths=paths, text=r["Utterance"].strip(),
                              speaker=r["Speaker"].strip() or None, split=split, label=LABEL_MAP[emo],
                              original_label=emo, extra=extra))
    return Manifest(items, probs.lines())


CORPORA = (Corpus("meld", load, SUBDIR, LAYOUT),)
