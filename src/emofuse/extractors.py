"""The registered feature extractors: what ``emofuse extract`` computes for a corpus item, as the analysis
computes it for a segment.

    from emofuse.extractors import EXTRACTORS
    ex = EXTRACTORS["voice-whisper-base"]       # UnknownNameError lists the names
    ex.config_hash()                            # identity of the features (config, version, model sha256)

Each extractor has a frozen config dataclass, a ``load(config, threads)`` that returns its model and a
``compute(model, config, items)`` that returns, per item, an embedding (``[d]``, or ``[T, d]`` for a
sequence extractor) or the Exception that item failed with. Its :meth:`Extractor.config_hash` (config +
embedding version + model sha256) names its cache folder and is recorded in every head and checkpoint
trained on its features, so that the analysis refuses features computed another way.

* ``voice-whisper-base``, ``voice-whisper-tiny.en``: mean+std of the Whisper-encoder frames of the item's
  speech span (:func:`emofuse.features.voice.embed_clips`), clips of one speaker packed into shared 30 s
  windows as analysis sees utterances (:func:`speaker_order`); ``...-clip``: the same pooled over the whole
  VAD-cut clip (a training view that makes heads tolerant of loose utterance boundaries); ``...-w10``: the same
  on 10 s windows (``ASROptions.window``), what the live mode computes, for the heads read with them.
* ``voice-whisper-base-seq``: the same encoder states in 0.5 s chunks, ``[T, 512]``.
* ``text-minilm-l6``, ``text-e5-small``: sentence embeddings of ``item.text``.
* ``face-expert-probs``: the face expert's 7 probabilities of an image, or their mean over a video's frames
  sampled at 5 fps (what the analysis feeds a network).

To add one: write a config dataclass and a compute function, and add an :class:`Extractor` to
:data:`EXTRACTORS`. Never change an existing entry's config without bumping its version: trained heads
and networks refuse features whose hash differs.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .corpora.manifest import Item
from .errors import InputError
from .registry import Registry

# ------------------------------------------------------------------------------------------------ configs


@dataclass(frozen=True)
class VoiceConfig:
    asr_model: str  # component name, "whisper-base" or "whisper-tiny.en"
    span: str = "speech"  # "speech" or "clip" (see features.voice.embed_clips)
    packed: bool = True  # clips of one speaker share 30 s windows
    window_s: float = 30.0
    gap_s: float = 0.0

    def __post_init__(self) -> None:
        if self.span not in ("speech", "clip"):
            raise InputError(f"VoiceConfig.span must be 'speech' or 'clip', not {self.span!r}")
        if not 0 < self.window_s <= 30.0 or self.gap_s < 0:
            raise InputError("VoiceConfig: window_s must be in (0, 30] s (one Whisper window) and gap_s >= 0")


@dataclass(frozen=True)
class VoiceSeqConfig:
    """``voice-whisper-base-seq``: the encoder frames of the clip's speech span averaged into fixed chunks."""

    asr_model: str
    chunk_s: float = 0.5  # seconds per sequence step (25 encoder frames of 20 ms)
    packed: bool = True  # clips of one speaker share 30 s windows, as for the vector extractors
    window_s: float = 30.0
    gap_s: float = 0.0
    sequence: bool = True  # marks a sequence extractor ([T, d] per item; see extract.load_sequences)

    def __post_init__(self) -> None:
        if not self.chunk_s >= 0.02 or not 0 < self.window_s <= 30.0 or self.gap_s < 0:
            raise InputError("VoiceSeqConfig: chunk_s must be >= 0.02 s (one encoder frame), window_s in (0, 30] s "
                             "and gap_s >= 0")


@dataclass(frozen=True)
class TextConfig:
    encoder: str  # features.text registry name: "minilm-l6" or "e5-small"
    component: str  # store component whose sha256 keys the cache
    prefix: str | None = None  # e5 only: "passage" (as shipped) or "query"
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.prefix not in (None, "passage", "query") or self.batch_size < 1:
            raise InputError(f"TextConfig: prefix must be None, 'passage' or 'query' and batch_size >= 1, not "
                             f"{self.prefix!r} / {self.batch_size!r}")


