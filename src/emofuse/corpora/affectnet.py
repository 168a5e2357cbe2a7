"""AffectNet in image-folder form (Mollahosseini, Hasani & Mahoor 2017, IEEE Trans. Affective Computing;
http://mohammadmahoor.com/affectnet/). Licence: research use only under the AffectNet academic licence
agreement (University of Denver); not redistributable.

About 1M web face images, ~440k annotated by hand with 11 categories (8 emotions plus 8 none, 9
uncertain, 10 no-face) and valence/arousal in [-1, 1]. The usual 8-class subset has ~288k training
images and a 4,000-image validation set (500 per class) that serves as the test set. The official
release (``train_set/images`` + ``annotations/*_exp.npy``) is **not** read here; this loader reads the
common image-folder export:

``<root>/{train,val}/<class>/*.jpg`` (``validation``/``valid``/``test`` are accepted too, as are
``.png``/``.jpeg``), where ``<class>`` is either a word (neutral, happy, sad, surprise, fear, disgust,
anger, contempt; also angry, surprised, fearful, disgusted, happiness, sadness) or AffectNet's
numeric code 0 neutral, 1 happy, 2 sad, 3 surprise, 4 fear, 5 disgust, 6 anger, 7 contempt. Folders 8
none, 9 uncertain, 10 no-face are reported and not loaded.

Rules: **contempt -> None (dropped)**: contempt has no canonical class; its images stay in the
manifest with ``label`` None and ``original_label`` "contempt" (filter them out with
``m.filter(label=taxonomy.EMOTIONS)``); every other class maps to a canonical label (see
:data:`LABEL_MAP`). ``original_label`` = the AffectNet class word (a numeric folder is translated).
``id`` = ``<split folder>/<class folder>/<stem>``; ``split`` from the folder name (``val`` for
validation); ``speaker`` None (no identities); ``fold`` None; no valence/arousal (not in folder form).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .manifest import Corpus, Item, Manifest, Problems, require_dir, split_name

NAME = "affectnet"
SUBDIR = ""  # not in the shared data
LAYOUT = ("<root>/{train,val}/<class>/*.jpg with class folders neutral, happy, sad, surprise, fear, disgust, "
          "anger, contempt or the AffectNet codes 0..7")
IMAGES = (".jpg", ".jpeg", ".png")

CODES: dict[str, str] = {"0": "neutral", "1": "happy", "2": "sad", "3": "surprise", "4": "fear", "5": "disgust",
                         "6": "anger", "7": "contempt"}
NON_EMOTION: dict[str, str] = {"8": "none", "9": "uncertain", "10": "no-face", "none": "none",
                               "uncertain": "uncertain", "no-face": "no-face", "noface": "no-face"}
# original_label -> canonical; contempt is dropped (None) by the rule above.
LABEL_MAP: dict[str, str | None] = {
    "neutral": "neutral", "happy": "happy", "sad": "sad", "surprise": "surprised", "fear": "fearful",
    "disgust": "disgusted", "anger": "angry", "contempt": None,
}
# folder name (lower case) -> original_label
ALIASES: dict[str, str] = {**{k: k for k in LABEL_MAP}, **CODES, "angry": "anger", "surprised": "surprise",
                           "fearful": "fear", "disgusted": "disgust", "happiness": "happy", "sadness": "sad"}


def load(root: str | Path) -> Manifest:
    root = require_dir(Path(root), "AffectNet", LAYOUT)
    if not root.is_dir():
        raise InputError(f"AffectNet root {root} is not a folder; expected {LAYOUT}")
    split_dirs = sorted(d for d in root.iterdir() if d.is_dir() and split_name(d.name) is not None)
    if not split_dirs:
        raise InputError(f"AffectNet root {root} has no split folders (train, val); expected {LAYOUT}")
    probs = Problems(NAME)
    items: list[Item] = []
    for sd in split_dirs:
        split = split_name(sd.name)
        for cd in sorted(sd.iterdir()):
            if not cd.is_dir():
                continue
            key = cd.name.lower()
            if key in NON_EMOTION:
                probs.add(f"skipped: non-emotion AffectNet category folder ({NON_EMOTION[key]})", cd)
                continue
            if key not in ALIASES:
                probs.add("skipped: folder is not an AffectNet class (words or codes 0..7)", cd)
                continue
            orig = ALIASES[key]
            for p in sorted(cd.iterdir()):
                if p.name.startswith(".") or p.is_dir():
                    continue
                if p.suffix.lower() not in IMAGES:
                    probs.add("skipped: not a .jpg/.png image", p)
                    continue
                items.append(Item(id=f"{sd.name}/{cd.name}/{p.stem}", corpus=NAME, paths=(p,), split=split,
                                  label=LABEL_MAP[orig], original_label=orig,
                                  extra={"folder": sd.name, "class_folder": cd.name}))
    if not items:
        raise InputError(f"AffectNet root {root} has split folders but no images in <split>/<class>/; "
                         f"expected {LAYOUT}")
    return Manifest(items, probs.lines())


__all__ = ["ALIASES", "CODES", "LABEL_MAP", "LAYOUT", "load"]


CORPORA = (Corpus("affectnet", load, SUBDIR, LAYOUT),)
