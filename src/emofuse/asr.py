"""Speech -> text with faster-whisper (CTranslate2, int8 on CPU), sharing the encoder states.

Silero VAD finds the speech; the speech chunks of one or several inputs are packed into 30 s windows
(:func:`plan_windows`), and each window is encoded once: that encoder output serves language detection,
decoding and the voice expert, which pools its embedding from it instead of running a second encoder.
Decoding has a budget (:class:`ASROptions`), every segment a quality score (:mod:`emofuse.asr_quality`),
and speech without a usable transcript still becomes utterances (``source="vad"``).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

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


def load_whisper(name_or_path: str = "whisper-base", threads: int | None = None, streams: int = 1) -> "WhisperModel":
    """Load a Whisper model for CPU int8 inference (never contacts a hub: always a local directory).
    ``streams``: model replicas, so that as many windows can be encoded and decoded at once (each with
    ``threads`` intra-op threads)."""
    threads = threads or min(2, os.cpu_count() or 1)
    cls = _capturing_class()  # a WhisperModel that encodes a window once
    path = model_dir(name_or_path)
    try:
        model: WhisperModel = cls(str(path), device="cpu", compute_type="int8", cpu_threads=threads,
                                  num_workers=streams)
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


WINDOW_S = 30.0  # Whisper's window
MIN_WINDOW_S = 5.0  # the shortest window ASROptions.window takes


def check_window_seconds(value: object, name: str = "the ASR window") -> float:
    """``value`` as seconds per Whisper window; InputError unless it is a number from MIN_WINDOW_S to WINDOW_S."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not MIN_WINDOW_S <= value <= WINDOW_S:
        raise InputError(f"{name} must be a number of seconds from {MIN_WINDOW_S:g} to {WINDOW_S:g}, not {value!r}")
    return float(value)


@dataclass(frozen=True)
class ASROptions:
    model: str = "whisper-base"  # component name or a CTranslate2 Whisper directory
    language: str | None = None  # ISO code; None = detect per input (multilingual models only)
    beam_size: int = 1  # greedy by default: ~1.8x faster than beam 5 on CPU for the same English text
    vad: bool = True  # Silero VAD (shipped with faster-whisper) drops silence before decoding
    min_silence_ms: int = 500  # VAD: a pause at least this long splits speech chunks
    threads: int = 2  # CTranslate2 intra-op threads
    # windows decoded at once (one CTranslate2 replica each, ~70 MB for whisper-base). Greedy decoding keeps two
    # cores only half busy, so on 2 cores 2 streams x 2 threads decoded 6 windows of short clips 15 % faster
    # than one stream, and a lone window as fast (benchmarks/asr_streams.py)
    streams: int = 2
    zh_simplified: bool = True  # write Mandarin in simplified characters (OpenCC t2s)
    # -- the decoding budget (benchmarks/asr.py measures the choices). A window whose decode fails the checks
    # below is retried at the next temperature with best_of samples; faster-whisper's default ladder (0.0 .. 1.0
    # in 6 steps, 5 samples each) costs up to 26 decodes per window on speech it cannot read, and on RAVDESS,
    # nEMO and TurEV-DB it won no words over greedy decoding (benchmarks/asr.py): greedy only by default.
    temperatures: tuple[float, ...] = (0.0,)
    best_of: int = 5
    compression_ratio_threshold: float | None = 2.4  # above: too repetitive, retry
    log_prob_threshold: float | None = -1.0  # below: too unsure, retry
    no_speech_threshold: float | None = 0.6  # above (with a low log-prob): the window is skipped as silence
    # cap on tokens per second of speech in a window (nEMO Polish averages ~8, English ~4); CTranslate2 also
    # stops a window at 224 tokens, so a looping decode costs at most ~1.6x a clean window's
    tokens_per_second: float | None = 15.0
    # once every input of a window has come out unreliable (or cut short), the next windows of those inputs get
    # this smaller cap until one comes out reliable: speech Whisper cannot read stops costing full decodes
    shaky_tokens_per_second: float | None = 4.0
    no_repeat_ngram_size: int = 0  # > 0: no n-gram of this size is generated twice in a window
    min_quality: float | None = None  # transcripts scoring below are unreliable; None = the quality model's threshold
    # seconds of audio per Whisper window: faster-whisper pads every window to 30 s, so a lone 3 s utterance (the
    # live mode's unit) pays 27 s of padding in the encoder. Shorter windows cost proportionally less; decoded with
    # timestamps, as here, 10 s kept the English WER of both models and cost base 9 points in Polish (0.359 ->
    # 0.449, the language detected as often; the bare decoder without timestamps loops at 10 s:
    # benchmarks/asr_window.py [--asr]). The voice expert reads a head trained
    # on the same window (extractors voice-<model>-w<seconds>), checked when the analyzer is built
    window: float = WINDOW_S

    def __post_init__(self) -> None:
        for name in ("beam_size", "threads", "streams", "min_silence_ms", "best_of", "no_repeat_ngram_size"):
            v = getattr(self, name)
            low = 0 if name in ("min_silence_ms", "no_repeat_ngram_size") else 1
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise InputError(f"ASROptions.{name} must be an integer >= {low}, not {v!r}")
        if not self.temperatures or any(not 0 <= t <= 2 for t in self.temperatures):
            raise InputError(f"ASROptions.temperatures must be a non-empty tuple of values in [0, 2], not "
                             f"{self.temperatures!r}")
        if self.min_quality is not None and (isinstance(self.min_quality, bool) or
                                             not isinstance(self.min_quality, (int, float)) or not 0 <= self.min_quality <= 1):
            raise InputError(f"the minimum transcript quality must be a number in [0, 1], not {self.min_quality!r}")
        if self.shaky_tokens_per_second is not None and not self.shaky_tokens_per_second > 0:
            raise InputError(f"ASROptions.shaky_tokens_per_second must be None or > 0, not "
                             f"{self.shaky_tokens_per_second!r}")
        check_window_seconds(self.window)
        if self.tokens_per_second is not None and not self.tokens_per_second > 0:
            raise InputError(f"ASROptions.tokens_per_second must be None or > 0, not {self.tokens_per_second!r}")


