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

# RAVDESS: 01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust, 08 surprised.
# Rule: calm is a low-arousal neutral-valence state; it is merged into neutral.
RAVDESS: dict[str, str | None] = {
    "01": "neutral", "02": "neutral", "03": "happy", "04": "sad",
    "05": "angry", "06": "fearful", "07": "disgusted", "08": "surprised",
}

# SAVEE file-name codes.
SAVEE: dict[str, str | None] = {
    "n": "neutral", "h": "happy", "sa": "sad", "a": "angry", "f": "fearful", "d": "disgusted", "su": "surprised",
}

# FER2013 folder names (the model zoo order is angry, disgust, fear, happy, sad, surprise, neutral).
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
