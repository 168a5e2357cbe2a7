"""Corpus loaders: each turns a corpus in its own layout into a :class:`Manifest` of :class:`Item` rows
with canonical labels (:mod:`emofuse.taxonomy`), valence/arousal in [-1, 1], splits and folds.

    from emofuse.corpora import prepare
    m = prepare("ravdess", "/data/RAVDESS")          # the corpus folder ...
    m = prepare("ravdess", "/work/shared/data")      # ... or the shared data folder holding speech/ravdess
    m.filter(fold=1).labels(); m.to_jsonl("ravdess.jsonl"); m.warnings

Loaders only list and parse files; they never decode media. A root that is missing, partial or in
another layout raises :class:`emofuse.errors.InputError` naming the root and the expected layout;
entries that cannot be parsed are skipped and counted in ``Manifest.warnings``.

Corpora: ravdess, savee, fer2013, meld, goemotions, emobank, mosi, sims (one module each; mosi and sims
in :mod:`.mosi_sims`). Each module's docstring states the corpus facts, licence and label rule, and its
``LABEL_MAP`` maps ``original_label`` to the canonical label.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import InputError
from . import emobank, fer2013, goemotions, meld, mosi_sims, ravdess, savee
from .emobox import emobox_folds
from .manifest import SPLITS, Item, Manifest

LOADERS: dict[str, Callable[[Path], Manifest]] = {
    "ravdess": ravdess.load,
    "savee": savee.load,
    "fer2013": fer2013.load,
    "meld": meld.load,
    "goemotions": goemotions.load,
    "emobank": emobank.load,
    "mosi": mosi_sims.load_mosi,
    "sims": mosi_sims.load_sims,
}

# Where each corpus lies below the shared data folder (see its README).
SUBDIRS: dict[str, str] = {
    "ravdess": ravdess.SUBDIR, "savee": savee.SUBDIR, "fer2013": fer2013.SUBDIR, "meld": meld.SUBDIR,
    "goemotions": goemotions.SUBDIR, "emobank": emobank.SUBDIR,
    "mosi": mosi_sims.SUBDIR["mosi"], "sims": mosi_sims.SUBDIR["sims"],
}

LAYOUTS: dict[str, str] = {
    "ravdess": ravdess.LAYOUT, "savee": savee.LAYOUT, "fer2013": fer2013.LAYOUT, "meld": meld.LAYOUT,
    "goemotions": goemotions.LAYOUT, "emobank": emobank.LAYOUT,
    "mosi": mosi_sims.layout("mosi"), "sims": mosi_sims.layout("sims"),
}


def prepare(name: str, root: str | Path) -> Manifest:
    """The manifest of corpus ``name`` at ``root``: the corpus folder, or a data folder that holds it at
    the shared layout's place (``SUBDIRS[name]``, e.g. ``speech/ravdess``)."""
    key = name.strip().lower()
    if key not in LOADERS:
        raise InputError(f"unknown corpus {name!r}; known: {', '.join(sorted(LOADERS))}")
    root = Path(root).expanduser()
    if not root.exists():
        raise InputError(f"{name} root {root} does not exist; expected {LAYOUTS[key]}")
    if (root / SUBDIRS[key]).exists():
        root = root / SUBDIRS[key]
    return LOADERS[key](root)


__all__ = ["Item", "LAYOUTS", "LOADERS", "Manifest", "SPLITS", "SUBDIRS", "emobox_folds", "prepare"]
