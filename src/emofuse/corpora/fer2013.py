"""FER2013 (Goodfellow et al. 2013, ICML 2013 Challenges in Representation Learning, Kaggle).
Licence: research use (the Kaggle competition terms).

35,887 48x48 grey faces: Training 28,709, PublicTest 3,589, PrivateTest 3,589. Two forms are read:

* folders ``<root>/{train,validation,test}/<emotion>/*.jpg`` (``.png`` too). ``train`` -> split
  ``train``, ``validation``/``val``/``valid`` -> ``val``, ``test`` -> ``test``. In the shared copy
  ``validation`` is the official PublicTest. ``id`` = ``<folder>/<emotion>/<stem>``; ``paths`` = the
  image; ``extra["folder"]`` = the split folder's name.
* the original csv ``<root>/fer2013.csv`` (or the csv itself as root, or ``icml_face_data.csv``) with
  columns ``emotion,pixels,Usage``: emotion 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise,
  6 neutral; Usage Training -> ``train``, PublicTest -> ``val``, PrivateTest -> ``test``. Such items have
  **no paths**: ``extra["pixels"]`` holds the row's 2304 space-separated grey values (row-major 48x48;
  decode with :func:`pixels`), ``extra["usage"]`` the Usage, ``extra["row"]`` the 0-based data row; ``id``
  = ``fer2013-<row>``. Rows whose pixel count is not 2304 are skipped and reported.

Rules: every FER2013 class maps to a canonical label (disgust -> disgusted, fear -> fearful, surprise
-> surprised); nothing is dropped. No speakers (``speaker`` None); ``original_label`` = the class name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InputError
from ..taxonomy import FER2013, FER2013_ORDER
from .manifest import Corpus, Item, Manifest, Problems, read_csv, require_dir

NAME = "fer2013"
SUBDIR = "faces/fer2013"
LAYOUT = ("<root>/train/<emotion>/*.jpg (+ validation/, test/) with emotion folders angry, disgust, fear, "
          "happy, neutral, sad, surprise; or the csv <root>/fer2013.csv with columns emotion,pixels,Usage")
IMAGES = (".jpg", ".jpeg", ".png")
SIZE = 48

LABEL_MAP: dict[str, str | None] = dict(FER2013)  # folder/class name -> canonical; nothing dropped
CSV_CLASSES: tuple[str, ...] = FER2013_ORDER  # the csv's emotion index
FOLDERS = {"train": "train", "training": "train", "validation": "val", "val": "val", "valid": "val",
           "publictest": "val", "test": "test", "privatetest": "test"}
USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
CSV_NAMES = ("fer2013.csv", "icml_face_data.csv")


def pixels(item: Item) -> Any:
    """The 48x48 uint8 image of a csv-form item (numpy array)."""
    import numpy as np

    if "pixels" not in item.extra:
        raise InputError(f"FER2013 item {item.id} has no pixels in extra: it is an image file, read {item.paths}")
    return np.array(item.extra["pixels"].split(), dtype=np.uint8).reshape(SIZE, SIZE)


def load(root: str | Path) -> Manifest:
    root = require_dir(Path(root), "FER2013", LAYOUT)
    if root.is_file():
        return load_csv(root)
    for n in CSV_NAMES:
        if (root / n).is_file():
            return load_csv(root / n)
    return load_folders(root)


def load_folders(root: Path) -> Manifest:
    probs = Problems(NAME)
    split_dirs = sorted(d for d in root.iterdir() if d.is_dir() and d.name.lower() in FOLDERS)
    if not split_dirs:
        raise InputError(f"FER2013 root {root} has neither split folders (train, validation, test) nor "
                         f"fer2013.csv; expected {LAYOUT}")
    items = []
    for sd in split_dirs:
        split = FOLDERS[sd.name.lower()]
        for ed in sorted(sd.iterdir()):
            if not ed.is_dir():
                continue
            if ed.name.lower() not in LABEL_MAP:
                probs.add(f"skipped: folder is not a FER2013 class ({', '.join(LABEL_MAP)})", ed)
                continue
            orig = ed.name.lower()
            for p in sorted(ed.iterdir()):
                if p.suffix.lower() not in IMAGES:
                    if not p.name.startswith("."):
                        probs.add("skipped: not a .jpg/.png image", p)
                    continue
                items.append(Item(id=f"{sd.name}/{ed.name}/{p.stem}", corpus=NAME, paths=(p,), split=split,
                                  label=LABEL_MAP[orig], original_label=orig, extra={"folder": sd.name}))
    if not items:
        raise InputError(f"FER2013 root {root} has split folders but no images in <split>/<emotion>/; "
                         f"expected {LAYOUT}")
    return Manifest(items, probs.lines())


def load_csv(path: Path) -> Manifest:
    probs = Problems(NAME)
    rows = read_csv(path, "FER2013", ("emotion", "pixels", "Usage"))
    if not rows:
        raise InputError(f"FER2013 csv {path} has no rows; expected {LAYOUT}")
    items = []
    for i, r in enumerate(rows):
        emo, usage, px = r["emotion"].strip(), r["Usage"].strip(), r["pixels"].strip()
        if not emo.isdigit() or int(emo) >= len(CSV_CLASSES):
            probs.add("skipped: emotion is not 0..6", f"{path} row {i}")
            continue
        if usage not in USAGE:
            probs.add(f"skipped: Usage is not one of {list(USAGE)}", f"{path} row {i}")
            continue
        if len(px.split()) != SIZE * SIZE:
            probs.add(f"skipped: pixels do not hold {SIZE * SIZE} values", f"{path} row {i}")
            continue
        orig = CSV_CLASSES[int(emo)]
        items.append(Item(id=f"fer2013-{i}", corpus=NAME, split=USAGE[usage], label=LABEL_MAP[orig],
                          original_label=orig, extra={"pixels": px, "usage": usage, "row": i}))
    return Manifest(items, probs.lines())


CORPORA = (Corpus("fer2013", load, SUBDIR, LAYOUT),)
