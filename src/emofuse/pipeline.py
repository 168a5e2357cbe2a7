"""The analysis pipeline: media -> utterances (ASR) -> voice / face / text experts -> fusion -> result.

Work is shared and overlapped: the audio is decoded once and ASR runs on one thread (CTranslate2 uses
both cores) while the video is decoded and faces are analysed on another; the voice expert reads the
encoder states ASR already computed; text is encoded in one batch per input.
"""

from __future__ import annotations

import os
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .errors import EmofuseError, InputError
from .experts import ExpertOutput, LinearHead, shipped_head
from .media import MediaOptions, Probe, decode_audio, decode_image, iter_frames, probe
from .result import MODALITIES, AnalysisError, AnalysisResult, Segment

Progress = Callable[[float], None]
_MULTI_FACE = "FaceOptions.max_faces > 1 averages several"


@dataclass(frozen=True)
class AnalyzerOptions:
    modalities: tuple[str, ...] = MODALITIES  # experts to run (subset of voice, face, text)
    asr_model: str = "whisper-base"  # whisper-base | whisper-tiny.en | a CTranslate2 Whisper directory
    language: str | None = None  # force the spoken/written language (ISO code); None = detect
    beam_size: int = 1  # ASR beam; 1 = greedy (fastest), 5 = Whisper's default
    fps: float = 5.0  # video frames sampled per second for the face expert
    max_duration: float = 3600.0  # refuse longer media (seconds)
    max_image_pixels: int = 64_000_000  # refuse larger still images before decoding them
    face_window: float = 4.0  # segment length for face-only timelines (video without speech)
    threads: int = 2  # CPU threads for ASR
    # fusion: a rule of segment_fusion.RULES ("confidence"), or a network of emofuse.networks.NETWORKS given
    # with its trained checkpoint; None = "confidence", or the network the checkpoint holds
    fusion: str | None = None
    checkpoint: str | None = None  # trained fusion network (.safetensors); needed for any network

    def __post_init__(self) -> None:
        if isinstance(self.modalities, str) or not isinstance(self.modalities, (tuple, list)):
            raise InputError(f"modalities must be a tuple of names such as ('voice', 'text'), not "
                             f"{self.modalities!r}")
        object.__setattr__(self, "modalities", tuple(self.modalities))
        bad = [m for m in self.modalities if m not in MODALITIES]
        if bad or not self.modalities:
            raise InputError(f"unknown modalities {bad or '(none)'}; choose from {', '.join(MODALITIES)}")
        for name in ("fps", "max_duration", "face_window"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise InputError(f"{name} must be a positive number, not {v!r}")
        for name in ("beam_size", "threads", "max_image_pixels"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{name} must be an integer >= 1, not {v!r}")
        from .asr import check_language, check_model

        if "voice" in self.modalities or "text" in self.modalities:
            check_model(self.asr_model)
        if self.language is not None:
            check_language(self.language)
            if self.asr_model.endswith(".en") and self.language != "en":
                raise InputError(f"--asr-model {self.asr_model} is English-only, so --language {self.language} cannot be "
                                 "honoured; use whisper-base for other languages, or leave --language out")


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def script_language(text: str) -> str:
    """Which text encoder suits a line: 'zh' style (CJK script) goes to the multilingual encoder."""
    return "zh" if _CJK.search(text) else "en"


class Analyzer:
    """Loads the models once; ``analyze()`` many inputs. Thread-compatible, not thread-safe."""

    def __init__(self, options: AnalyzerOptions = AnalyzerOptions()) -> None:
        from . import segment_fusion

        from .extractors import for_analysis

        self.options = options
        self.media_options = MediaOptions(fps=options.fps, max_duration=options.max_duration,
                                          max_image_pixels=options.max_image_pixels)
        # The registered extractors that compute what this analysis computes (their names key the features a
        # fusion network is fed and the shipped heads); None where none matches (e.g. a user's own Whisper).
        self.sources: dict[str, str | None] = {
            "voice": for_analysis("voice", asr_model=options.asr_model, span="speech"),
            "voice-seq": for_analysis("voice", asr_model=options.asr_model, sequence=True),
            "text-en": for_analysis("text", encoder="minilm-l6"), "text-other": for_analysis("text", encoder="e5-small")}
        # A rule, or a trained network whose inputs come from the features computed below (segment_fusion.pipeline_sources()).
        self.fuse: Any = segment_fusion.build(
            options.fusion or ("confidence" if options.checkpoint is None else None), options.checkpoint,
            segment_fusion.supplied_sources(options.modalities, options.asr_model))
        self.fusion_notes: tuple[str, ...] = tuple(getattr(self.fuse, "notes", ()))
        self._asr: Any = None
        self._face: Any = None
        self._voice_head: LinearHead | None = None
        self._text: dict[str, tuple[Any, LinearHead]] = {}
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="emofuse")
        # Faces run beside ASR at the lowest CPU priority, so that they fill the cycles ASR leaves idle
        # instead of slowing it down; the face models are loaded on that thread so that the threads
        # mediapipe and FFmpeg spawn inherit the priority.
        self._face_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emofuse-face",
                                             initializer=_background_priority)
        t0 = time.perf_counter()
        # Load what every media input needs, concurrently (CTranslate2 and LiteRT release the GIL).
        futs = []
        if "voice" in options.modalities or "text" in options.modalities:
            futs.append(self._pool.submit(self._load_asr))
        if "face" in options.modalities:
            futs.append(self._face_pool.submit(self._load_face))
        if "text" in options.modalities:
            futs.append(self._pool.submit(self._text_expert, "en"))
        # Wait for every load before raising the first failure: the face models silence the native stderr
        # (file descriptor 2) while they load, and a message printed meanwhile would be lost.
        failures = []
        for f in futs:
            try:
                f.result()
            except BaseException as e:  # noqa: BLE001 - re-raised below
                failures.append(e)
        if failures:
            self.close()
            raise failures[0]
        self.load_seconds = time.perf_counter() - t0

    # -- model loading ------------------------------------------------------------------------------
    def _load_asr(self) -> Any:
        if self._asr is None:
            from .asr import ASROptions, WhisperASR

            self._asr = WhisperASR(ASROptions(model=self.options.asr_model, language=self.options.language,
                                              beam_size=self.options.beam_size, threads=self.options.threads))
            if "voice" in self.options.modalities:
                self._voice_head = self._find_voice_head()
        return self._asr

    def _find_voice_head(self) -> LinearHead | None:
        src = self.sources["voice"]
        if src is None:
            return None  # a user's own Whisper: no head was trained on its encoder (noted per input)
        return _checked(shipped_head(src), src)  # a shipped head is named after the extractor it reads

    def _load_face(self) -> Any:
        if self._face is None:
            from .features.face import FaceAnalyzer, FaceOptions

            self._face = FaceAnalyzer(FaceOptions())
        return self._face

    def _text_expert(self, lang: str) -> tuple[Any, LinearHead]:
        key = "minilm-l6" if lang == "en" else "e5-small"
        if key not in self._text:
            from .features.text import get_encoder

            src = self.sources[f"text-{'en' if lang == 'en' else 'other'}"] or ""
            self._text[key] = (get_encoder(key), _checked(shipped_head(src), src))
        return self._text[key]

    # -- analysis -----------------------------------------------------------------------------------
    def analyze(self, source: str | Path, on_progress: Progress | None = None) -> AnalysisResult:
        """Analyse one media file (video, audio or image). Raises EmofuseError subclasses on bad input."""
        t0 = time.perf_counter()
        p = probe(source, self.media_options)
        if p.kind == "image":
            return self._analyze_image(p, t0)
        return self._analyze_av(p, t0, on_progress)

    def analyze_text(self, lines: str | Sequence[str], name: str = "<text>") -> AnalysisResult:
        """Analyse text: one segment per line (a string is split on newlines; blank lines are skipped)."""
        if "text" not in self.options.modalities:
            raise InputError("text input needs the text modality; add 'text' to --modalities")
        if isinstance(lines, (bytes, bytearray)):
            raise InputError(f"{name}: text must be str, not bytes; decode it first (e.g. data.decode('utf-8'))")
        if not isinstance(lines, str) and not (isinstance(lines, Sequence) and all(isinstance(x, str) for x in lines)):
            raise InputError(f"{name}: text must be a str or a list of str, not {type(lines).__name__}")
        items = [s.strip() for s in (lines.splitlines() if isinstance(lines, str) else lines)]
        items = [s for s in items if s]
        if not items:
            raise InputError(f"{name}: no text to analyse (empty or blank lines only)")
        t0 = time.perf_counter()
        langs = [self.options.language or script_language(s) for s in items]
        emb: list[dict[str, np.ndarray]] = [{} for _ in items]
        notes: list[str] = []
        outs = self._run_text(items, langs, emb, notes)
        segs = tuple(Segment(0.0, 0.0, s, lang, {"text": o}, self.fuse({"text": o}, features=f))
                     for s, lang, o, f in zip(items, langs, outs, emb))
        return AnalysisResult(name, "text", 0.0, segs, tuple(notes) + self.fusion_notes,
                              {"total": time.perf_counter() - t0})

    def analyze_many(self, sources: Sequence[str | Path]) -> list[AnalysisResult | AnalysisError]:
        """Analyse several inputs; a bad one yields an AnalysisError and the rest go on."""
        if isinstance(sources, (str, os.PathLike)):
            raise InputError("analyze_many takes a list of paths; for one file use analyze(path)")
        return [self.safe_analyze(s) for s in sources]

    def safe_analyze(self, source: str | Path, on_progress: Progress | None = None) -> AnalysisResult | AnalysisError:
        try:
            return self.analyze(source, on_progress)
        except EmofuseError as e:
            return AnalysisError(str(source), str(e), type(e).__name__)
        except Exception as e:  # a library failure on one input must not cost the batch
            return AnalysisError(str(source), f"{source}: unexpected {type(e).__name__}: {e}", "InternalError")

    # -- stages -------------------------------------------------------------------------------------
    def _analyze_image(self, p: Probe, t0: float) -> AnalysisResult:
        if "face" not in self.options.modalities:
            raise InputError(f"{p.path}: an image has only a face to analyse; add 'face' to --modalities")
        obs = self._load_face().analyze_image(decode_image(p))
        if obs is None:
            raise InputError(f"{p.path}: no face found; pass a photo with a visible, roughly frontal face "
                             "(or a tight face crop)")
        out = self._face.summarize([obs])
        seg = Segment(0.0, 0.0, "", None, {"face": out}, self.fuse({"face": out}, features=_face_features(out)))
        notes = p.notes + (("the whole image was used as the face (no detection; looks like a face crop)",)
                           if obs.mode == "whole-image" else ())
        if obs.faces > 1:
            notes += (f"{obs.faces} faces found: the largest was analysed ({_MULTI_FACE})",)
        notes += self.fusion_notes
        return AnalysisResult(str(p.path), "image", 0.0, (seg,), notes, {"total": time.perf_counter() - t0})

    def _faces(self, p: Probe) -> tuple[list[float], list[Any], list[str], float]:
        """Sampled frames -> face observations. Decoding (single-threaded in FFmpeg for these streams)
        runs on its own thread, feeding detection + expression through a small queue, so that the two
        overlap on both cores once ASR is done."""
        import queue
        import threading

        t = time.perf_counter()
        face = self._load_face()
        q: queue.Queue[tuple[float, np.ndarray] | None] = queue.Queue(maxsize=32)
        notes: list[str] = []
        stop = threading.Event()

        def produce() -> None:
            try:
                for item in iter_frames(p, self.media_options):
                    if stop.is_set():
                        break
                    q.put(item)
            except InputError as e:
                notes.append(f"{e} (frames before it were used)")
            finally:
                q.put(None)

        producer = threading.Thread(target=produce, name="emofuse-decode", daemon=True)
        producer.start()
        times: list[float] = []
        obs: list[Any] = []
        batch: list[tuple[float, np.ndarray]] = []
        try:
            while True:
                item = q.get()
                if item is not None:
                    batch.append(item)
                if batch and (item is None or len(batch) >= 16 or q.empty()):
                    obs.extend(face.analyze_frames([img for _, img in batch]))
                    times.extend(ft for ft, _ in batch)
                    batch.clear()
                if item is None:
                    break
        finally:
            stop.set()
            while producer.is_alive():  # unblock a producer waiting on a full queue
                try:
                    q.get_nowait()
                except queue.Empty:
                    producer.join(0.05)
        return times, obs, notes, time.perf_counter() - t

    def _analyze_av(self, p: Probe, t0: float, on_progress: Progress | None) -> AnalysisResult:
        mods = self.options.modalities
        timings: dict[str, float] = {}
        notes: list[str] = list(p.notes)
        face_fut: Future[tuple[list[float], list[Any], list[str], float]] | None = None
        if p.has_video and "face" in mods:
            face_fut = self._face_pool.submit(self._faces, p)
        utts: list[Any] = []
        speech_needed = "voice" in mods or "text" in mods
        if p.has_audio and speech_needed:
            t = time.perf_counter()
            try:
                audio, anotes = decode_audio(p)
            except BaseException:
                if face_fut is not None:
                    face_fut.cancel()
                raise
            notes += anotes
            timings["decode_audio"] = time.perf_counter() - t
            t = time.perf_counter()
            utts = self._load_asr().transcribe(audio, on_progress)
            timings["asr"] = time.perf_counter() - t
            if not utts:
                notes.append("no speech detected: voice and text are absent")
        elif speech_needed:
            notes.append("no audio stream: voice and text are absent (pass --text to add words)")

        face_times: np.ndarray = np.zeros(0)
        face_obs: list[Any] = []
        if face_fut is not None:
            ft, face_obs, fnotes, timings["face"] = face_fut.result()
            face_times = np.asarray(ft)
            notes += fnotes
            if not any(o is not None for o in face_obs):
                notes.append("no face found in the sampled frames: face is absent")
            most = max((o.faces for o in face_obs if o is not None), default=0)
            if most > 1:
                notes.append(f"up to {most} faces in a frame: the largest was analysed in each ({_MULTI_FACE})")
            if len(face_times) and p.duration > 2.0 and face_times[-1] < 0.9 * p.duration - 1.0 and not fnotes:
                notes.append(f"video frames end at {face_times[-1]:.1f} s of the {p.duration:.1f} s the file "
                             "declares: it looks truncated (the frames up to there were analysed)")

        spans = [(u.start, u.end) for u in utts]
        if not spans and len(face_times) and any(o is not None for o in face_obs):
            # No speech: give a face-only timeline in fixed windows so a silent video still gets an answer.
            w = self.options.face_window
            n = max(1, int(np.ceil((p.duration or (face_times[-1] + 1e-3)) / w)))
            spans = [(i * w, min((i + 1) * w, p.duration or (i + 1) * w)) for i in range(n)]

        t = time.perf_counter()
        voice_outs: list[ExpertOutput | None] = [None] * len(utts)
        if "voice" in mods and utts:
            if self._voice_head is None:
                notes.append(f"voice is absent: no voice head for ASR model {self.options.asr_model!r} (the shipped "
                             "heads read whisper-base or whisper-tiny.en encoder states)")
            else:
                X = np.stack([u.embedding for u in utts])
                voice_outs = list(self._voice_head.predict(X))
        timings["voice"] = time.perf_counter() - t
        t = time.perf_counter()
        text_outs: list[ExpertOutput | None] = [None] * len(utts)
        feats: list[dict[str, np.ndarray]] = [{} for _ in utts]  # raw features for fusion networks
        if "text" in mods and utts:
            text_outs = list(self._run_text([u.text for u in utts], [u.language for u in utts], feats, notes))
        if "voice" in mods:
            pooled, seq = self.sources["voice"], self.sources["voice-seq"]
            for f, u in zip(feats, utts):
                if u.embedding is not None and pooled:
                    f[pooled] = u.embedding
                if u.frames is not None and seq:
                    f[seq] = u.frames
        timings["text"] = time.perf_counter() - t

        segs = []
        for i, (s, e) in enumerate(spans):
            m: dict[str, ExpertOutput] = {}
            if i < len(utts):
                if voice_outs[i] is not None:
                    m["voice"] = voice_outs[i]  # type: ignore[assignment]
            fo = self._face_in(face_times, face_obs, s, e)
            if fo is not None:
                m["face"] = fo
            if i < len(utts) and text_outs[i] is not None:
                m["text"] = text_outs[i]  # type: ignore[assignment]
            m = {k: m[k] for k in MODALITIES if k in m}
            u = utts[i] if i < len(utts) else None
            f = dict(feats[i]) if i < len(utts) else {}
            f.update(_face_features(fo))
            segs.append(Segment(s, e, u.text if u else "", u.language if u else None, m, self.fuse(m, features=f)))
        notes += self.fusion_notes
        timings["total"] = time.perf_counter() - t0
        return AnalysisResult(str(p.path), p.kind, p.duration, tuple(segs), tuple(notes), timings)

    def _face_in(self, times: np.ndarray, obs: list[Any], s: float, e: float) -> ExpertOutput | None:
        if not len(times):
            return None
        idx = np.flatnonzero((times >= s) & (times <= e))
        if not len(idx):  # a short segment between two sampled frames: take the nearest one
            j = int(np.abs(times - (s + e) / 2).argmin())
            idx = np.array([j]) if abs(times[j] - (s + e) / 2) <= 0.5 + (e - s) / 2 else idx
        sel = [obs[i] for i in idx]
        return self._face.summarize(sel) if sel else None

    def _run_text(self, texts: list[str], langs: list[str], features: list[dict[str, np.ndarray]] | None = None,
                  notes: list[str] | None = None) -> list[ExpertOutput]:
        """Text expert outputs; ``features[i]`` also receives line i's embedding under its extractor name;
        ``notes`` receives one note if some text was longer than its encoder reads."""
        outs: list[ExpertOutput | None] = [None] * len(texts)
        for key in ("en", "other"):
            idx = [i for i, lang in enumerate(langs) if (lang == "en") == (key == "en")]
            if not idx:
                continue
            enc, head = self._text_expert(key)
            own = [texts[i] for i in idx]
            X = enc.encode(own)
            cut = set(np.flatnonzero(enc.truncated(own))) if hasattr(enc, "truncated") else set()
            for n, (i, o) in enumerate(zip(idx, head.predict(X, encoder=enc.name))):
                outs[i] = o if n not in cut else replace(o, extra=dict(o.extra, truncated_to_tokens=enc.max_tokens))
            if cut and notes is not None:
                notes.append(f"{len(cut)} text segment(s) longer than {enc.max_tokens} tokens: the {enc.name} text "
                             f"expert read only the first {enc.max_tokens} (details.truncated_to_tokens; the output "
                             "keeps the whole text)")
            if features is not None:
                src = head.feature.source  # the extractor the head reads (checked when it loaded)
                for i, x in zip(idx, X):
                    features[i][src] = np.asarray(x)
        return [o for o in outs if o is not None]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._face_pool.shutdown(wait=False, cancel_futures=True)