@dataclass(frozen=True)
class Utterance:
    """One stretch of speech: an ASR segment, or (``source == "vad"``) speech that VAD found and no usable
    transcript covers, with its pooled Whisper-encoder embedding (the voice expert's input)."""

    start: float  # seconds in the original audio
    end: float
    text: str  # "" when no transcript covers the speech
    language: str
    language_probability: float
    avg_logprob: float
    no_speech_prob: float
    embedding: np.ndarray | None  # mean+std of the encoder frames under the segment
    # the same frames averaged in 0.5 s chunks, [T, d]: a fusion network's sequence input
    # (extractor voice-<model>-seq); None when there is no encoder output
    frames: np.ndarray | None = None
    quality: float | None = None  # asr_quality score of the text (None: no text)
    reliable: bool = False  # quality >= the quality model's threshold: the text may be fused
    source: str = "asr"  # "asr": boundaries from Whisper's timestamps; "vad": from voice activity detection
    decode: Mapping[str, float] | None = field(default=None, compare=False)  # the asr_quality features the quality was scored from


INPUT_GAP_S = 1.0  # silence between inputs packed into one window (0.5: 10 % fewer windows, but RAVDESS WER 0.021 -> 0.042)
MAX_CHUNK_S = 28.0  # VAD splits longer speech (at its last pause) so that a chunk and its pads fit a window
MIN_FALLBACK_S = 1.0  # speech that no kept segment covers becomes a VAD utterance from this length on
MAX_UTTERANCE_S = 10.0  # VAD utterances are cut to at most this; longer unreliable ASR segments are replaced


@dataclass(frozen=True)
class _Part:
    """A stretch of one input's speech (``[start, end)`` samples of its audio) placed in a window at ``offset``."""

    input: int
    start: int
    end: int
    offset: int

    @property
    def stop(self) -> int:  # end in window samples
        return self.offset + self.end - self.start


def plan_windows(chunks: Sequence[Sequence[tuple[int, int]]], window: int, gap: int) -> list[list[_Part]]:
    """Pack every input's speech chunks (``(start, end)`` samples), in order, into windows of at most
    ``window`` samples: chunks of one input are joined directly (as faster-whisper joins VAD chunks), the
    next input starts after ``gap`` samples of silence, and a chunk longer than a window is cut into
    windows of its own."""
    windows: list[list[_Part]] = []
    cur: list[_Part] = []
    used = 0
    for i, cs in enumerate(chunks):
        for a, b in cs:
            while b - a > 0:
                n = min(b - a, window)
                pad = gap if cur and cur[-1].input != i else 0
                if cur and used + pad + n > window:
                    windows.append(cur)
                    cur, used, pad = [], 0, 0
                cur.append(_Part(i, a, a + n, used + pad))
                used += pad + n
                a += n
    if cur:
        windows.append(cur)
    return windows


