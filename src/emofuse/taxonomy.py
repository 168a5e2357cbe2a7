"""The canonical label taxonomy and the explicit maps from corpus labels to it.

Every corpus map is a plain dict; a label mapped to ``None`` is dropped on purpose (the rule is stated
beside it). Tests check that each map covers its corpus's label set exactly.
"""

from __future__ import annotations

EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")

# Circumplex coordinates (valence, arousal) in [-1, 1] for each canonical class, after Russell (1980)
# and the category centroids reported for NRC-VAD (Mohammad 2018), rescaled. Used only to project a
# class distribution onto valence/arousal where an expert has no trained regressor; outputs that use
# it say so ("va_source": "projected").
VA_COORDS: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0),
    "happy": (0.8, 0.5),
    "sad": (-0.7, -0.4),
    "angry": (-0.6, 0.7),
    "fearful": (-0.6, 0.6),
    "disgusted": (-0.7, 0.3),
    "surprised": (0.2, 0.8),
}

# RAVDESS: the emotion code of the file name -> RAVDESS's own 8 class names (the literature's classes, in code
# order), and -> canonical. Rule: calm is a low-arousal neutral-valence state; it is merged into neutral.
RAVDESS_CODES: dict[str, str] = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad",
    "05": "angry", "06": "fearful", "07": "disgust", "08": "surprised",
}
RAVDESS: dict[str, str | None] = {
    "01": "neutral", "02": "neutral", "03": "happy", "04": "sad",
    "05": "angry", "06": "fearful", "07": "disgusted", "08": "surprised",
}
# RAVDESS's own class name -> canonical (calm -> neutral, disgust -> disgusted).
RAVDESS_NAMES: dict[str, str | None] = {RAVDESS_CODES[c]: RAVDESS[c] for c in RAVDESS_CODES}

# SAVEE file-name codes.
SAVEE: dict[str, str | None] = {
    "n": "neutral", "h": "happy", "sa": "sad", "a": "angry", "f": "fearful", "d": "disgusted", "su": "surprised",
}

# FER2013's class names in its own order (the csv's emotion index and the FER models' output order).
FER2013_ORDER: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# FER2013 folder / class names -> canonical.
FER2013: dict[str, str | None] = {
    "angry": "angry", "disgust": "disgusted", "fear": "fearful", "happy": "happy",
    "sad": "sad", "surprise": "surprised", "neutral": "neutral",
}

# MELD `Emotion` column.
MELD: dict[str, str | None] = {
    "neutral": "neutral", "joy": "happy", "sadness": "sad", "anger": "angry",
    "fear": "fearful", "disgust": "disgusted", "surprise": "surprised",
}

# GoEmotions Ekman labels (ekman_labels.txt).
GOEMOTIONS_EKMAN: dict[str, str | None] = {
    "neutral": "neutral", "joy": "happy", "sadness": "sad", "anger": "angry",
    "fear": "fearful", "disgust": "disgusted", "surprise": "surprised",
}


def index(label: str) -> int:
    """Position of a canonical label in :data:`EMOTIONS`."""
    return EMOTIONS.index(label)


# A corpus's own class name -> canonical, for models trained on original labels (e.g. RAVDESS's 8 classes).
_NAMED: tuple[dict[str, str | None], ...] = (RAVDESS_NAMES, MELD, FER2013, GOEMOTIONS_EKMAN)


def canonical_label(name: str) -> str | None:
    """A class name -> the canonical emotion it counts as (RAVDESS ``calm`` -> neutral, ``disgust`` ->
    disgusted); None when no canonical class matches."""
    if name in EMOTIONS:
        return name
    for table in _NAMED:
        if table.get(name) is not None:
            return table[name]
    return None


def label_order(names: set[str] | list[str]) -> list[str]:
    """Class names in a stable order: by the canonical class they count as (EMOTIONS order), the canonical
    name first, then the others by name (RAVDESS: neutral, calm, happy, ...); names without a canonical
    class last, sorted."""
    def key(n: str) -> tuple[int, int, str]:
        c = canonical_label(n)
        return (EMOTIONS.index(c) if c else len(EMOTIONS), 0 if n == c else 1, n)

    return sorted(set(names), key=key)