def _checked(head: LinearHead, extractor: str) -> LinearHead:
    """A shipped head, refused unless it reads the features the analysis computes for ``extractor``."""
    from .checkpoints import check_identity

    if head.feature.source != extractor:
        raise InputError(f"shipped head for {extractor} reads {head.feature.source} features; reinstall emofuse")
    check_identity(head.feature, f"shipped head {extractor}")
    return head


def _face_features(out: ExpertOutput | None) -> dict[str, np.ndarray]:
    from .extractors import for_analysis
    from .taxonomy import EMOTIONS

    return {} if out is None else {for_analysis("face") or "": np.array([out.probs[e] for e in EMOTIONS],
                                                                         dtype=np.float32)}


def _background_priority() -> None:
    """Lower this thread's CPU priority (Linux: per-thread nice); threads it starts inherit it."""
    import os
    import threading

    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        pass  # not Linux, or not allowed: faces then simply share the CPU


_DEFAULT: dict[AnalyzerOptions, Analyzer] = {}


def analyze(source: str | Path | None = None, *, text: str | Sequence[str] | None = None,
            options: AnalyzerOptions | None = None, **kwargs: Any) -> AnalysisResult:
    """One call: ``analyze("clip.mp4")`` or ``analyze(text="I can't believe it!")``.

    ``kwargs`` are AnalyzerOptions fields. The analyzer is cached per options, so repeated calls
    do not reload models."""
    if (source is None) == (text is None):
        raise InputError("pass either a media path or text=..., not both or neither")
    if source is not None and not isinstance(source, (str, os.PathLike)):
        raise InputError(f"analyze() takes a file path (str or pathlib.Path), not {type(source).__name__}; "
                         "for text use analyze(text=...)")
    if options is None:
        import dataclasses

        known = {f.name for f in dataclasses.fields(AnalyzerOptions)}
        bad = sorted(set(kwargs) - known)
        if bad:
            raise InputError(f"analyze() got unknown option(s) {bad}; AnalyzerOptions fields: {', '.join(sorted(known))}")
    opts = options or AnalyzerOptions(**kwargs)
    if opts not in _DEFAULT:
        _DEFAULT[opts] = Analyzer(opts)
    a = _DEFAULT[opts]
    if text is not None:
        return a.analyze_text(text)
    return a.analyze(source)  # type: ignore[arg-type]