@dataclass(frozen=True)
class FaceConfig:
    """``face-expert-probs``: the face expert's 7 canonical probabilities, exactly what the analysis feeds a
    network: a still image's largest face (or the whole image when it looks like a tight face crop); a
    video's frames sampled at ``fps``, averaged over the frames with a face."""

    fps: float = 5.0  # as the analysis (AnalyzerOptions.fps)
    frame_max_side: int = 640  # as MediaOptions
    component: str = "fer-mini-xception"  # store component whose sha256 keys the cache (with the network's)
    expert: str = "face-cnn"  # FaceOptions.expert; face-cnn runs its int8 graph, as the analysis does

    def __post_init__(self) -> None:
        from .features.face import EXPERTS

        if self.expert not in EXPERTS:
            raise InputError(f"FaceConfig.expert: one of {', '.join(EXPERTS)}, not {self.expert!r}")
        if not self.fps > 0 or self.frame_max_side < 16:
            raise InputError(f"FaceConfig: fps must be > 0 and frame_max_side >= 16, not {self.fps!r} / "
                             f"{self.frame_max_side!r}")


@dataclass(frozen=True)
class Extractor:
    """A registered extractor (see the module docstring)."""

    name: str
    modality: str  # "voice", "text" or "face"
    config: Any
    load: Callable[[Any, int | None], Any] = field(repr=False)
    compute: Callable[[Any, Any, Sequence[Item]], list[Any]] = field(repr=False)
    description: str = ""  # what the features are, as the analysis computes them
    analysis: bool = True  # the analysis computes it for every segment (False: a training view only)

    @property
    def sequence(self) -> bool:
        """Whether it gives ``[T, d]`` per item (read with ``extract.load_sequences``)."""
        return bool(getattr(self.config, "sequence", False))

    def version(self, adapter: Path | None = None) -> str:
        if self.modality == "voice":
            from .features import voice as vf

            return f"voice-v{vf.VERSION}"
        if self.modality == "face":
            return "face-v1" if self.config.expert == "fer-mini-xception" else "face-v2"
        from .features import text as tf

        if self.config.encoder.startswith("minilm-l6"):  # a fine-tuned variant: keyed by its adapter's bytes too
            return f"text-minilm-graph-{tf.graph_version(self.config.encoder, adapter)}"
        return "text-v1"

    def model_sha256(self) -> str | None:
        from .store import COMPONENTS

        comp = self.config.asr_model if self.modality == "voice" else self.config.component
        c = COMPONENTS.get(comp)
        if self.modality == "face" and self.config.expert != "fer-mini-xception":
            from .features import face_net

            net = face_net.identity()  # the graphs the analysis runs: int8 where current, else the fp32 weights
            return net if self.config.expert == "face-cnn" else f"{c.sha256 if c else None}+{net}"
        return c.sha256 if c else None

    def identity(self, adapter: Path | None = None) -> dict[str, Any]:
        """``adapter``: a fine-tuned text encoder's adapter file other than the installed one."""
        return {"extractor": self.name, "config": asdict(self.config), "version": self.version(adapter),
                "model_sha256": self.model_sha256()}

    def config_hash(self, adapter: Path | None = None) -> str:
        blob = json.dumps(self.identity(adapter), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:10]

    def describe(self) -> str:
        return f"{self.description} (emofuse extractor {self.name}; {json.dumps(asdict(self.config))})"


# ------------------------------------------------------------------------------------------------ voice


def speaker_order(items: Sequence[Item]) -> list[Item]:
    """One speaker's items in a fixed pseudo-random order (seeded by the speaker's name). Corpora list files
    emotion by emotion; packing them in that order would put same-emotion clips in one 30 s window (the
    encoder attends across the whole window), leaking label context into every embedding."""
    if not items:
        return []
    rng = np.random.default_rng(zlib.crc32(str(items[0].speaker).encode()))
    return [items[i] for i in rng.permutation(len(items))]


def _load_voice(cfg: VoiceConfig, threads: int | None) -> Any:
    from .asr import load_whisper

    return load_whisper(cfg.asr_model, threads=threads)


