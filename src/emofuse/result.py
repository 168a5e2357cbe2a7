"""Analysis results: frozen dataclasses and their JSON / CSV forms (the documented output schema)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from .experts import ExpertOutput
from .taxonomy import EMOTIONS

MODALITIES = ("voice", "face", "text")


@dataclass(frozen=True)
class Fused:
    """The fused answer for one segment."""

    probs: dict[str, float]
    label: str
    confidence: float
    valence: float
    arousal: float
    weights: dict[str, float]  # modality -> normalised fusion weight
    method: str = "confidence"  # the rule (segment_fusion.RULES) or the fusion network that fused it


@dataclass(frozen=True)
class Transcript:
    """How a speech segment's text came about (see emofuse.asr_quality)."""

    quality: float | None  # the transcript quality score in [0, 1]; None when no transcript covers the speech
    reliable: bool  # quality >= the threshold: the text expert read it and fusion used it
    boundaries: str  # "asr": the segment's span is Whisper's; "vad": voice activity detection's


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    language: str | None
    modalities: dict[str, ExpertOutput]  # only the modalities that were present
    fused: Fused | None
    transcript: Transcript | None = None  # speech segments only (not text, image or face-only segments)


@dataclass(frozen=True)
class AnalysisResult:
    input: str
    kind: str  # video | audio | image | text
    duration: float
    segments: tuple[Segment, ...]
    notes: tuple[str, ...] = ()  # why a modality is absent, truncation, fallbacks
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage; asr_shared_by: inputs sharing ASR

    @property
    def summary(self) -> Mapping[str, Any]:
        """Duration-weighted mean of the fused distributions (each segment counts at least 1 s, so that
        image and text segments, which have no duration, weigh equally). Read-only, like the result."""
        return MappingProxyType(self._summary())

    def _summary(self) -> dict[str, Any]:
        fused = [(s, s.fused) for s in self.segments if s.fused is not None]
        used = sorted({m for s in self.segments for m in s.modalities}, key=MODALITIES.index)
        out: dict[str, Any] = {"segments": len(self.segments), "modalities": used}
        if fused:
            w = np.array([max(1.0, s.end - s.start) for s, _ in fused])
            P = np.array([[f.probs[e] for e in EMOTIONS] for _, f in fused])
            p = (w[:, None] * P).sum(0) / w.sum()
            out |= {
                "label": EMOTIONS[int(p.argmax())],
                "probs": rounded_probs(dict(zip(EMOTIONS, p))),
                "valence": round(float(np.dot(w, [f.valence for _, f in fused]) / w.sum()), 4),
                "arousal": round(float(np.dot(w, [f.arousal for _, f in fused]) / w.sum()), 4),
            }
        out["notes"] = list(self.notes)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "kind": self.kind,
            "duration": round(self.duration, 3),
            "segments": [segment_dict(s) for s in self.segments],
            "summary": self._summary(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)


@dataclass(frozen=True)
class AnalysisError:
    """One input that could not be analysed; the rest of a batch is unaffected."""

    input: str
    error: str
    error_type: str

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.input, "error": self.error, "error_type": self.error_type}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)


def _r(x: float) -> float:
    return round(float(x), 4)


def rounded_probs(probs: Mapping[str, float], digits: int = 4) -> dict[str, float]:
    """Probabilities over EMOTIONS rounded to ``digits`` decimals so that they still sum to exactly 1 (at
    that precision): largest-remainder rounding, the units that plain rounding loses go to the largest
    remainders."""
    unit = 10 ** digits
    scaled = np.array([float(probs[e]) for e in EMOTIONS]) * unit / max(sum(float(probs[e]) for e in EMOTIONS), 1e-12)
    floors = np.floor(scaled)
    short = int(round(unit - floors.sum()))
    if short > 0:
        floors[np.argsort(-(scaled - floors), kind="stable")[:short]] += 1
    return {e: round(float(v) / unit, digits) for e, v in zip(EMOTIONS, floors)}


def expert_dict(o: ExpertOutput) -> dict[str, Any]:
    d: dict[str, Any] = {
        "probs": rounded_probs(o.probs),
        "label": max(o.probs, key=o.probs.__getitem__),
        "confidence": _r(o.confidence),
        "valence": _r(o.valence),
        "arousal": _r(o.arousal),
        "va_source": o.va_source,
    }
    if o.extra:
        d["details"] = o.extra
    return d


def segment_dict(s: Segment) -> dict[str, Any]:
    d: dict[str, Any] = {"start": round(s.start, 3), "end": round(s.end, 3), "text": s.text, "language": s.language,
                         "modalities": {m: expert_dict(o) for m, o in s.modalities.items()}}
    if s.transcript is not None:
        t = s.transcript
        d["transcript"] = {"quality": None if t.quality is None else _r(t.quality), "reliable": t.reliable,
                           "boundaries": t.boundaries}
    if s.fused is not None:
        f = s.fused
        d["fused"] = {"probs": rounded_probs(f.probs), "label": f.label, "confidence": _r(f.confidence),
                      "valence": _r(f.valence), "arousal": _r(f.arousal),
                      "weights": {m: _r(w) for m, w in f.weights.items()}, "method": f.method}
    return d


CSV_COLUMNS = (["input", "segment", "start", "end", "language", "text", "text_quality", "text_reliable", "modalities",
                "label", "confidence",
                "valence", "arousal"] + [f"p_{e}" for e in EMOTIONS] + [f"{m}_label" for m in MODALITIES])


def csv_rows(r: AnalysisResult | AnalysisError) -> list[dict[str, Any]]:
    """One row per segment; an error is one row with the message in `text` and label `error`; a result
    without segments (e.g. no speech) is one row with an empty label and its notes in `text`, so that every
    input has a row."""
    if isinstance(r, AnalysisError):
        return [{"input": r.input, "label": "error", "text": r.error}]
    if not r.segments:
        return [{"input": r.input, "label": "", "text": "; ".join(r.notes)}]
    rows = []
    for i, s in enumerate(r.segments):
        row: dict[str, Any] = {"input": r.input, "segment": i, "start": round(s.start, 3), "end": round(s.end, 3),
                               "language": s.language or "", "text": s.text, "modalities": "+".join(s.modalities)}
        if s.transcript is not None:
            q = s.transcript.quality
            row |= {"text_quality": "" if q is None else _r(q), "text_reliable": int(s.transcript.reliable)}
        if s.fused is not None:
            row |= {"label": s.fused.label, "confidence": _r(s.fused.confidence), "valence": _r(s.fused.valence),
                    "arousal": _r(s.fused.arousal)} | {f"p_{e}": v for e, v in rounded_probs(s.fused.probs).items()}
        for m, o in s.modalities.items():
            row[f"{m}_label"] = max(o.probs, key=o.probs.__getitem__)
        rows.append(row)
    return rows
