"""CREMA-D, Crowd-sourced Emotional Multimodal Actors Dataset (Cao et al. 2014, IEEE Trans. Affective
Computing; https://github.com/CheyneyComputerScience/CREMA-D). Licence: Open Database License (ODbL
1.0) with the Database Contents License (DbCL 1.0).

7,442 acted English clips from 91 actors (48 male, 43 female, ids 1001-1091, ages 20-74), 12 sentences,
6 emotions, audio 16 kHz. Layout: ``<root>/AudioWAV/1001_DFA_ANG_XX.wav``; optional
``<root>/VideoFlash/1001_DFA_ANG_XX.flv`` (audio-visual) and ``<root>/VideoDemographics.csv``
(ActorID, Age, Sex, Race, Ethnicity). The stem ``AAAA_SSS_EEE_II`` codes: AAAA actor, SSS sentence
(IEO "It's eleven o'clock", TIE "That is exactly what happened", ...), EEE emotion (ANG anger, DIS
disgust, FEA fear, HAP happy, NEU neutral, SAD sad), II intensity (LO low, MD medium, HI high, XX
unspecified; only IEO was recorded at three levels).

Rules: every emotion code maps to a canonical label, nothing is dropped (see :data:`LABEL_MAP`); the
labels are the *intended* (acted) emotions, not the crowd-perceived ones of ``summaryTable.csv``.
``id`` = file stem; ``paths`` = the wav, then the flv when ``VideoFlash`` holds one of the same stem;
``speaker`` = ``crema_d-AAAA``; ``text`` = the sentence; ``split`` None (no official split); ``fold`` =
the EmoBox test fold when ``<root>/../crema_d_folds`` (or ``folds_dir``) exists, else None.
``extra["gender"]`` comes from VideoDemographics.csv when it is present.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError
from .emobox import attach_folds
from .manifest import Corpus, Item, Manifest, Problems, read_csv, require_dir

NAME = "crema_d"
SUBDIR = ""  # not in the shared data
LAYOUT = "<root>/AudioWAV/1001_DFA_ANG_XX.wav (actor_sentence_emotion_intensity), optional <root>/VideoFlash/*.flv"
AUDIO = (".wav", ".flac")

CODES: dict[str, str] = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral",
                         "SAD": "sad"}
# original_label (the CREMA-D code) -> canonical. Nothing is dropped.
LABEL_MAP: dict[str, str | None] = {"ANG": "angry", "DIS": "disgusted", "FEA": "fearful", "HAP": "happy",
                                    "NEU": "neutral", "SAD": "sad"}
INTENSITY: dict[str, str | None] = {"LO": "low", "MD": "medium", "HI": "high", "XX": None}
SENTENCES: dict[str, str] = {
    "IEO": "It's eleven o'clock", "TIE": "That is exactly what happened", "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about", "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold", "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment", "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before", "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
ACTORS = range(1001, 1092)
_NAME = re.compile(r"(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})")


def _genders(root: Path, probs: Problems) -> dict[str, str]:
    p = root / "VideoDemographics.csv"
    if not p.is_file():
        return {}
    out = {}
    for r in read_csv(p, "CREMA-D", ("ActorID", "Sex")):
        a, s = r["ActorID"].strip(), r["Sex"].strip().lower()
        if a and s:
            out[a] = s
        else:
            probs.add("demographics row without ActorID or Sex", p)
    return out


def load(root: str | Path, folds_dir: str | Path | None = None) -> Manifest:
    root = require_dir(Path(root), "CREMA-D", LAYOUT)
    audio_dir = root / "AudioWAV"
    if not audio_dir.is_dir():
        raise InputError(f"CREMA-D root {root} has no AudioWAV folder; expected {LAYOUT}")
    video_dir = root / "VideoFlash"
    videos = {p.stem: p for p in video_dir.glob("*.flv")} if video_dir.is_dir() else {}
    probs = Problems(NAME)
    genders = _genders(root, probs)
    items: list[Item] = []
    for p in sorted(audio_dir.iterdir()):
        if p.name.startswith(".") or p.is_dir():
            continue
        m = _NAME.fullmatch(p.stem)
        if p.suffix.lower() not in AUDIO or not m:
            probs.add("skipped: not a CREMA-D audio file AAAA_SSS_EEE_II.wav", p)
            continue
        actor, sent, emo, inten = m.groups()
        if emo not in CODES or inten not in INTENSITY or sent not in SENTENCES or int(actor) not in ACTORS:
            probs.add("skipped: unknown actor, sentence, emotion or intensity code", p)
            continue
        paths = (p, videos[p.stem]) if p.stem in videos else (p,)
        items.append(Item(
            id=p.stem, corpus=NAME, paths=paths, text=SENTENCES[sent], speaker=f"crema_d-{actor}",
            label=LABEL_MAP[emo], original_label=emo,
            extra={"actor": int(actor), "sentence": sent, "intensity": INTENSITY[inten],
                   "gender": genders.get(actor), "video": p.stem in videos},
        ))
    if not items:
        raise InputError(f"CREMA-D root {root} has an AudioWAV folder but no CREMA-D clips in it; expected {LAYOUT}")
    have = {it.id for it in items}
    for stem in sorted(set(videos) - have):
        probs.add("video without a matching AudioWAV clip (not loaded)", videos[stem])
    items = attach_folds(items, root, "crema_d", folds_dir, probs)
    return Manifest(items, probs.lines())


__all__ = ["CODES", "LABEL_MAP", "LAYOUT", "SENTENCES", "load"]


CORPORA = (Corpus("crema_d", load, SUBDIR, LAYOUT),)