MODEL_MAX_LENGTH = 448  # Whisper's decoder positions


class _WindowDone(Exception):
    """Raised by the encoder hook when faster-whisper would encode the rest of a window a second time."""


_CAPTURING_CLASS: type | None = None


def _capturing_class() -> type:
    """A WhisperModel subclass that encodes a window once (built lazily: faster-whisper import)."""
    global _CAPTURING_CLASS
    if _CAPTURING_CLASS is None:
        from faster_whisper import WhisperModel

        class CapturingWhisper(WhisperModel):  # type: ignore[misc]
            # One pass per window: WhisperASR encodes the window itself and hands the output to
            # generate_segments; when a window's last segment ends before the window does, faster-whisper
            # would encode the remainder again (a second encoder pass, then another decode). Here the
            # remainder is left to the VAD utterances instead, which bounds a window's cost.
            # per thread: windows are decoded on several threads at once (ASROptions.streams)
            _local = threading.local()

            @property
            def single_pass(self) -> bool:
                return bool(getattr(self._local, "on", False))

            @single_pass.setter
            def single_pass(self, on: bool) -> None:
                self._local.on = on

            def encode(self, features: np.ndarray) -> Any:
                if self.single_pass:
                    raise _WindowDone
                return super().encode(features)

        _CAPTURING_CLASS = CapturingWhisper
    return _CAPTURING_CLASS


