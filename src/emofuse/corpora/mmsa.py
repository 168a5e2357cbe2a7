"""CMU-MOSI, CMU-MOSEI, CH-SIMS and CH-SIMS v2 in the MMSA feature-pickle format (Yu et al., MMSA /
MMSA-FET, https://github.com/thuiar/MMSA). Licence: research use (as the corpora; the features are
derived from them).

**SECURITY: these files are Python pickles, and loading a pickle can execute arbitrary code written
into it.** Nothing here unpickles anything unless the caller passes ``trust_pickle=True`` for a file it
obtained from a source it trusts; without the flag :func:`load` and :func:`arrays` raise
:class:`~emofuse.errors.InputError` before opening the file. Only the path the caller gives is read
(no search of default folders); :func:`emofuse.corpora.prepare` cannot pass the flag, so the registered
entries only check the path and then refuse, pointing here.

Layout: one pickle (``unaligned_39.pkl``, ``unaligned_50.pkl``, ``aligned_50.pkl``, ``ch-simsv2s.pkl``,
...) holding ``{"train": {...}, "valid": {...}, "test": {...}}``; each split a dict of row-aligned
arrays ``id`` (``<video_id>$_$<clip_id>``), ``raw_text``, ``text`` and/or ``text_bert``, ``audio``,
``vision``, ``audio_lengths``, ``vision_lengths``, ``regression_labels`` (and ``regression_labels_T``
/``_A``/``_V``, the unimodal labels of CH-SIMS / v2), ``classification_labels``. ``path`` is the pickle,
or a folder holding exactly one ``*.pkl``.

Items: ``id`` = the MMSA id; ``text`` = ``raw_text``; ``split`` = train / val (``valid``) / test;
``valence`` = ``regression_labels`` / 3 for MOSI and MOSEI (sentiment in [-3, 3]) and as given for SIMS
and SIMS v2 (already in [-1, 1]); ``original_label`` = the regression label as written; ``label`` None
(no categorical emotion). ``extra``: ``video``/``clip`` (the id's two parts; keep a video on one side of
a split), ``sentiment`` (raw), ``valence_T``/``valence_A``/``valence_V`` (unimodal labels, same
rescaling; SIMS only), ``classification_label``, ``row`` (the row in its split's arrays). Rows whose
label is missing, not a number or outside the scale are counted in the warnings and skipped. The
feature arrays are not put in items: :func:`arrays` returns them per split.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .manifest import Corpus, Item, Manifest, Problems, require_dir, split_name

SCALE = {"mosi": 3.0, "mosei": 3.0, "sims": 1.0, "sims2": 1.0}
TITLE = {"mosi": "CMU-MOSI (MMSA)", "mosei": "CMU-MOSEI (MMSA)", "sims": "CH-SIMS (MMSA)",
         "sims2": "CH-SIMS v2 (MMSA)"}
SUBDIR = ""  # not in the shared data folder
LAYOUT = ("an MMSA feature pickle (e.g. unaligned_50.pkl), or a folder holding exactly one *.pkl: "
          "{'train'|'valid'|'test': {'id', 'raw_text', 'text'/'text_bert', 'audio', 'vision', "
          "'audio_lengths', 'vision_lengths', 'regression_labels', 'classification_labels'}}; "
          "loaded only with trust_pickle=True")
FEATURES = ("text", "text_bert", "audio", "vision", "audio_lengths", "vision_lengths")
REFUSAL = ("refusing to unpickle {path}: a pickle can run arbitrary code when loaded. If you obtained "
           "this file from a source you trust, call emofuse.corpora.mmsa.load(path, corpus, "
           "trust_pickle=True) (or arrays(path, split, trust_pickle=True))")

__all__ = ["LAYOUT", "SCALE", "arrays", "load"]


def _pickle_path(path: str | Path, title: str) -> Path:
    path = require_dir(Path(path), title, LAYOUT)
    if path.is_dir():
        pkls = sorted(p for p in path.glob("*.pkl") if p.is_file())
        if len(pkls) != 1:
            raise InputError(f"{title} root {path} holds {len(pkls)} *.pkl files "
                             f"({', '.join(p.name for p in pkls) or 'none'}); give the pickle itself; expected {LAYOUT}")
        path = pkls[0]
    return path


def _read(path: Path, title: str, trust_pickle: bool) -> dict[str, dict[str, Any]]:
    if trust_pickle is not True:
        raise InputError(f"{title}: " + REFUSAL.format(path=path))
    try:
        with open(path, "rb") as f:
            data = pickle.load(f)  # noqa: S301 - the caller vouched for the file (trust_pickle=True)
    except Exception as e:  # a broken pickle can raise nearly anything
        raise InputError(f"{title} file {path} is not a readable pickle ({type(e).__name__}: {e}); "
                         f"expected {LAYOUT}") from e
    if not isinstance(data, dict) or not any(isinstance(v, dict) and "id" in v for v in data.values()):
        raise InputError(f"{title} file {path} holds a {type(data).__name__} without split dicts "
                         f"with an 'id' array; expected {LAYOUT}")
    return data


def _corpus(corpus: str) -> str:
    key = corpus.strip().lower().replace("-", "").replace("_", "").replace("chsims", "sims")
    key = {"simsv2": "sims2", "cmumosi": "mosi", "cmumosei": "mosei"}.get(key, key)
    if key not in SCALE:
        raise InputError(f"unknown MMSA corpus {corpus!r}; expected one of {list(SCALE)}")
    return key


def _str(x: Any) -> str:
    if isinstance(x, bytes):
        return x.decode("utf-8", "replace")
    return str(x)


def load(path: str | Path, corpus: str, trust_pickle: bool = False) -> Manifest:
    """Items of every split of the MMSA pickle at ``path`` (see the module docstring; requires
    ``trust_pickle=True``). ``corpus``: mosi, mosei, sims or sims2 (sets the rescaling)."""
    key = _corpus(corpus)
    title, scale = TITLE[key], SCALE[key]
    f = _pickle_path(path, title)
    data = _read(f, title, trust_pickle)
    name = f"mmsa_{key}"
    probs = Problems(name)
    items: list[Item] = []
    seen: set[str] = set()
    for sname, d in data.items():
        split = split_name(str(sname))
        if split is None or not isinstance(d, dict):
            probs.add("skipped: split is not train/valid/test (whole split)", sname)
            continue
        for k in ("id", "regression_labels"):
            if k not in d:
                raise InputError(f"{title} file {f} split {sname!r} has no {k!r} array "
                                 f"(has {sorted(d)}); expected {LAYOUT}")
        ids = list(d["id"])
        n = len(ids)
        cols = {k: d[k] for k in ("raw_text", "regression_labels", "regression_labels_T", "regression_labels_A",
                                  "regression_labels_V", "classification_labels") if k in d}
        for k, v in cols.items():
            if len(v) != n:
                raise InputError(f"{title} file {f} split {sname!r}: {k} has {len(v)} rows for {n} ids; "
                                 f"expected row-aligned arrays ({LAYOUT})")
        for row in range(n):
            iid = _str(ids[row]).strip()
            where = f"{f.name} {sname} row {row} ({iid})"
            try:
                s = float(np.asarray(cols["regression_labels"][row]).reshape(-1)[0])
            except (TypeError, ValueError, IndexError):
                probs.add("skipped: regression label is not a number", where)
                continue
            if not math.isfinite(s) or not -scale <= s <= scale:
                probs.add(f"skipped: regression label missing or outside [-{scale:g}, {scale:g}]", where)
                continue
            if not iid or iid in seen:
                probs.add("skipped: id empty or repeated", where)
                continue
            seen.add(iid)
            video, _, clip = iid.rpartition("$_$")
            extra: dict[str, Any] = {"video": video or iid, "clip": clip, "sentiment": s, "row": row}
            for m in "TAV":
                k = f"regression_labels_{m}"
                if k in cols:
                    try:
                        u = float(np.asarray(cols[k][row]).reshape(-1)[0])
                    except (TypeError, ValueError, IndexError):
                        u = math.nan
                    if math.isfinite(u) and -scale <= u <= scale:
                        extra[f"valence_{m}"] = u / scale
                    else:
                        probs.add(f"kept: unimodal label {m} not a number in [-{scale:g}, {scale:g}] (left out)", where)
            if "classification_labels" in cols:
                c = np.asarray(cols["classification_labels"][row]).reshape(-1)
                if c.size == 1 and np.issubdtype(c.dtype, np.number):
                    extra["classification_label"] = c.item()
            text = _str(cols["raw_text"][row]).strip() if "raw_text" in cols else None
            items.append(Item(id=iid, corpus=name, text=text or None, split=split,
                              original_label=f"{s:g}", valence=s / scale, extra=extra))
    if not items:
        raise InputError(f"{title} file {f} has no usable rows; expected {LAYOUT}")
    return Manifest(items, probs.lines())


def arrays(path: str | Path, split: str, trust_pickle: bool = False) -> dict[str, np.ndarray]:
    """The arrays of one split (``train``, ``val``/``valid`` or ``test``) of the MMSA pickle at
    ``path``: ``id`` and whichever of ``text``, ``text_bert``, ``audio``, ``vision``, ``audio_lengths``,
    ``vision_lengths`` it holds, row-aligned with that split's items (``extra["row"]``). Requires
    ``trust_pickle=True`` (see the module docstring)."""
    f = _pickle_path(path, "MMSA")
    want = split_name(split)
    if want is None:
        raise InputError(f"MMSA split {split!r} is not one of train, val (valid), test")
    data = _read(f, "MMSA", trust_pickle)
    for sname, d in data.items():
        if split_name(str(sname)) == want and isinstance(d, dict):
            out = {"id": np.asarray([_str(i) for i in d["id"]])}
            for k in FEATURES:
                if k in d:
                    out[k] = np.asarray(d[k])
            return out
    raise InputError(f"MMSA file {f} has no {split!r} split (has {sorted(map(str, data))}); expected {LAYOUT}")


def _registered(key: str):
    def refuse(root: str | Path) -> Manifest:
        f = _pickle_path(Path(root), TITLE[key])
        raise InputError(f"{TITLE[key]}: " + REFUSAL.format(path=f).replace("corpus,", f"{key!r},"))
    return refuse


# prepare() cannot vouch for a pickle: these entries check the path, then refuse and point to load().
CORPORA = tuple(Corpus(f"mmsa_{k}", _registered(k), SUBDIR, LAYOUT) for k in SCALE)