def _embed_audio_items(items: Sequence[Item], embed: Callable[[list[np.ndarray]], Sequence[Any]]) -> list[Any]:
    """Decode each item's first path and ``embed`` the clips in one batch; an unreadable clip fails alone,
    and if the batch fails, each clip is embedded alone to find the culprit."""
    from . import media

    out: list[Any] = [None] * len(items)
    audio: list[np.ndarray] = []
    ok: list[int] = []
    for i, it in enumerate(items):
        try:
            if not it.paths:
                raise InputError(f"item {it.id!r} has no media path")
            audio.append(media.load_audio(it.paths[0]))  # the analysis decoder and validator
            ok.append(i)
        except Exception as e:  # noqa: BLE001 - recorded per item
            out[i] = e
    if not ok:
        return out
    try:
        for i, x in zip(ok, embed(audio)):
            out[i] = x
    except Exception:  # noqa: BLE001 - find the culprit: embed each clip alone
        for i, a in zip(ok, audio):
            try:
                out[i] = embed([a])[0]
            except Exception as e:  # noqa: BLE001
                out[i] = e
    return out


def _compute_voice(model: Any, cfg: VoiceConfig, items: Sequence[Item]) -> list[Any]:
    """Items are one speaker's, in :func:`speaker_order` (extract's chunking guarantees it)."""
    from .features import voice as vf

    return _embed_audio_items(items, lambda clips: vf.embed_clips(model, clips, window_s=cfg.window_s, gap_s=cfg.gap_s,
                                                                  packed=cfg.packed, span=cfg.span))


def embed_clip_sequences(model: Any, clips: Sequence[np.ndarray], cfg: VoiceSeqConfig) -> list[np.ndarray]:
    """Per clip ``[T, d]`` chunked encoder states of its speech span, computed exactly as the vector
    extractors see the clip (cut to speech +- the VAD pad, packed into shared windows, the speech span
    +- 0.1 s), so the sequence and the pooled vector describe the same frames."""
    from .features import voice as vf

    cut = vf.cut_to_speech(clips)
    spans = [vf.speech_span(c) for c in cut]
    out: list[np.ndarray | None] = [None] * len(cut)
    for i, enc, offset, limit in vf.encode_clips(model, cut, cfg.window_s, cfg.gap_s, cfg.packed):
        a, b = spans[i]
        out[i] = vf.chunk_frames(enc, offset + a, min(limit, offset + b), cfg.chunk_s)
    return out  # type: ignore[return-value]


def _compute_voice_seq(model: Any, cfg: VoiceSeqConfig, items: Sequence[Item]) -> list[Any]:
    return _embed_audio_items(items, lambda clips: embed_clip_sequences(model, clips, cfg))


# ------------------------------------------------------------------------------------------------ face


def _load_face(cfg: FaceConfig, threads: int | None) -> Any:
    from .features.face import FaceAnalyzer, FaceOptions

    return FaceAnalyzer(FaceOptions(threads=threads or FaceOptions().threads, expert=cfg.expert))


def face_probs(analyzer: Any, path: Path, cfg: FaceConfig, batch: int = 32) -> np.ndarray:
    """The face expert's mean canonical probabilities [7] for one image or video file."""
    from . import media
    from .taxonomy import EMOTIONS

    opts = media.MediaOptions(fps=cfg.fps, frame_max_side=cfg.frame_max_side)
    p = media.probe(path, opts)
    if p.kind == "image":
        obs = [analyzer.analyze_image(media.decode_image(p))]
    elif p.has_video:
        obs, frames = [], []
        for _, img in media.iter_frames(p, opts):
            frames.append(img)
            if len(frames) == batch:
                obs += analyzer.analyze_frames(frames)
                frames = []
        if frames:
            obs += analyzer.analyze_frames(frames)
    else:
        raise InputError(f"{path}: no image or video stream; face-expert-probs needs a face image or a video")
    out = analyzer.summarize(obs)
    if out is None:
        raise InputError(f"{path}: no face found in {len(obs)} sampled frame(s); the item needs a visible, roughly "
                         "frontal face (or a tight face crop)")
    return np.array([out.probs[e] for e in EMOTIONS], dtype=np.float32)


def _compute_face(model: Any, cfg: FaceConfig, items: Sequence[Item]) -> list[Any]:
    out: list[Any] = []
    for it in items:
        try:
            if not it.paths:
                raise InputError(f"item {it.id!r} has no media path")
            out.append(face_probs(model, it.paths[0], cfg))
        except Exception as e:  # noqa: BLE001 - recorded per item
            out.append(e)
    return out


