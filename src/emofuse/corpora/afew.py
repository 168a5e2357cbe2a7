"""AFEW, Acted Facial Expressions in the Wild (Dhall et al. 2012), as distributed for the EmotiW
challenge. Licence: academic research only, under the EmotiW end-user licence agreement.

Short audio-video clips (.avi) cut from movies, one per emotion episode; EmotiW's split (AFEW 7.0:
773 Train / 383 Val clips; Test labels are not released). Layout ``<root>/Train/<Emotion>/<clip>.avi``
and ``<root>/Val/<Emotion>/<clip>.avi`` with Emotion in Angry Disgust Fear Happy Neutral Sad Surprise;
an unlabelled ``<root>/Test/<clip>.avi`` folder, when present, gives items with label None.

Label rule: Angry -> angry, Disgust -> disgusted, Fear -> fearful, Happy -> happy, Neutral -> neutral,
Sad -> sad, Surprise -> surprised (nothing dropped). ``id`` = ``<split>/<clip stem>``; ``split`` =
train (Train), val (Val), test (Test); ``speaker`` None (actors are not annotated); ``paths`` = the
clip (never opened). Files that are not ``.avi`` clips and folders that are not an emotion are counted
in the warnings and skipped.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .manifest import Corpus, Item, Manifest, Problems, require_dir

NAME = "afew"
SUBDIR = ""  # not in the shared data folder
LAYOUT = ("<root>/{Train,Val}/<Emotion>/<clip>.avi with Emotion in Angry Disgust Fear Happy Neutral "
          "Sad Surprise (optional unlabelled <root>/Test/<clip>.avi)")
LABEL_MAP: dict[str, str | None] = {
    "Angry": "angry", "Disgust": "disgusted", "Fear": "fearful", "Happy": "happy",
    "Neutral": "neutral", "Sad": "sad", "Surprise": "surprised",
}
SPLITS = {"Train": "train", "Val": "val", "Test": "test"}
VIDEO = (".avi",)

__all__ = ["LABEL_MAP", "LAYOUT", "load"]


def _clip(p: Path, probs: Problems) -> bool:
    if p.name.startswith("."):
        return False
    if p.is_dir() or p.suffix.lower() not in VIDEO:
        probs.add("skipped: not an .avi clip", p)
        return False
    return True


def load(root: str | Path) -> Manifest:
    root = require_dir(Path(root), "AFEW", LAYOUT)
    if not root.is_dir():
        raise InputError(f"AFEW root {root} is not a folder; expected {LAYOUT}")
    found = {d.name: d for d in root.iterdir() if d.is_dir() and d.name in SPLITS}
    if not ({"Train", "Val"} & set(found)):
        raise InputError(f"AFEW root {root} has no Train or Val folder; expected {LAYOUT}")
    probs = Problems(NAME)
    items: list[Item] = []
    for sname in ("Train", "Val"):
        if sname not in found:
            continue
        split = SPLITS[sname]
        for d in sorted(found[sname].iterdir()):
            if d.name.startswith("."):
                continue
            if not d.is_dir() or d.name not in LABEL_MAP:
                probs.add(f"skipped: not an emotion folder ({' '.join(LABEL_MAP)})", d)
                continue
            for p in sorted(d.iterdir()):
                if _clip(p, probs):
                    items.append(Item(id=f"{split}/{p.stem}", corpus=NAME, paths=(p,), split=split,
                                      label=LABEL_MAP[d.name], original_label=d.name,
                                      extra={"clip": p.stem}))
    if "Test" in found:
        for p in sorted(found["Test"].iterdir()):
            if _clip(p, probs):
                items.append(Item(id=f"test/{p.stem}", corpus=NAME, paths=(p,), split="test",
                                  extra={"clip": p.stem}))
    if not any(it.label for it in items):
        raise InputError(f"AFEW root {root} has no labelled clips; expected {LAYOUT}")
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        raise InputError(f"AFEW root {root}: a clip name occurs in two emotion folders of one split")
    return Manifest(items, probs.lines())


CORPORA = (Corpus(NAME, load, SUBDIR, LAYOUT),)
