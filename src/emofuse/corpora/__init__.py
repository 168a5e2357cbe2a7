"""Corpus loaders: each turns a corpus in its own layout into a :class:`Manifest` of :class:`Item` rows
with canonical labels (:mod:`emofuse.taxonomy`), valence/arousal in [-1, 1], splits and folds.

    from emofuse.corpora import prepare
    m = prepare("ravdess", "/data/RAVDESS")          # the corpus folder ...
    m = prepare("ravdess", "/work/shared/data")      # ... or the shared data folder holding speech/ravdess
    m.filter(fold=1).labels(); m.to_jsonl("ravdess.jsonl"); m.warnings

Loaders only list and parse files; they never decode media. A root that is missing, partial or in
another layout raises :class:`emofuse.errors.InputError` naming the root and the expected layout;
entries that cannot be parsed are skipped and counted in ``Manifest.warnings``.

Corpora (``CORPORA`` lists the registered names): speech RAVDESS, SAVEE, nEMO (Polish), TurEV-DB
(Turkish), EmoDB, CREMA-D, TESS, IEMOCAP
(4- and 6-class); faces FER2013, CK+, AffectNet-style folders; video AFEW; text MELD, GoEmotions,
EmoBank, ISEAR; sentiment CMU-MOSI, CH-SIMS, CMU-MOSEI / CH-SIMS v2 (label.csv), MMSA feature pickles
(only with an explicit ``trust_pickle=True``: pickles execute code); RAVDESS audio-visual features (npz). Each module's docstring states the corpus facts, licence and label rule, and its
``LABEL_MAP`` maps ``original_label`` to the canonical label.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..registry import Registry
from . import (affectnet, afew, ckplus, crema_d, emobank, emodb, fer2013, goemotions, iemocap, isear, meld, mmsa,
               mosei, mosi_sims, nemo, ravdess, ravdess_av, savee, tess, turevdb)
from .emobox import emobox_folds
from .manifest import SPLITS, Corpus, Item, Manifest, item_key, speaker_key

MODULES = (ravdess, savee, nemo, turevdb, emodb, crema_d, tess, iemocap, fer2013, ckplus, affectnet, afew, meld, goemotions, emobank,
           isear, mosi_sims, mosei, mmsa, ravdess_av)  # add a corpus module here
CORPORA: Registry[Corpus] = Registry("corpus", {c.name: c for mod in MODULES for c in mod.CORPORA})
# Feature sources that are columns of a corpus file rather than extractor outputs: name -> description.
CORPUS_FEATURES: dict[str, str] = dict(ravdess_av.SOURCES)


def prepare(name: str, root: str | Path) -> Manifest:
    """The manifest of corpus ``name`` at ``root``: the corpus folder, or a data folder that holds it at
    the shared layout's place (``CORPORA[name].subdir``, e.g. ``speech/ravdess``)."""
    c = CORPORA[name.strip().lower()]  # UnknownNameError lists the corpora
    root = Path(root).expanduser()
    if not root.exists():
        raise InputError(f"{name} root {root} does not exist; expected {c.layout}")
    if c.subdir and (root / c.subdir).exists():
        root = root / c.subdir
    return c.load(root)


__all__ = ["CORPORA", "CORPUS_FEATURES", "Corpus", "Item", "Manifest", "SPLITS", "emobox_folds", "item_key", "prepare", "speaker_key"]
