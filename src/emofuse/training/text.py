"""Train the text expert heads (``weights/text-minilm-l6.safetensors``, ``weights/text-e5-small.safetensors``).

    python -m emofuse.training.text --data /work/shared/data --out src/emofuse/weights

Embeddings are cached per (encoder, corpus, split) as .npz under ``.cache/features/`` (keyed by a hash
of the texts, so an edited loader re-embeds). Only train and dev/val splits of the corpora exist
here: model selection uses a held-out slice of the training data, and dev/val figures are reported
once, as validation figures.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..taxonomy import EMOTIONS, GOEMOTIONS_EKMAN, MELD

LICENCE = {
    "MELD": "GPL-3.0 (Poria et al. 2019)",
    "GoEmotions": "CC BY 4.0 (Demszky et al. 2020)",
    "EmoBank": "CC BY-SA 4.0 (Buechel & Hahn 2017)",
    "CMU-MOSI": "research use only (Zadeh et al. 2016)",
    "CH-SIMS": "research use only (Yu et al. 2020)",
}


# --------------------------------------------------------------------------------------------------
# corpora
# --------------------------------------------------------------------------------------------------

@dataclass
class Corpus:
    """Texts with optional canonical labels and/or valence/arousal targets in [-1, 1] (NaN = absent)."""

    name: str
    split: str
    texts: list[str]
    labels: list[str] | None = None
    va: np.ndarray | None = None  # [n, 2]
    notes: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _sentence_case(s: str) -> str:
    """MOSI's English transcripts are all upper case; ASR output at run time is sentence case."""
    s = s.strip()
    if s and s.upper() == s and any(ch.isalpha() for ch in s):
        s = s.lower()
        s = s[0].upper() + s[1:]
        s = s.replace(" i ", " I ").replace(" i'", " I'")
    return s


def load_meld(root: Path, split: str) -> Corpus:
    rows = _read_csv(root / "text" / "meld" / f"{split}_sent_emo.csv")
    texts, labels = [], []
    for r in rows:
        lab = MELD[r["Emotion"].strip().lower()]
        if lab is None:
            continue
        texts.append(r["Utterance"].strip())
        labels.append(lab)
    return Corpus("meld", split, texts, labels)


def load_goemotions(root: Path, split: str) -> Corpus:
    d = root / "text" / "goemotions"
    names = [x.strip() for x in (d / "ekman_labels.txt").read_text(encoding="utf-8").splitlines() if x.strip()]
    texts, labels, multi = [], [], 0
    with open(d / f"ekman_{split}.tsv", encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2:
                continue
            ids = [i for i in parts[1].split(",") if i.strip()]
            if len(ids) != 1:  # multi-label comments are dropped: the head is single-label
                multi += 1
                continue
            lab = GOEMOTIONS_EKMAN[names[int(ids[0])]]
            if lab is None:
                continue
            texts.append(parts[0].strip())
            labels.append(lab)
    return Corpus("goemotions", split, texts, labels, notes={"dropped_multilabel": multi})


def load_emobank(root: Path, split: str) -> Corpus:
    rows = [r for r in _read_csv(root / "text" / "emobank" / "emobank.csv") if r["split"] == split]
    va = np.array([[(float(r["V"]) - 3) / 2, (float(r["A"]) - 3) / 2] for r in rows], dtype=np.float32)
    return Corpus("emobank", split, [r["text"].strip() for r in rows], va=va)


def load_sentiment(root: Path, corpus: str, lang: str, split: str) -> Corpus:
    """MOSI (sentiment [-3, 3] -> /3) or CH-SIMS ([-1, 1]) as valence-only targets."""
    rows = [r for r in _read_csv(root / "text" / corpus / f"{corpus}.csv") if r["split"] == split]
    scale = 3.0 if corpus == "mosi" else 1.0
    col = "english" if lang == "en" else "chinese"
    texts = [_sentence_case(r[col]) if lang == "en" else r[col].strip() for r in rows]
    v = np.array([float(r["sentiment"]) / scale for r in rows], dtype=np.float32)
    va = np.stack([v, np.full_like(v, np.nan)], axis=1)
    return Corpus(f"{corpus}-{lang}", split, texts, va=va)


def load(root: Path, key: str, split: str) -> Corpus:
    if key == "meld":
        return load_meld(root, split)
    if key == "goemotions":
        return load_goemotions(root, split)
    if key == "emobank":
        return load_emobank(root, split)
    corpus, lang = key.split("-")
    return load_sentiment(root, corpus, lang, split)


DEV = {"meld": "dev", "goemotions": "dev", "emobank": "dev", "mosi-en": "val", "mosi-zh": "val",
       "sims-zh": "val", "sims-en": "val"}


# --------------------------------------------------------------------------------------------------
# embedding cache
# --------------------------------------------------------------------------------------------------

def default_cache() -> Path:
    return Path(os.environ.get("EMOFUSE_FEATURE_CACHE", Path.cwd() / ".cache" / "features"))


_encoders: dict[str, Any] = {}


def encoder_for(tag: str) -> Any:
    """``minilm-l6``, ``e5-small`` (passage prefix) or ``e5-small-query``."""
    from ..features.text import E5Encoder, MiniLMEncoder

    if tag not in _encoders:
        if tag == "minilm-l6":
            _encoders[tag] = MiniLMEncoder()
        elif tag in ("e5-small", "e5-small-passage"):
            _encoders[tag] = E5Encoder(prefix="passage")
        elif tag == "e5-small-query":
            _encoders[tag] = E5Encoder(prefix="query")
        else:
            raise ValueError(f"unknown encoder tag {tag!r}")
    return _encoders[tag]


def embed(tag: str, c: Corpus, cache: Path, log: Any = print) -> np.ndarray:
    """Embeddings of ``c`` under encoder ``tag``, from the cache when the texts are unchanged."""
    h = hashlib.sha1("\n".join(c.texts).encode("utf-8")).hexdigest()[:16]
    path = cache / f"text-{tag}-{c.name}-{c.split}.npz"
    if path.exists():
        z = np.load(path)
        if str(z["sha1"]) == h and z["X"].shape[0] == len(c):
            return z["X"]
    t = time.perf_counter()
    X = encoder_for(tag).encode(c.texts, batch_size=32)
    dt = time.perf_counter() - t
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, X=X, sha1=h, seconds=dt)
    log(f"  embedded {tag}/{c.name}/{c.split}: {len(c)} texts in {dt:.0f} s ({len(c) / dt:.1f} sentences/s)")
    return X


def main_embed(root: Path, tags: Sequence[str], keys: Sequence[str], cache: Path) -> None:
    for tag in tags:
        for key in keys:
            for split in ("train", DEV[key]):
                embed(tag, load(root, key, split), cache)
                sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emofuse.training.text", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("EMOFUSE_DATA", "../shared/data")))
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "weights")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--embed-only", nargs="*", default=None, metavar="TAG",
                    help="only fill the embedding cache for these encoder tags")
    ap.add_argument("--corpora", nargs="*", default=list(DEV))
    a = ap.parse_args(argv)
    cache = a.cache or default_cache()
    if a.embed_only is not None:
        main_embed(a.data, a.embed_only or ["minilm-l6", "e5-small"], a.corpora, cache)
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