class WhisperASR:
    """Transcribes 16 kHz audio into utterances with timestamps, language, quality and voice embeddings."""

    def __init__(self, options: ASROptions = ASROptions(), quality: Any = None) -> None:
        """``quality``: what scores transcripts (``score(features) -> float`` and ``threshold``); default the
        shipped :class:`emofuse.asr_quality.QualityModel`."""
        from . import asr_quality

        self.options = options
        self.quality = quality or asr_quality.shipped()
        self.model = load_whisper(options.model, options.threads, options.streams)
        self.multilingual: bool = bool(self.model.model.is_multilingual)
        if options.vad:  # load Silero VAD now (faster-whisper loads it on first use), with the other models
            self.speech_chunks(np.zeros(SAMPLE_RATE, dtype=np.float32))

    @property
    def threshold(self) -> float:
        """Transcripts scoring below this are unreliable (ASROptions.min_quality, else the quality model's)."""
        return float(self.options.min_quality if self.options.min_quality is not None else self.quality.threshold)

    def speech_chunks(self, audio: np.ndarray, window: float | None = None) -> list[dict[str, int]]:
        """Speech ``{"start", "end"}`` in samples (Silero VAD; each at most MAX_CHUNK_S + its pads)."""
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        if not self.options.vad:
            return [{"start": 0, "end": len(audio)}] if len(audio) else []
        return get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=self.options.min_silence_ms,
                                                       max_speech_duration_s=min(MAX_CHUNK_S, (window or self.options.window) - 2)))

    def _decode_options(self, speech_seconds: float, tokenizer: Any, tokens_per_second: float | None,
                        window: float) -> Any:
        """faster-whisper's TranscriptionOptions for one window, with the budget of ASROptions."""
        from faster_whisper.transcribe import TranscriptionOptions, get_suppressed_tokens

        o = self.options
        cap = None
        tps = tokens_per_second or o.tokens_per_second
        if tps is not None:  # as max_new_tokens: CTranslate2 reaches (prompt + cap) // 2 tokens
            want = 8 + tps * min(window, speech_seconds)
            prompt = len(tokenizer.sot_sequence)
            cap = int(min(MODEL_MAX_LENGTH - prompt, 2 * want + 1 - prompt))
        suppress = get_suppressed_tokens(tokenizer, [-1])
        return TranscriptionOptions(
            beam_size=o.beam_size, best_of=o.best_of, patience=1.0, length_penalty=1.0, repetition_penalty=1.0,
            no_repeat_ngram_size=o.no_repeat_ngram_size, log_prob_threshold=o.log_prob_threshold,
            no_speech_threshold=o.no_speech_threshold, compression_ratio_threshold=o.compression_ratio_threshold,
            condition_on_previous_text=False, prompt_reset_on_temperature=0.5, temperatures=list(o.temperatures),
            initial_prompt=None, prefix=None, suppress_blank=True, suppress_tokens=suppress,
            without_timestamps=False,
            max_initial_timestamp=1.0, word_timestamps=True, prepend_punctuations="\"'“¿([{-",
            append_punctuations="\"'.。,，!！?？:：”)]}、", multilingual=False, max_new_tokens=cap,
            clip_timestamps=[0.0], hallucination_silence_threshold=None, hotwords=None)

    def transcribe(self, audio: np.ndarray, on_progress: Callable[[float], None] | None = None,
                   window: float | None = None) -> list[Utterance]:
        """Utterances of ``audio`` (empty when VAD finds no speech)."""
        return self.transcribe_many([audio], on_progress, window=window)[0]

    def transcribe_many(self, audios: Sequence[np.ndarray], on_progress: Callable[[float], None] | None = None,
                        streams: int | None = None, window: float | None = None) -> list[list[Utterance]]:
        """Utterances of each input. The inputs' speech (VAD chunks) is packed into shared 30 s windows, so
        that a short input costs its length rather than a whole window; each window is encoded once, and
        that one encoder pass serves language detection, decoding and the voice embeddings. Speech without
        a reliable transcript becomes VAD utterances, so voice (and face) still get per-utterance answers.
        ``streams``: windows decoded at once in this call (at most ``options.streams``; default all of them);
        ``window``: seconds per window for this call (default ``options.window``; the live mode's utterances)."""
        streams = min(streams or self.options.streams, self.options.streams)
        win = self.options.window if window is None else check_window_seconds(window)
        chunks = [[(c["start"], c["end"]) for c in self.speech_chunks(np.asarray(a), win)] for a in audios]

        def plan(cs: Sequence[Sequence[tuple[int, int]]]) -> list[list[_Part]]:  # 2 x 160: the mel frames' hop
            return plan_windows(cs, int(win * SAMPLE_RATE) - 2 * 160, int(INPUT_GAP_S * SAMPLE_RATE))

        windows = plan(chunks)
        out: list[list[Utterance]] = [[] for _ in audios]
        shaky: set[int] = set()  # inputs whose last window came out unreliable

        def budget(parts: list[_Part]) -> float | None:
            return self.options.shaky_tokens_per_second if {p.input for p in parts} <= shaky else None

        for k, result in enumerate(self._decode_all(audios, windows, budget, streams, win)):
            for i, utts in result.items():
                out[i].extend(utts)
                if any(u.reliable for u in utts):
                    shaky.discard(i)
                else:
                    shaky.add(i)
            if on_progress is not None:
                on_progress((k + 1) / len(windows))
        # Whisper sometimes skips one of several packed inputs (a sentence said twice in a row, say): those get
        # one more try, packed among themselves (new neighbours), and keep it if it found words
        shared = {p.input for parts in windows if len({q.input for q in parts}) > 1 for p in parts}
        retry = [i for i in sorted(shared) if not any(u.source == "asr" for u in out[i])]
        if retry:
            again = plan([chunks[i] if i in retry else [] for i in range(len(audios))])
            for result in self._decode_all(audios, again, lambda parts: None, streams, win):
                for i, utts in result.items():
                    if any(u.source == "asr" for u in utts):
                        out[i] = utts
        return [sorted(u, key=lambda x: x.start) for u in out]

    def _decode_all(self, audios: Sequence[np.ndarray], windows: list[list[_Part]],
                    budget: Callable[[list[_Part]], float | None], streams: int,
                    window: float) -> Iterator[dict[int, list[Utterance]]]:
        """Each window's utterances per input, in window order, decoding up to ``streams`` windows at once.
        ``budget(parts)`` gives a window's token cap when it is submitted; window k is submitted once the
        caller has consumed window k - streams, so the caps (and transcripts) do not depend on timing."""
        n = streams
        if n == 1 or len(windows) == 1:
            for parts in windows:
                yield self._window(audios, parts, budget(parts), window)
            return
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix="emofuse-asr") as pool:
            pending: deque[Future[dict[int, list[Utterance]]]] = deque()
            for parts in windows:
                if len(pending) == n:
                    yield pending.popleft().result()
                pending.append(pool.submit(self._window, audios, parts, budget(parts), window))
            while pending:
                yield pending.popleft().result()

    def _window(self, audios: Sequence[np.ndarray], parts: list[_Part],
                tokens_per_second: float | None, window: float) -> dict[int, list[Utterance]]:
        """Decode one window of packed speech (``tokens_per_second``: a cap other than the options'); the
        utterances per input, in original time."""
        import ctranslate2
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.tokenizer import Tokenizer

        from . import asr_quality as aq

        audio = np.zeros(parts[-1].stop, dtype=np.float32)
        for p in parts:
            audio[p.offset: p.stop] = audios[p.input][p.start: p.end]
        features = self.model.feature_extractor(audio)
        # the window exactly as generate_segments slices it (it drops the last mel frame)
        frames = int(round(window * 100))  # mel frames of the (padded) window
        enc_sv = self.model.encode(pad_or_trim(features[:, : min(frames, features.shape[-1] - 1)], frames))
        enc = np.asarray(enc_sv)[0]
        language, lang_p = self.options.language, 1.0
        if not self.multilingual:
            language = "en"
        elif language is None:
            token, lang_p = self.model.model.detect_language(enc_sv)[0][0]
            language = token[2:-2]
        tokenizer = Tokenizer(self.model.hf_tokenizer, self.multilingual, task="transcribe", language=language)
        speech_s = sum(p.end - p.start for p in parts) / SAMPLE_RATE
        # word timestamps (one alignment pass, ~5 % of a window): where several inputs share the window a segment
        # is split at their boundaries, and each segment's word probabilities are its own confidence
        opts = self._decode_options(speech_s, tokenizer, tokens_per_second=tokens_per_second, window=window)
        # Temperature fallback samples; a fixed seed per window makes transcripts reproducible run to run.
        ctranslate2.set_random_seed(0)
        segments = []
        self.model.single_pass = True
        try:
            for s in self.model.generate_segments(features, tokenizer, opts, False, enc_sv):
                segments.append(s)
        except _WindowDone:
            pass
        finally:
            self.model.single_pass = False
        n_tokens = sum(len(s.tokens) for s in segments)
        # the token cap: CTranslate2 stops a Whisper sequence at max_length // 2 tokens (4.8, measured)
        cut_short = opts.max_new_tokens is not None and \
            n_tokens >= (len(tokenizer.sot_sequence) + opts.max_new_tokens) // 2 - 2
        qm = self.quality
        by_input: dict[int, list[Utterance]] = {p.input: [] for p in parts}
        for s in segments:
            info = aq.DecodeInfo(float(s.avg_logprob), float(s.no_speech_prob), float(s.temperature or 0.0),
                                 float(s.compression_ratio), float(lang_p), bool(cut_short))
            for own, a, b, text, probs in _split(parts, s):
                text = text.strip()
                if language == "zh" and self.options.zh_simplified:
                    text = to_simplified(text)
                if not text:
                    continue
                feats = aq.features(text, b - a, language, info, probs)
                q = qm.score(feats)
                by_input[own].append(self._utterance(parts, own, a, b, enc, text, language, lang_p, s.avg_logprob,
                                                     s.no_speech_prob, q, q >= self.threshold, "asr", decode=feats))
        for i, utts in by_input.items():
            keep = [u.reliable or u.end - u.start <= MAX_UTTERANCE_S for u in utts]
            kept = [u for u, k in zip(utts, keep) if k]
            dropped = [u for u, k in zip(utts, keep) if not k]  # long unreliable spans: VAD sets the boundaries
            covered = [(u.start, u.end) for u in kept]
            mine = [p for p in parts if p.input == i]
            for p in mine:
                lo, hi = p.start / SAMPLE_RATE, p.end / SAMPLE_RATE
                for a, b in _uncovered(lo, hi, covered, MIN_FALLBACK_S, MAX_UTTERANCE_S):
                    wa, wb = p.offset / SAMPLE_RATE + a - lo, p.offset / SAMPLE_RATE + b - lo
                    text = " ".join(u.text for u in dropped if min(u.end, b) - max(u.start, a) > 0.5 * (b - a))
                    kept.append(self._utterance(parts, i, wa, wb, enc, text, language, lang_p, 0.0, 0.0,
                                                None, False, "vad", original=(a, b)))
            if not kept:  # speech shorter than MIN_FALLBACK_S and no transcript: still one utterance for voice
                wa, wb = mine[0].offset / SAMPLE_RATE, mine[-1].stop / SAMPLE_RATE
                text = " ".join(u.text for u in dropped)
                kept.append(self._utterance(parts, i, wa, wb, enc, text, language, lang_p, 0.0, 0.0, None,
                                            False, "vad"))
            by_input[i] = kept
        return by_input

    def _utterance(self, parts: list[_Part], i: int, wa: float, wb: float, enc: np.ndarray, text: str, language: str,
                   lang_p: float, avg_logprob: float, no_speech: float, quality: float | None, reliable: bool,
                   source: str, original: tuple[float, float] | None = None,
                   decode: Mapping[str, float] | None = None) -> Utterance:
        """An utterance of input ``i`` spanning window seconds ``[wa, wb]``, pooled from the window's frames."""
        from .features.voice import chunk_frames, pool_frames

        start, end = original or (_to_original(parts, i, wa), _to_original(parts, i, wb, is_end=True))
        return Utterance(round(start, 3), round(max(start, end), 3), text, language, float(lang_p), float(avg_logprob),
                         float(no_speech), pool_frames(enc, wa, wb), chunk_frames(enc, wa, wb),
                         None if quality is None else round(float(quality), 4), reliable, source, decode)


