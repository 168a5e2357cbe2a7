"""Speech -> text with faster-whisper (CTranslate2, int8 on CPU), sharing the encoder states.

The Whisper encoder output of every 30 s window that ASR computes is kept (see ``_CapturingWhisper``)
so that the voice expert pools its embedding from it for free instead of running a second encoder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .errors import InputError, MissingComponentError
from .media import SAMPLE_RATE
from .store import COMPONENTS, resolve

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

ASR_MODELS = ("whisper-base", "whisper-tiny.en")


def check_model(name_or_path: str) -> None:
    """MissingComponentError unless ``name_or_path`` is a registered Whisper component or a directory holding
    a CTranslate2 model (model.bin); cheap, so options are checked before anything loads."""
    if name_or_path in ASR_MODELS:
        return
    p = Path(name_or_path).expanduser()
    hint = ("(convert one with `ct2-transformers-converter --model openai/whisper-base --output_dir DIR "
            "--copy_files tokenizer.json`), or use one of " + ", ".join(ASR_MODELS))
    if not (p.is_dir() and (p / "model.bin").is_file()):
        raise MissingComponentError(f"ASR model {name_or_path!r} is neither one of {', '.join(ASR_MODELS)} nor a "
                                    f"CTranslate2 Whisper directory containing model.bin {hint}")
    # CTranslate2 aborts the process on some malformed files: check the header before it reads one.
    # model.bin starts with the format version (uint32, 1..6 here) and the model spec's name.
    try:
        with open(p / "model.bin", "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise MissingComponentError(f"ASR model {p}: model.bin cannot be read ({e.strerror})") from None
    version = int.from_bytes(head[:4], "little") if len(head) >= 6 else 0
    n = int.from_bytes(head[4:6], "little") if len(head) >= 6 else 0
    spec = head[6:6 + n].rstrip(b"\0").decode("ascii", "replace") if 0 < n <= 58 else ""
    if not 1 <= version <= 6 or not spec.startswith("Whisper"):
        raise MissingComponentError(f"ASR model {p}: model.bin is not a CTranslate2 Whisper model (format version "
                                    f"{version}, model {spec or 'unreadable'!r}) {hint}")
    missing = [f for f in ("config.json",) if not (p / f).is_file()]
    if missing or not any((p / f).is_file() for f in ("tokenizer.json", "vocabulary.txt", "vocabulary.json")):
        raise MissingComponentError(f"ASR model {p} lacks {missing or 'tokenizer.json / vocabulary.txt'}: a "
                                    f"CTranslate2 Whisper directory holds model.bin, config.json and the tokenizer {hint}")


def check_language(code: str) -> None:
    """InputError unless ``code`` is a language Whisper knows (ISO 639-1 code such as en, zh, de)."""
    try:
        from faster_whisper.tokenizer import _LANGUAGE_CODES as codes
    except ImportError:  # the list moved: the ASR model reports an unknown code when it decodes
        return
    if code not in codes:
        raise InputError(f"language {code!r} is not one Whisper knows; give an ISO 639-1 code such as en, zh, de, "
                         "fr, es, pl, tr (or leave --language out to detect it)")


def model_dir(name_or_path: str) -> Path:
    """A registered component name (``whisper-base``, ``whisper-tiny.en``) or a user's CTranslate2
    model directory (must hold model.bin, config.json, tokenizer.json)."""
    check_model(name_or_path)
    return resolve(name_or_path) if name_or_path in COMPONENTS else Path(name_or_path).expanduser()


def load_whisper(name_or_path: str = "whisper-base", threads: int | None = None) -> "WhisperModel":
    """Load a Whisper model for CPU int8 inference (never contacts a hub: always a local directory)."""
    threads = threads or min(2, os.cpu_count() or 1)
    cls = _capturing_class()  # a WhisperModel that also keeps its last encoder output
    path = model_dir(name_or_path)
    try:
        model: WhisperModel = cls(str(path), device="cpu", compute_type="int8", cpu_threads=threads)
    except (RuntimeError, ValueError, OSError) as e:  # an unreadable or foreign CTranslate2 model
        raise MissingComponentError(f"ASR model {path} cannot be loaded ({str(e).splitlines()[0][:200]}); use one of "
                                    f"{', '.join(ASR_MODELS)} or a CTranslate2 Whisper directory") from None
    return model


_T2S: Any = None


def to_simplified(text: str) -> str:
    """Traditional -> simplified Chinese (OpenCC). Whisper base writes traditional characters for
    Mandarin; a simplified-Chinese prompt also steers it, but on unclear audio Whisper echoes the prompt
    as the transcript, so the conversion is done deterministically after decoding instead."""
    global _T2S
    if _T2S is None:
        import opencc

        _T2S = opencc.OpenCC("t2s")
    return str(_T2S.convert(text))


@dataclass(frozen=True)
class ASROptions:
    model: str = "whisper-base"  # component name or a CTranslate2 Whisper directory
    language: str | None = None  # ISO code; None = detect per input (multilingual models only)
    beam_size: int = 1  # greedy by default: ~1.8x faster than beam 5 on CPU for the same English text
    vad: bool = True  # Silero VAD (shipped with faster-whisper) drops silence before decoding
    min_silence_ms: int = 500  # VAD: a pause at least this long splits speech chunks
    threads: int = 2  # CTranslate2 intra-op threads
    zh_simplified: bool = True  # write Mandarin in simplified characters (OpenCC t2s)

    def __post_init__(self) -> None:
        for name in ("beam_size", "threads", "min_silence_ms"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "min_silence_ms" else 1):
                raise InputError(f"ASROptions.{name} must be an integer >= {0 if name == 'min_silence_ms' else 1}, "
                                 f"not {v!r}")


@dataclass(frozen=True)
class Utterance:
    """One ASR segment with its pooled Whisper-encoder embedding (the voice expert's input)."""

    start: float  # seconds in the original audio
    end: float
    text: str
    language: str
    language_probability: float
    avg_logprob: float
    no_speech_prob: float
    embedding: np.ndarray | None  # mean+std of the encoder frames under the segment
    # the same frames averaged in 0.5 s chunks, [T, d]: a fusion network's sequence input
    # (extractor voice-<model>-seq); None when there is no encoder output
    frames: np.ndarray | None = None


_CAPTURING_CLASS: type | None = None


def _capturing_class() -> type:
    """A WhisperModel subclass that keeps the last encoder output (built lazily: faster-whisper import)."""
    global _CAPTURING_CLASS
    if _CAPTURING_CLASS is None:
        from faster_whisper import WhisperModel

        class CapturingWhisper(WhisperModel):  # type: ignore[misc]
            # faster-whisper yields a window's segments right after encoding that window (and tags them
            # with the window's `seek`), so the last output is always the one the segment came from.
            last_encoder_output: Any = None

            def encode(self, features: np.ndarray) -> Any:
                out = super().encode(features)
                self.last_encoder_output = out
                return out

        _CAPTURING_CLASS = CapturingWhisper
    return _CAPTURING_CLASS


class WhisperASR:
    """Transcribes 16 kHz audio into utterances with timestamps, language and voice embeddings."""

    def __init__(self, options: ASROptions = ASROptions()) -> None:
        self.options = options
        self.model = load_whisper(options.model, options.threads)
        self.multilingual: bool = bool(self.model.model.is_multilingual)

    def speech_chunks(self, audio: np.ndarray) -> list[dict[str, int]]:
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        if not self.options.vad:
            return [{"start": 0, "end": len(audio)}]
        return get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=self.options.min_silence_ms))

    def transcribe(self, audio: np.ndarray, on_progress: Callable[[float], None] | None = None) -> list[Utterance]:
        """Utterances of ``audio`` (empty when there is no speech)."""
        from faster_whisper.vad import SpeechTimestampsMap
        from .features.voice import chunk_frames, pool_frames

        chunks = self.speech_chunks(audio)
        if not chunks:
            return []
        speech = np.concatenate([audio[c["start"]: c["end"]] for c in chunks])
        ts_map = SpeechTimestampsMap(chunks, SAMPLE_RATE)
        language, lang_p = self.options.language, 1.0
        if language is None:
            if self.multilingual:
                # Detect on the speech only (one encoder pass, as transcribe() would do anyway).
                language, lang_p, _ = self.model.detect_language(audio=speech[: 30 * SAMPLE_RATE])
            else:
                language = "en"
        # Temperature fallback samples; a fixed seed per input makes transcripts (and hence segments)
        # reproducible run to run and independent of what was analysed before.
        import ctranslate2

        ctranslate2.set_random_seed(0)
        segments, _info = self.model.transcribe(
            speech, language=language, beam_size=self.options.beam_size, vad_filter=False,
            condition_on_previous_text=False,
        )
        out: list[Utterance] = []
        enc_src: Any = None
        enc: np.ndarray | None = None
        tpf = self.model.feature_extractor.time_per_frame  # seconds per mel frame (0.01)
        for s in segments:
            if self.model.last_encoder_output is not enc_src:
                enc_src = self.model.last_encoder_output
                enc = np.asarray(enc_src)[0]
            w0 = s.seek * tpf
            emb = pool_frames(enc, s.start - w0, s.end - w0) if enc is not None else None
            seq = chunk_frames(enc, s.start - w0, s.end - w0) if enc is not None else None
            start = ts_map.get_original_time(s.start)
            end = max(start, ts_map.get_original_time(s.end, is_end=True))
            text = s.text.strip()
            if language == "zh" and self.options.zh_simplified:
                text = to_simplified(text)
            if not text:
                continue
            out.append(Utterance(round(start, 3), round(end, 3), text, language, float(lang_p),
                                 float(s.avg_logprob), float(s.no_speech_prob), emb, seq))
            if on_progress is not None:
                on_progress(s.end / max(len(speech) / SAMPLE_RATE, 1e-6))
        return out
