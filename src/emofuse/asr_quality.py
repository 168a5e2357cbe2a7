"""How far a transcript segment can be trusted: a score in [0, 1] from what Whisper's decode tells.

Whisper always writes something: on speech it cannot read (a language it knows poorly, babble, music,
laughter) it loops on a word, drifts into another script or invents fluent text. The signals of that are
cheap and need no reference: the decode's average log-probability and no-speech probability (a window's),
the probabilities of the segment's own words, the
temperature it had to fall back to, how compressible (repetitive) the text is, how many of its words
repeat, how confident language detection was, whether the letters are in the script of the detected
language, how many characters it claims per second of speech, and whether the budget cut the decode short
(the token cap, or a loop). A logistic regression over these features (:data:`FEATURES`, fitted by ``benchmarks/asr_quality.py``
on corpora with known transcripts and shipped as ``weights/asr-quality.json``) turns them into the
probability that the segment's character error rate is at most the shipped ``cer_limit``. Segments below
the shipped ``threshold`` keep their text, marked unreliable, and the text expert does not see it.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping, Sequence

FEATURES = ("avg_logprob", "no_speech_prob", "temperature", "compression", "repetition", "language_probability",
            "script_share", "log_chars_per_second", "cut_short", "word_logprob", "unsure_words")

# The script(s) each language is written in, by the first word of the Unicode character name. Languages not
# listed are taken to be written in Latin letters (most of Whisper's 99 are).
_SCRIPTS: dict[str, tuple[str, ...]] = {
    **{k: ("CYRILLIC",) for k in ("ru", "uk", "be", "bg", "mk", "sr", "kk", "tg", "mn", "ba", "tt")},
    "el": ("GREEK",), "he": ("HEBREW",), "yi": ("HEBREW",),
    **{k: ("ARABIC",) for k in ("ar", "fa", "ur", "ps", "sd", "ug")},
    **{k: ("DEVANAGARI",) for k in ("hi", "mr", "ne", "sa")}, "bn": ("BENGALI",), "as": ("BENGALI",),
    "zh": ("CJK",), "yue": ("CJK",), "ja": ("CJK", "HIRAGANA", "KATAKANA"), "ko": ("HANGUL", "CJK"),
    "th": ("THAI",), "ka": ("GEORGIAN",), "hy": ("ARMENIAN",), "ta": ("TAMIL",), "te": ("TELUGU",),
    "kn": ("KANNADA",), "ml": ("MALAYALAM",), "gu": ("GUJARATI",), "pa": ("GURMUKHI",), "si": ("SINHALA",),
    "km": ("KHMER",), "lo": ("LAO",), "my": ("MYANMAR",), "bo": ("TIBETAN",), "am": ("ETHIOPIC",),
}


@dataclass(frozen=True)
class DecodeInfo:
    """What a segment's decode reported (faster-whisper gives the window's values to each of its segments)."""

    avg_logprob: float
    no_speech_prob: float
    temperature: float
    compression_ratio: float  # gzip ratio of the window's text (faster-whisper's measure)
    language_probability: float
    cut_short: bool  # the window's decode was stopped by the budget: the token cap, or a loop


def script_share(text: str, language: str | None) -> float:
    """Share of the letters of ``text`` in the script(s) ``language`` is written in (1.0 without letters)."""
    want = _SCRIPTS.get(language or "", ("LATIN",))
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 1.0
    ok = sum(1 for c in letters if unicodedata.name(c, "?").split(" ")[0] in want)
    return ok / len(letters)


def repetition(text: str) -> float:
    """Share of the words (or, for unspaced scripts, characters) that repeat one of the two before them: ~0 for
    ordinary text (rhetorical repeats such as "it was the best of times, it was the worst" included), near 1
    for Whisper's loops ("ja ja ja", "nie, tak, nie, tak"). Fewer than three units say nothing (0)."""
    units = re.sub(r"[^\w\s]", " ", text.lower()).split()
    if len(units) < 3 and len(text.strip()) > 12:  # unspaced scripts: characters
        units = [c for c in text if c.isalnum()]
    if len(units) < 3:
        return 0.0
    return sum(1 for i in range(2, len(units)) if units[i] in (units[i - 1], units[i - 2])) / (len(units) - 2)


def features(text: str, duration_s: float, language: str | None, d: DecodeInfo,
             word_probs: Sequence[float] = ()) -> dict[str, float]:
    """The quality features of one segment (see :data:`FEATURES`); ``word_probs``: the probability Whisper gave
    each of the segment's words (the one per-segment confidence: the other decode values are the window's)."""
    lp = [math.log(max(1e-4, p)) for p in word_probs]
    return {
        "avg_logprob": max(-5.0, float(d.avg_logprob)),
        "no_speech_prob": float(d.no_speech_prob),
        "temperature": float(d.temperature),
        "compression": min(10.0, float(d.compression_ratio)),
        "repetition": repetition(text),
        "language_probability": float(d.language_probability),
        "script_share": script_share(text, language),
        "log_chars_per_second": math.log((len(text.strip()) + 1.0) / max(duration_s, 0.2)),
        "cut_short": float(d.cut_short),
        "word_logprob": sum(lp) / len(lp) if lp else max(-5.0, float(d.avg_logprob)),
        "unsure_words": sum(1 for p in word_probs if p < 0.3) / len(lp) if lp else 0.0,
    }


@dataclass(frozen=True)
class QualityModel:
    """A logistic regression over standardised :data:`FEATURES` (the shipped one: :func:`shipped`)."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float  # segments scoring below it are unreliable
    meta: Mapping[str, Any]

    def score(self, feats: Mapping[str, float]) -> float:
        z = self.intercept + sum(c * (feats[f] - m) / s for f, m, s, c in zip(FEATURES, self.mean, self.scale, self.coef))
        return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))

    def to_dict(self) -> dict[str, Any]:
        return {"format": "emofuse-asr-quality/1", "features": list(FEATURES), "mean": list(self.mean),
                "scale": list(self.scale), "coef": list(self.coef), "intercept": self.intercept,
                "threshold": self.threshold, "meta": dict(self.meta)}

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> "QualityModel":
        if d.get("format") != "emofuse-asr-quality/1" or tuple(d.get("features", ())) != FEATURES:
            raise ValueError("not an emofuse-asr-quality/1 model over the current features; refit it with "
                             "benchmarks/asr_quality.py --write")
        return QualityModel(tuple(d["mean"]), tuple(d["scale"]), tuple(d["coef"]), float(d["intercept"]),
                            float(d["threshold"]), d.get("meta", {}))


@lru_cache(maxsize=1)
def shipped() -> QualityModel:
    """The quality model shipped in ``emofuse/weights/asr-quality.json``."""
    text = resources.files("emofuse").joinpath("weights", "asr-quality.json").read_text(encoding="utf-8")
    return QualityModel.from_dict(json.loads(text))