def _split(parts: list[_Part], seg: Any) -> list[tuple[int, float, float, str, list[float]]]:
    """A decoded segment as ``(input, start, end, text, word probabilities)`` pieces in window seconds: one
    piece per input whose stretch holds its words (by each word's time; Whisper may run one segment across
    two packed inputs), else the whole segment for the input it overlaps most."""
    words = getattr(seg, "words", None)
    if not words:
        own = _owner(parts, seg.start, seg.end)
        return [(own, *_clip_to(parts, own, seg.start, seg.end), seg.text, [])]
    pieces: list[tuple[int, float, float, str, list[float]]] = []
    for w in words:
        own = _owner(parts, w.start, w.end)
        a, b = _clip_to(parts, own, w.start, w.end)
        if pieces and pieces[-1][0] == own:
            i, a0, _, text, probs = pieces[-1]
            pieces[-1] = (i, a0, max(a0, b), text + w.word, probs + [float(w.probability)])
        else:
            pieces.append((own, a, b, w.word, [float(w.probability)]))
    return pieces


def _owner(parts: list[_Part], a: float, b: float) -> int:
    """The input whose speech overlaps window seconds ``[a, b]`` most (the nearest one if none does)."""
    best, best_ov, best_d = parts[0].input, -1.0, float("inf")
    for p in parts:
        pa, pb = p.offset / SAMPLE_RATE, p.stop / SAMPLE_RATE
        ov = min(b, pb) - max(a, pa)
        d = max(pa - b, a - pb, 0.0)
        if ov > best_ov or (ov <= 0 and best_ov <= 0 and d < best_d):
            best, best_ov, best_d = p.input, ov, d
    return best


