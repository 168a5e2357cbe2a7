"""ISEAR, International Survey on Emotion Antecedents and Reactions (Scherer & Wallbott 1994).
Licence: free for research (Swiss Center for Affective Sciences, University of Geneva).

About 7,600 self-reported situations written by ~3,000 respondents in 37 countries, each labelled with
the emotion the respondent felt: joy, fear, anger, sadness, disgust, shame, guilt. Two csv layouts:

* the original databank export ``isear_databank.csv``/``ISEAR.csv`` with columns ``ID, ..., Field1,
  ..., SIT, ...`` (``Field1`` = the emotion word, ``SIT`` = the situation; ``ID`` = the respondent,
  ``MYKEY`` = the row key; ``,``, ``;``, ``|`` or tab separated);
* the common two-column ``isear.csv`` with ``emotion,text`` (with that header, or without a header when
  the first cell is an emotion word).

Layout: ``<root>/isear.csv`` (or another single ``*.csv`` in root, or the csv itself).

Label rule: joy -> happy, fear -> fearful, anger -> angry, sadness -> sad, disgust -> disgusted;
**shame and guilt -> None** (dropped: they are self-conscious emotions with no counterpart among the 7
canonical classes, and mapping them to sad would bias that class; the word stays in
``original_label``). Nothing is neutral or surprised in ISEAR. ``text`` = the situation; ``id`` =
``MYKEY`` (else ``row-<n>``); ``speaker`` = ``isear-<ID>`` in the original layout (None in the
two-column one); ``split`` None (no official split). Rows with an unknown emotion word or an empty
situation / a non-answer placeholder (``[ No response.]`` and the like) are counted in the warnings and
skipped. A file that is not UTF-8 is read as cp1252 and the warnings say so.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from ..errors import InputError
from .manifest import Corpus, Item, Manifest, Problems, require_dir

NAME = "isear"
SUBDIR = ""  # not in the shared data folder
LAYOUT = ("<root>/isear.csv: the ISEAR databank export with columns ID,...,Field1,...,SIT (Field1 = "
          "emotion word, SIT = situation), or two columns emotion,text")
LABEL_MAP: dict[str, str | None] = {
    "joy": "happy", "fear": "fearful", "anger": "angry", "sadness": "sad", "disgust": "disgusted",
    "shame": None, "guilt": None,  # self-conscious emotions: no canonical class; dropped
}
_PLACEHOLDER = re.compile(r"^[\[\(]?\s*(no response|do not know|don'?t know|not applicable|blank|none|"
                          r"nothing|n/?a|-+)\s*\.?\s*[\]\)]?\.?$", re.I)

__all__ = ["LABEL_MAP", "LAYOUT", "load"]


def _csv_file(root: Path) -> Path:
    if root.is_file():
        return root
    for name in ("isear.csv", "ISEAR.csv", "isear_databank.csv"):
        if (root / name).is_file():
            return root / name
    csvs = sorted(p for p in root.glob("*.csv") if p.is_file())
    if len(csvs) == 1:
        return csvs[0]
    raise InputError(f"ISEAR root {root} has {len(csvs)} csv files and no isear.csv; expected {LAYOUT}")


def load(root: str | Path) -> Manifest:
    root = require_dir(Path(root), "ISEAR", LAYOUT)
    f = _csv_file(root)
    probs = Problems(NAME)
    raw = f.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", "replace")
        probs.add("decoded as cp1252 (the file is not UTF-8)", f.name)
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise InputError(f"ISEAR file {f} is empty; expected {LAYOUT}")
    head = lines[0]
    delim = max((",", ";", "|", "\t"), key=head.count)
    rows = list(csv.reader(io.StringIO(text), delimiter=delim))
    header = [h.strip().strip('"') for h in rows[0]]
    low = [h.lower() for h in header]
    if "field1" in low and "sit" in low:  # the original databank
        ie, it = low.index("field1"), low.index("sit")
        ispk = low.index("id") if "id" in low else None
        ikey = low.index("mykey") if "mykey" in low else None
        body, start = rows[1:], 2
    elif ("emotion" in low or "label" in low) and ("text" in low or "sentence" in low or "content" in low):
        ie = low.index("emotion") if "emotion" in low else low.index("label")
        it = next(low.index(c) for c in ("text", "sentence", "content") if c in low)
        ispk = ikey = None
        body, start = rows[1:], 2
    elif len(header) >= 2 and header[0].strip().lower() in LABEL_MAP:  # headerless emotion,text
        ie, it, ispk, ikey = 0, 1, None, None
        body, start = rows, 1
    else:
        raise InputError(f"ISEAR file {f} has header {header[:12]}; expected {LAYOUT}")
    items: list[Item] = []
    seen: set[str] = set()
    for n, r in enumerate(body, start):
        if not any(c.strip() for c in r):
            continue
        where = f"{f.name} line {n}"
        if len(r) <= max(ie, it):
            probs.add("skipped: row has too few fields", where)
            continue
        word = r[ie].strip().lower()
        sit = " ".join(r[it].replace("á", " ").split())  # the databank marks line breaks with 'á'
        if word not in LABEL_MAP:
            probs.add(f"skipped: emotion is not one of {', '.join(LABEL_MAP)}", f"{where} ({r[ie]!r})")
            continue
        if not sit or _PLACEHOLDER.match(sit):
            probs.add("skipped: situation empty or a non-answer placeholder", f"{where} ({sit!r})")
            continue
        key = r[ikey].strip() if ikey is not None and len(r) > ikey and r[ikey].strip() else f"row-{n}"
        if key in seen:
            probs.add("skipped: key repeated (first row kept)", f"{where} ({key})")
            continue
        seen.add(key)
        spk = r[ispk].strip() if ispk is not None and len(r) > ispk else ""
        items.append(Item(id=key, corpus=NAME, text=sit, speaker=f"isear-{spk}" if spk else None,
                          label=LABEL_MAP[word], original_label=word, extra={"line": n}))
    if not items:
        raise InputError(f"ISEAR file {f} has no usable rows; expected {LAYOUT}")
    return Manifest(items, probs.lines())


CORPORA = (Corpus(NAME, load, SUBDIR, LAYOUT),)