# ------------------------------------------------------------------------------------------------ text


def _load_text(cfg: TextConfig, threads: int | None) -> Any:
    from .features.text import get_encoder

    kw: dict[str, Any] = {"threads": threads} if threads else {}
    if cfg.prefix is not None:
        kw["prefix"] = cfg.prefix
    return get_encoder(cfg.encoder, **kw)


def _compute_text(model: Any, cfg: TextConfig, items: Sequence[Item]) -> list[Any]:
    out: list[Any] = [None] * len(items)
    ok: list[int] = []
    for i, it in enumerate(items):
        if it.text is None or not str(it.text).strip():
            out[i] = InputError(f"item {it.id!r} has empty text")
        else:
            ok.append(i)
    if not ok:
        return out
    try:
        X = model.encode([str(items[i].text) for i in ok], batch_size=cfg.batch_size)
        for i, x in zip(ok, X):
            out[i] = x
    except Exception:  # noqa: BLE001 - find the culprit
        for i in ok:
            try:
                out[i] = model.encode([str(items[i].text)], batch_size=1)[0]
            except Exception as e:  # noqa: BLE001
                out[i] = e
    return out


# ------------------------------------------------------------------------------------------------ registry


def _voice(asr: str, span: str = "speech", window: float = 30.0) -> Extractor:
    w = "" if window == 30.0 else f"-w{window:g}"
    on = "" if window == 30.0 else f", on {window:g} s windows (ASROptions.window: the live mode)"
    cfg = VoiceConfig(asr, span=span, window_s=window)
    if span == "clip":
        return Extractor(f"voice-{asr}{w}-clip", "voice", cfg, _load_voice, _compute_voice,
                         f"{asr} encoder states pooled over the whole VAD-cut clip{on} (a training view)", analysis=False)
    return Extractor(f"voice-{asr}{w}", "voice", cfg, _load_voice, _compute_voice,
                     f"{asr} encoder states of the utterance, pooled (mean + std){on}")


def _text(name: str, enc: str, comp: str, what: str, prefix: str | None = None, analysis: bool = True) -> Extractor:
    return Extractor(name, "text", TextConfig(enc, comp, prefix), _load_text, _compute_text, what, analysis)


EXTRACTORS: Registry[Extractor] = Registry("extractor", {e.name: e for e in (
    _voice("whisper-base"),
    _voice("whisper-tiny.en"),
    _voice("whisper-base", span="clip"),
    _voice("whisper-tiny.en", span="clip"),
    *(_voice(asr, span, 10.0) for asr in ("whisper-base", "whisper-tiny.en") for span in ("speech", "clip")),
    _text("text-minilm-l6", "minilm-l6", "minilm-l6", "MiniLM-L6 sentence embedding of the transcript (English lines; "
          "the frozen encoder, a baseline: the analysis reads text-minilm-l6-emo)", analysis=False),
    _text("text-minilm-l6-emo", "minilm-l6-emo", "minilm-l6",
          "MiniLM-L6 fine-tuned for emotion (LoRA, weights/text-minilm-l6-emo.lora.safetensors) on the transcript"),
    _text("text-e5-small", "e5-small", "e5-small-q4",
          "multilingual E5-small embedding of the transcript (non-English lines)", "passage"),
    Extractor("voice-whisper-base-seq", "voice", VoiceSeqConfig("whisper-base"), _load_voice, _compute_voice_seq,
              "whisper-base encoder states of the utterance in 0.5 s chunks, [T, 512]"),
    Extractor("face-expert-probs", "face", FaceConfig(), _load_face, _compute_face,
              "the face expert's 7 class probabilities (canonical order), averaged over the segment's frames"),
)})


def for_analysis(modality: str, **config: Any) -> str | None:
    """The registered extractor that computes what the analysis computes for ``modality`` with these config
    values (e.g. ``for_analysis("voice", asr_model="whisper-base", span="speech")``), or None."""
    missing = object()
    for name, ex in EXTRACTORS.items():
        if ex.analysis and ex.modality == modality and all(getattr(ex.config, k, missing) == v for k, v in config.items()):
            return name
    return None
