"""RAVDESS audio-visual features, pre-extracted (derived from Livingstone & Russo 2018,
https://zenodo.org/record/1188976). Licence: CC BY-NC-SA 4.0 (as RAVDESS).

1440 audio-visual recordings of the same trials as the RAVDESS speech clips (24 actors, 60 each), given
as one ``.npz``: ``ids`` (str [1440], RAVDESS ids ``01-01-EE-II-SS-RR-AA``: modality 01 = full
audio-video, vocal channel 01 = speech) and ``features`` (float32 [1440, 294]: columns 0..34 = 35
OpenFace facial action-unit values, columns 35..293 = 259 MFCC statistics of the audio). Layout:
``<root>/ravdess_au_mfcc.npz`` (``<data>/multimodal/`` in the shared data folder); ``root`` may also be
the ``.npz`` file itself. The file is read with ``np.load(allow_pickle=False)``: no code is executed.

Rules: items are the rows whose id parses as a RAVDESS audio-visual *speech* id (MM 01 or 02,
VV 01); other rows are counted in the manifest warnings. The id fields mean what they mean in
:mod:`.ravdess` and the label rule is the same (**calm -> neutral**, 8-class name kept in
``original_label``; ``LABEL_MAP`` is :data:`emofuse.corpora.ravdess.LABEL_MAP`). ``id`` = the 7-field
id; ``speaker`` = ``ravdess-AA`` (the same speaker ids as the speech loader); ``extra["speech_id"]`` =
the speech clip of the same trial (``03-`` + the id after its first field: the ids match after the
first field) and ``extra["row"]`` = the row of the arrays; ``paths`` empty (features, not media);
``split`` None. ``fold`` = the EmoBox fold in which the trial's *speech* clip is a test item, when
``<root>/../speech/ravdess_folds`` (or ``folds_dir``) exists: the folds are speaker-independent
(6 folds of 4 actors), so the audio-visual items of an actor share one fold. :func:`features` gives the
arrays split into AUs and MFCC statistics, row-aligned with the manifest's ``extra["row"]``.
"""

from __future__ import annotations

import dataclasses
import re
import zipfile
from pathlib import Path

import numpy as np

from ..errors import InputError
from .emobox import emobox_folds, test_fold_of
from .manifest import Corpus, Item, Manifest, Problems, require_dir
from .ravdess import CODES, INTENSITY, LABEL_MAP, STATEMENTS

NAME = "ravdess_av"
SUBDIR = "multimodal"
FILE = "ravdess_au_mfcc.npz"
N_AU = 35
N_MFCC = 259
LAYOUT = (f"<root>/{FILE} with arrays ids (str [n], RAVDESS ids 01-01-EE-II-SS-RR-AA) and features "
          f"(float [n, {N_AU + N_MFCC}]: {N_AU} OpenFace AUs then {N_MFCC} MFCC statistics)")
_ID = re.compile(r"(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)")

# The file's feature columns as feature sources of a training run (data.modalities); the analysis cannot
# compute them (no offline OpenFace), so a network trained on them runs with them masked.
SOURCES = {
    "ravdess_av:au": "35 OpenFace facial action-unit values per clip (ravdess_au_mfcc.npz columns 0..34)",
    "ravdess_av:mfcc": "259 MFCC statistics per clip (ravdess_au_mfcc.npz columns 35..293)",
}

__all__ = ["FILE", "LABEL_MAP", "LAYOUT", "N_AU", "N_MFCC", "SOURCES", "features", "load"]


def _npz_path(root: str | Path) -> Path:
    root = require_dir(Path(root), "RAVDESS audio-visual", LAYOUT)
    if root.is_dir() and (root / SUBDIR / FILE).is_file() and not (root / FILE).is_file():
        root = root / SUBDIR  # the shared data folder
    f = root if root.is_file() else root / FILE
    if not f.is_file():
        raise InputError(f"RAVDESS audio-visual root {root} has no {FILE}; expected {LAYOUT}")
    return f


