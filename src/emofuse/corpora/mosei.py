"""CMU-MOSEI (Zadeh et al. 2018) and CH-SIMS v2 (Liu et al. 2022) labels in the MMSA ``label.csv``
export. Licence: research use (CMU-MOSEI: CMU Multimodal SDK terms; CH-SIMS v2: THUIAR, research only).

* CMU-MOSEI: 23,453 sentence clips of 3,228 YouTube videos (1,000 speakers); official split in the
  ``mode`` column; sentiment in [-3, 3].
* CH-SIMS v2 (supervised part): 4,402 Chinese clips; official split train 2,722 / valid 647 / test 1,034;
  multimodal label and unimodal ``label_T``/``label_A``/``label_V`` in [-1, 1].

Layout: ``<root>/label.csv`` with columns ``video_id,clip_id,text,label,label_T,label_A,label_V,
annotation,mode`` (the unimodal columns may be absent or empty, as for MOSEI), and optionally the raw
clips ``<root>/Raw/<video_id>/<clip_id>.mp4``. The same schema serves MOSI's and CH-SIMS's label.csv:
``load(root, "mosi")`` / ``load(root, "sims")`` (registered here: mosei, sims2 only).

Rescaling: valence = ``label`` / 3 for MOSEI (and MOSI), = ``label`` for SIMS v2 (and SIMS); the
unimodal labels the same way into ``extra["valence_T"/"valence_A"/"valence_V"]``; arousal None. No
categorical emotion: ``label`` None, ``original_label`` = the sentiment as written; ``annotation``
(Positive/Neutral/Negative) in ``extra``. ``id`` = ``<video_id>$_$<clip_id>`` (the MMSA pickle id, so
items join :func:`emofuse.corpora.mmsa.arrays`); ``extra["video"]`` = ``video_id`` (keep a video on one
side of a split); ``speaker`` None (not given); ``split`` from ``mode`` (``valid`` -> ``val``);
``paths`` = the raw clip when it exists (never opened; a ``Raw`` folder lacking clips is reported in
the warnings). Rows with an unknown mode or a label that is not a number in the scale are counted in
the warnings and skipped.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .manifest import Corpus, Item, Manifest, Problems, read_csv, require_dir, split_name

COLUMNS = ("video_id", "clip_id", "text", "label", "mode")
OPTIONAL = ("label_T", "label_A", "label_V", "annotation")
SCALE = {"mosei": 3.0, "sims2": 1.0, "mosi": 3.0, "sims": 1.0}
TITLE = {"mosei": "CMU-MOSEI", "sims2": "CH-SIMS v2", "mosi": "CMU-MOSI", "sims": "CH-SIMS"}
SUBDIR = ""  # not in the shared data folder


def layout(corpus: str = "mosei") -> str:
    s = SCALE[corpus]
    return (f"<root>/label.csv with columns video_id,clip_id,text,label,label_T,label_A,label_V,annotation,"
            f"mode (label in [-{s:g}, {s:g}]; mode train/valid/test), raw clips optional at "
            f"<root>/Raw/<video_id>/<clip_id>.mp4")


LAYOUT = layout("mosei")
__all__ = ["COLUMNS", "LAYOUT", "SCALE", "layout", "load"]


def _num(s: str, scale: float) -> float | None:
    try:
        v = float(s)
    except ValueError:
        return None
    return v if -scale <= v <= scale else None


def load(root: str | Path, corpus: str = "mosei") -> Manifest:
    """Items of ``<root>/label.csv`` (or ``root`` itself when it is the csv); ``corpus`` sets the scale."""
    if corpus not in SCALE:
        raise InputError(f"unknown label.csv corpus {corpus!r}; expected one of {list(SCALE)}")
    title, scale, lay = TITLE[corpus], SCALE[corpus], layout(corpus)
    root = require_dir(Path(root), title, lay)
    f = root if root.is_file() else root / "label.csv"
    if not f.is_file():
        raise InputError(f"{title} root {root} has no label.csv; expected {lay}")
    base = f.parent
    raw = base / "Raw"
    probs = Problems(corpus)
    items: list[Item] = []
    seen: set[str] = set()
    for i, r in enumerate(read_csv(f, title, COLUMNS)):
        vid, clip = r["video_id"].strip(), r["clip_id"].strip()
        iid = f"{vid}$_${clip}"
        where = f"{f.name} row {i + 1} ({iid})"
        split = split_name(r["mode"])
        if split is None:
            probs.add("skipped: mode is not train/valid/test", where)
            continue
        if not vid or not clip:
            probs.add("skipped: video_id or clip_id empty", where)
            continue
        s = _num(r["label"], scale)
        if s is None:
            probs.add(f"skipped: label is not a number in [-{scale:g}, {scale:g}]", where)
            continue
        if iid in seen:
            probs.add("skipped: video_id/clip_id repeated (first row kept)", where)
            continue
        seen.add(iid)
        extra: dict = {"video": vid, "clip": clip, "sentiment": s}
        for m in "TAV":
            cell = (r.get(f"label_{m}") or "").strip()
            if cell:
                u = _num(cell, scale)
                if u is None:
                    probs.add(f"kept: label_{m} is not a number in [-{scale:g}, {scale:g}] (left out)", where)
                else:
                    extra[f"valence_{m}"] = u / scale
        if (r.get("annotation") or "").strip():
            extra["annotation"] = r["annotation"].strip()
        paths: tuple[Path, ...] = ()
        clip_path = raw / vid / f"{clip}.mp4"
        if clip_path.is_file():
            paths = (clip_path,)
        elif raw.is_dir():
            probs.add("have no raw clip under Raw/ (paths left empty)", clip_path)
        items.append(Item(id=iid, corpus=corpus, paths=paths, text=r["text"].strip() or None, split=split,
                          original_label=r["label"].strip(), valence=s / scale, extra=extra))
    if not items:
        raise InputError(f"{title} file {f} has no usable rows; expected {lay}")
    return Manifest(items, probs.lines())


def load_mosei(root: str | Path) -> Manifest:
    return load(root, "mosei")


def load_sims2(root: str | Path) -> Manifest:
    return load(root, "sims2")


CORPORA = (Corpus("mosei", load_mosei, SUBDIR, layout("mosei")),
           Corpus("sims2", load_sims2, SUBDIR, layout("sims2")))
