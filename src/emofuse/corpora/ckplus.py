"""CK+, the Extended Cohn-Kanade dataset (Lucey et al. 2010, CVPR Workshops; Kanade et al. 2000).
Licence: research use only under the agreement of the University of Pittsburgh / Carnegie Mellon
(http://www.jeffcohn.net/resources/); not redistributable.

593 posed image sequences from 123 subjects, each running from a neutral onset to the peak
expression; 327 sequences carry a validated emotion label (anger 45, contempt 18, disgust 59, fear 25,
happy 69, sadness 28, surprise 83). Layout (the two official zips unpacked side by side):

* ``<root>/cohn-kanade-images/S005/001/S005_001_00000001.png`` ... ``S005_001_00000011.png``
* ``<root>/Emotion/S005/001/S005_001_00000011_emotion.txt`` holding one float code, e.g.
  ``   3.0000000e+00``: 0 neutral, 1 anger, 2 contempt, 3 disgust, 4 fear, 5 happy, 6 sadness, 7 surprise.

(``<root>/extended-cohn-kanade-images/cohn-kanade-images`` and ``<root>/Emotion_labels/Emotion`` are
accepted too; ``FACS``/``Landmarks`` are not read.)

Rules: only sequences with an emotion file are items (the 266 unlabelled ones are reported in the
warnings, not loaded). The labelled frame is the **peak = the last frame** of the sequence (the frame
named by the emotion file; a mismatch is reported); ``peak_frames=k`` takes the last k frames, one item
each, as is common practice. **contempt -> None (dropped)**: contempt has no canonical class; its
items stay in the manifest with ``label`` None and ``original_label`` "contempt" (filter them out with
``m.filter(label=taxonomy.EMOTIONS)``). Code 0 neutral never occurs in the emotion files; with
``neutral_first=True`` the **first frame** of each labelled sequence (the neutral onset) is added as a
``neutral`` item (``extra["frame"]`` "onset"), the usual way to obtain a neutral class from CK+ (off by
default, and in the registered corpus). ``id`` = the image stem; ``speaker`` = ``ckplus-S005`` (the
subject); ``split``/``fold`` None (no official split: use subject-independent folds).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError
from .manifest import Corpus, Item, Manifest, Problems, require_dir

NAME = "ckplus"
SUBDIR = ""  # not in the shared data
LAYOUT = ("<root>/cohn-kanade-images/S005/001/S005_001_00000011.png and "
          "<root>/Emotion/S005/001/S005_001_00000011_emotion.txt (code 0-7)")
IMAGES = (".png", ".jpg", ".jpeg")

CODES: dict[int, str] = {0: "neutral", 1: "anger", 2: "contempt", 3: "disgust", 4: "fear", 5: "happy",
                         6: "sadness", 7: "surprise"}
# original_label -> canonical; contempt is dropped (None) by the rule above.
LABEL_MAP: dict[str, str | None] = {
    "neutral": "neutral", "anger": "angry", "contempt": None, "disgust": "disgusted", "fear": "fearful",
    "happy": "happy", "sadness": "sad", "surprise": "surprised",
}
_SUBJ, _SEQ = re.compile(r"S\d{3}"), re.compile(r"\d{3}")
_EMO = re.compile(r"(S\d{3})_(\d{3})_(\d+)_emotion")


def _find(root: Path, names: tuple[str, ...]) -> Path | None:
    for n in names:
        if (root / n).is_dir():
            return root / n
    return None


def load(root: str | Path, neutral_first: bool = False, peak_frames: int = 1) -> Manifest:
    if peak_frames < 1:
        raise InputError(f"CK+ peak_frames must be >= 1, not {peak_frames}")
    root = require_dir(Path(root), "CK+", LAYOUT)
    img_dir = _find(root, ("cohn-kanade-images", "extended-cohn-kanade-images/cohn-kanade-images"))
    emo_dir = _find(root, ("Emotion", "Emotion_labels/Emotion"))
    if img_dir is None or emo_dir is None:
        missing = " and ".join(n for n, d in (("cohn-kanade-images", img_dir), ("Emotion", emo_dir)) if d is None)
        raise InputError(f"CK+ root {root} has no {missing} folder; expected {LAYOUT}")
    probs = Problems(NAME)
    items: list[Item] = []
    for subj in sorted(d for d in img_dir.iterdir() if d.is_dir()):
        if not _SUBJ.fullmatch(subj.name):
            probs.add("skipped: subject folder is not SNNN", subj)
            continue
        for seq in sorted(d for d in subj.iterdir() if d.is_dir()):
            if not _SEQ.fullmatch(seq.name):
                probs.add("skipped: sequence folder is not NNN", seq)
                continue
            frames = sorted(p for p in seq.iterdir() if p.suffix.lower() in IMAGES and not p.name.startswith("."))
            if not frames:
                probs.add("skipped: sequence without images", seq)
                continue
            efiles = sorted((emo_dir / subj.name / seq.name).glob("*_emotion.txt"))
            if not efiles:
                probs.add("skipped: sequence has no Emotion file (unlabelled in CK+)", seq)
                continue
            ef = efiles[-1]
            m = _EMO.fullmatch(ef.stem)
            try:
                code = float(ef.read_text(encoding="utf-8", errors="replace").strip())
            except ValueError:
                code = -1.0
            if not m or code != int(code) or int(code) not in CODES:
                probs.add("skipped: emotion file is not S###_###_<frame>_emotion.txt with a code 0-7", ef)
                continue
            if len(efiles) > 1:
                probs.add("several emotion files in one sequence (the last is used)", ef.parent)
            if f"{ef.stem[:-len('_emotion')]}" != frames[-1].stem:
                probs.add("emotion file frame is not the last image (the last image is used)", ef)
            orig = CODES[int(code)]
            spk = f"ckplus-{subj.name}"
            for p in frames[-peak_frames:]:
                items.append(Item(id=p.stem, corpus=NAME, paths=(p,), speaker=spk, label=LABEL_MAP[orig],
                                  original_label=orig,
                                  extra={"sequence": f"{subj.name}_{seq.name}", "frame": "peak",
                                         "n_frames": len(frames), "emotion_code": int(code)}))
            if neutral_first and len(frames) > peak_frames:
                p = frames[0]
                items.append(Item(id=p.stem, corpus=NAME, paths=(p,), speaker=spk, label=LABEL_MAP["neutral"],
                                  original_label="neutral",
                                  extra={"sequence": f"{subj.name}_{seq.name}", "frame": "onset",
                                         "n_frames": len(frames), "emotion_code": 0}))
    have = {it.extra["sequence"] for it in items}
    for ef in sorted(emo_dir.glob("S*/*/*_emotion.txt")):
        subj, seq = ef.parent.parent.name, ef.parent.name
        if f"{subj}_{seq}" not in have and not (img_dir / subj / seq).is_dir():
            probs.add("skipped: emotion file without an image sequence", ef)
    if not items:
        raise InputError(f"CK+ root {root} has no labelled sequence (an image sequence with an Emotion file); "
                         f"expected {LAYOUT}")
    return Manifest(items, probs.lines())


__all__ = ["CODES", "LABEL_MAP", "LAYOUT", "load"]


CORPORA = (Corpus("ckplus", load, SUBDIR, LAYOUT),)