def _arrays(f: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(f, allow_pickle=False) as z:
            missing = [k for k in ("ids", "features") if k not in z.files]
            if missing:
                raise InputError(f"RAVDESS audio-visual file {f} has arrays {sorted(z.files)}, lacking "
                                 f"{missing}; expected {LAYOUT}")
            ids, feats = z["ids"], z["features"]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise InputError(f"RAVDESS audio-visual file {f} is not a readable .npz without pickled objects "
                         f"({e}); expected {LAYOUT}") from e
    if ids.ndim != 1 or ids.dtype.kind not in "US":
        raise InputError(f"RAVDESS audio-visual file {f}: ids has shape {ids.shape} dtype {ids.dtype}; "
                         f"expected a 1-d string array ({LAYOUT})")
    if feats.ndim != 2 or feats.shape != (len(ids), N_AU + N_MFCC) or feats.dtype.kind != "f":
        raise InputError(f"RAVDESS audio-visual file {f}: features has shape {feats.shape} dtype {feats.dtype} "
                         f"for {len(ids)} ids; expected float [{len(ids)}, {N_AU + N_MFCC}] ({LAYOUT})")
    return np.asarray([str(i) for i in ids.tolist()]), feats


def features(root: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ids [n], au [n, 35], mfcc [n, 259])`` from ``<root>/ravdess_au_mfcc.npz`` (all rows, in file
    order: row ``i`` is the manifest item with ``extra["row"] == i``)."""
    ids, feats = _arrays(_npz_path(root))
    return ids, feats[:, :N_AU], feats[:, N_AU:]


def _default_folds(f: Path) -> Path | None:
    for d in (f.parent.parent / "speech" / "ravdess_folds", f.parent.parent / "ravdess_folds",
              f.parent / "ravdess_folds"):
        if d.is_dir():
            return d
    return None


def load(root: str | Path, folds_dir: str | Path | None = None) -> Manifest:
    """Items for every audio-visual speech row of ``<root>/ravdess_au_mfcc.npz``; folds from
    ``folds_dir`` (default: ``<root>/../speech/ravdess_folds`` when it exists)."""
    f = _npz_path(root)
    ids, feats = _arrays(f)
    probs = Problems(NAME)
    items: list[Item] = []
    seen: set[str] = set()
    for row, rid in enumerate(ids.tolist()):
        rid = rid.strip()
        where = f"{f.name} row {row} ({rid})"
        m = _ID.fullmatch(rid)
        if not m:
            probs.add("skipped: id is not a RAVDESS id MM-VV-EE-II-SS-RR-AA", where)
            continue
        mod, voc, emo, inten, stmt, rep, actor = m.groups()
        if mod not in ("01", "02") or voc != "01":
            probs.add("skipped: not an audio-visual speech id (modality 01/02, vocal channel 01)", where)
            continue
        if emo not in CODES or inten not in INTENSITY or stmt not in STATEMENTS or not 1 <= int(actor) <= 24:
            probs.add("skipped: unknown emotion, intensity, statement or actor code", where)
            continue
        if rid in seen:
            probs.add("skipped: id repeated (first row kept)", where)
            continue
        if not np.isfinite(feats[row]).all():
            probs.add("kept: features have non-finite values", where)
        seen.add(rid)
        orig = CODES[emo]
        items.append(Item(
            id=rid, corpus=NAME, text=STATEMENTS[stmt], speaker=f"ravdess-{actor}",
            label=LABEL_MAP[orig], original_label=orig,
            extra={"row": row, "speech_id": "03-" + rid[3:], "modality": mod, "emotion_code": emo,
                   "intensity": INTENSITY[inten], "statement": int(stmt), "repetition": int(rep),
                   "actor": int(actor), "gender": "male" if int(actor) % 2 else "female"},
        ))
    if not items:
        raise InputError(f"RAVDESS audio-visual file {f} has no RAVDESS audio-visual speech ids; expected {LAYOUT}")
    if folds_dir is None:
        folds_dir = _default_folds(f)
    if folds_dir is not None:
        items = _assign_speech_folds(items, emobox_folds(folds_dir), probs)
    return Manifest(items, probs.lines())


def _assign_speech_folds(items: list[Item], folds: dict[int, tuple[set[str], set[str]]],
                         probs: Problems) -> list[Item]:
    """``fold`` = the fold whose test list holds the item's speech clip (``extra["speech_id"]``)."""
    test_of = test_fold_of(folds, probs, "speech clip ")
    out = []
    for it in items:
        k = test_of.get(it.extra["speech_id"])
        if k is None:
            probs.add("speech clip in no EmoBox test fold (fold left None)", it.id)
            out.append(it)
        else:
            out.append(dataclasses.replace(it, fold=k))
    return out


CORPORA = (Corpus(NAME, load, SUBDIR, LAYOUT),)