def _clip_to(parts: list[_Part], i: int, a: float, b: float) -> tuple[float, float]:
    """Window seconds ``[a, b]`` clipped to input ``i``'s stretch of the window (its parts are contiguous)."""
    mine = [p for p in parts if p.input == i]
    lo, hi = mine[0].offset / SAMPLE_RATE, mine[-1].stop / SAMPLE_RATE
    a, b = min(max(a, lo), hi), min(max(b, lo), hi)
    return a, max(a, b)


def _to_original(parts: list[_Part], i: int, t: float, is_end: bool = False) -> float:
    """Window seconds -> seconds in input ``i``'s audio (through the part that holds ``t``)."""
    mine = [p for p in parts if p.input == i]
    for p in mine:
        pa, pb = p.offset / SAMPLE_RATE, p.stop / SAMPLE_RATE
        if pa <= t < pb or (is_end and pa < t <= pb):
            return p.start / SAMPLE_RATE + t - pa
    # outside the input's stretch (a timestamp in the gap to the next input): its nearer end
    return (mine[0].start if t < mine[0].offset / SAMPLE_RATE else mine[-1].end) / SAMPLE_RATE


def _uncovered(lo: float, hi: float, covered: list[tuple[float, float]], min_s: float,
               max_s: float) -> list[tuple[float, float]]:
    """The stretches of ``[lo, hi]`` that no span in ``covered`` overlaps, at least ``min_s`` long, each cut
    into equal pieces of at most ``max_s``."""
    free, cur = [], lo
    for a, b in sorted(covered):
        if b <= cur or a >= hi:
            continue
        if a > cur:
            free.append((cur, a))
        cur = max(cur, b)
    if cur < hi:
        free.append((cur, hi))
    out = []
    for a, b in free:
        if b - a < min_s:
            continue
        n = int(np.ceil((b - a) / max_s))
        out += [(a + (b - a) * k / n, a + (b - a) * (k + 1) / n) for k in range(n)]
    return out
