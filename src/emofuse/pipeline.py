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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .errors import EmofuseError, InputError
from .experts import ExpertOutput, LinearHead, shipped_head
from .media import SAMPLE_RATE, MediaOptions, Probe, decode_audio, decode_image, iter_frames, probe
from .result import MODALITIES, AnalysisError, AnalysisResult, Segment, Transcript

Progress = Callable[[float], None]
PACK_MAX_S = 20.0  # recordings at most this long share ASR windows in iter_analyze / analyze_many
PACK_HOLD = 64  # at most this many recordings are held back for one shared transcription
PACK_HOLD_S = 120.0  # ... and at most this much audio (four windows: only a group's last one is part-filled)


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
    threads: int = 2  # CPU threads for ASR and the face network
    asr_streams: int = 2  # Whisper windows decoded at once (see ASROptions.streams)
    # ... while a video's faces are analysed beside ASR: the face thread fills what one stream leaves idle
    asr_streams_beside_faces: int = 1
    # fusion: a rule of segment_fusion.RULES ("confidence"), or a network of emofuse.networks.NETWORKS given
    # with its trained checkpoint; None = "confidence", or the network the checkpoint holds
    fusion: str | None = None
    checkpoint: str | None = None  # trained fusion network (.safetensors, or its exported .onnx); needed for any network
    # transcripts scoring below this (emofuse.asr_quality, 0..1) are shown but not read by the text expert;
    # None = the shipped quality model's threshold
    min_text_quality: float | None = None
    # seconds per Whisper window (ASROptions.window): 30 (Whisper's own) or 10, which the voice heads
    # voice-<model>-w10 were trained on; 10 s makes a lone utterance 2-3x cheaper (the live mode's default)
    asr_window: float = 30.0

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
        for name in ("beam_size", "threads", "asr_streams", "asr_streams_beside_faces", "max_image_pixels"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{name} must be an integer >= 1, not {v!r}")
        from .asr import ASROptions, check_language, check_model

        ASROptions(min_quality=self.min_text_quality, window=self.asr_window)  # the one place that checks them

        if "voice" in self.modalities or "text" in self.modalities:
            check_model(self.asr_model)
        if "voice" in self.modalities:
            check_window(self.asr_model, self.asr_window)
        if self.language is not None:
            check_language(self.language)
            if self.asr_model.endswith(".en") and self.language != "en":
                raise InputError(f"--asr-model {self.asr_model} is English-only, so --language {self.language} cannot be "
                                 "honoured; use whisper-base for other languages, or leave --language out")


def voice_source(asr_model: str, window: float = 30.0) -> str | None:
    """The registered extractor the analysis computes for the voice with this ASR model and window (its shipped
    head is named after it), or None (a user's own Whisper)."""
    from .extractors import for_analysis

    return for_analysis("voice", asr_model=asr_model, span="speech", window_s=float(window))


def check_window(asr_model: str, window: float) -> None:
    """InputError unless a voice head was trained on ``window`` s windows of ``asr_model`` (a user's own Whisper
    has none on any window: its voice is noted absent per input)."""
    from .extractors import EXTRACTORS

    known = {e.config.asr_model for e in EXTRACTORS.values() if e.modality == "voice"}
    if asr_model in known and voice_source(asr_model, window) is None:
        have = sorted({e.config.window_s for e in EXTRACTORS.values() if e.modality == "voice"
                       and e.analysis and getattr(e.config, "asr_model", None) == asr_model})
        raise InputError(f"no voice head was trained on {window:g} s windows of {asr_model}: "
                         f"use --asr-window {' or '.join(f'{w:g}' for w in have)}, or leave voice out")


# The text encoder per script (emofuse.features.text.ENCODERS); the shipped head of each reads its extractor.
TEXT_ENCODERS = {"en": "minilm-l6-emo", "other": "e5-small"}

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
            "voice": voice_source(options.asr_model, options.asr_window),
            "voice-seq": for_analysis("voice", asr_model=options.asr_model, sequence=True,
                                      window_s=float(options.asr_window)),
            "text-en": for_analysis("text", encoder=TEXT_ENCODERS["en"]),
            "text-other": for_analysis("text", encoder=TEXT_ENCODERS["other"])}
        # A rule, or a trained network whose inputs come from the features computed below (segment_fusion.pipeline_sources()).
        self.fuse: Any = segment_fusion.build(
            options.fusion or ("poe" if options.checkpoint is None else None), options.checkpoint,
            segment_fusion.supplied_sources(options.modalities, options.asr_model, options.asr_window))
        self.fusion_notes: tuple[str, ...] = tuple(getattr(self.fuse, "notes", ()))
        self._asr: Any = None
        self._face: Any = None
        self._voice_heads: dict[float, LinearHead | None] = {}  # by ASR window (the live mode asks for its own)
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
                                              beam_size=self.options.beam_size, threads=self.options.threads,
                                              streams=max(self.options.asr_streams, self.options.asr_streams_beside_faces),
                                              min_quality=self.options.min_text_quality, window=self.options.asr_window))
            if "voice" in self.options.modalities:
                self.voice_head(self.options.asr_window)
        return self._asr

    def voice_head(self, window: float) -> LinearHead | None:
        """The shipped head for this analyzer's ASR model on ``window`` s windows (loaded once), or None for a
        user's own Whisper: no head was trained on its encoder (noted per input)."""
        if window not in self._voice_heads:
            src = voice_source(self.options.asr_model, window)
            # a shipped head is named after the extractor it reads
            self._voice_heads[window] = None if src is None else _checked(shipped_head(src), src)
        return self._voice_heads[window]

    def _load_face(self) -> Any:
        if self._face is None:
            from .features.face import FaceAnalyzer, FaceOptions

            self._face = FaceAnalyzer(FaceOptions(threads=self.options.threads))
        return self._face

    def _text_expert(self, lang: str) -> tuple[Any, LinearHead]:
        key = TEXT_ENCODERS["en" if lang == "en" else "other"]
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
        w = self._begin_av(p, t0)
        self._transcribe([w], on_progress)
        return self._finish_av(w)

    def analyze_text(self, lines: str | Sequence[str], name: str = "<text>") -> AnalysisResult:
        """Analyse text: one segment per line (a string is split on newlines). A blank line keeps its segment,
        without an answer, and a note names it, so segment i is always line i."""
        if "text" not in self.options.modalities:
            raise InputError("text input needs the text modality; add 'text' to --modalities")
        if isinstance(lines, (bytes, bytearray)):
            raise InputError(f"{name}: text must be str, not bytes; decode it first (e.g. data.decode('utf-8'))")
        if not isinstance(lines, str) and not (isinstance(lines, Sequence) and all(isinstance(x, str) for x in lines)):
            raise InputError(f"{name}: text must be a str or a list of str, not {type(lines).__name__}")
        lines_ = [s.strip() for s in (lines.splitlines() if isinstance(lines, str) else lines)]
        items = [s for s in lines_ if s]
        if not items:
            raise InputError(f"{name}: no text to analyse (empty or blank lines only)")
        t0 = time.perf_counter()
        langs = [self.options.language or script_language(s) for s in items]
        emb: list[dict[str, np.ndarray]] = [{} for _ in items]
        notes: list[str] = []
        outs = iter(zip(items, langs, self._run_text(items, langs, emb, notes), emb))
        segs = []
        for line in lines_:
            if line:
                text, lang, o, f = next(outs)
                segs.append(Segment(0.0, 0.0, text, lang, {"text": o}, self.fuse({"text": o}, features=f)))
            else:
                segs.append(Segment(0.0, 0.0, "", None, {}, None))
        if blank := [i + 1 for i, line in enumerate(lines_) if not line]:
            shown = ", ".join(map(str, blank[:10])) + (f" and {len(blank) - 10} more" if len(blank) > 10 else "")
            notes.insert(0, f"{len(blank)} blank line(s) (line {shown}): their segments are kept, without an answer")
        return AnalysisResult(name, "text", 0.0, tuple(segs), tuple(notes) + self.fusion_notes,
                              {"total": time.perf_counter() - t0})

    def analyze_samples(self, audio: np.ndarray, face_times: Sequence[float] = (), face_obs: Sequence[Any] = (),
                        name: str = "<samples>", asr_window: float | None = None) -> AnalysisResult:
        """Analyse audio already in memory (16 kHz mono float, e.g. a live utterance) with the face observations
        of frames seen meanwhile (``FaceAnalyzer.analyze_frames``; times in seconds from the audio's start):
        the same stages and segments as a file. ``asr_window``: seconds per Whisper window for this call
        (default the options'; the live mode's 10 s), its voice head read with it. Raises InputError on audio
        that cannot be used."""
        a = np.asarray(audio)
        if a.ndim != 1 or not len(a) or a.dtype.kind != "f" or not np.isfinite(a).all():
            raise InputError(f"{name}: audio must be a non-empty 1-D float array of 16 kHz samples with finite values, "
                             f"not {a.dtype} of shape {a.shape}")
        if len(face_times) != len(face_obs):
            raise InputError(f"{name}: {len(face_times)} face times for {len(face_obs)} face observations")
        faces = "face" in self.options.modalities and len(face_obs) > 0
        p = Probe(Path(name), "video" if faces else "audio", len(a) / SAMPLE_RATE, True, faces)
        w = _Pending(p, time.perf_counter())
        if asr_window is not None and asr_window != self.options.asr_window:
            if "voice" in self.options.modalities:
                check_window(self.options.asr_model, asr_window)
            w.window = float(asr_window)
        w.audio = a.astype(np.float32, copy=False)
        if faces:
            done: Future[tuple[list[float], list[Any], list[str], float]] = Future()
            done.set_result((list(face_times), list(face_obs), [], 0.0))
            w.face = done
        if "voice" in self.options.modalities or "text" in self.options.modalities:
            self._transcribe([w])
        return self._finish_av(w)

    def analyze_many(self, sources: Sequence[str | Path]) -> list[AnalysisResult | AnalysisError]:
        """Analyse several inputs; a bad one yields an AnalysisError and the rest go on. Short recordings
        share ASR windows (see :meth:`iter_analyze`)."""
        return list(self.iter_analyze(sources))

    def iter_analyze(self, sources: Iterable[str | Path], on_progress: Callable[[str, float], None] | None = None
                     ) -> Iterator[AnalysisResult | AnalysisError]:
        """Results in input order, each as soon as it and those before it are done; a bad input yields an
        AnalysisError and the rest go on.

        Recordings of at most PACK_MAX_S seconds are held back (at most PACK_HOLD of them or PACK_HOLD_S
        seconds of audio) and transcribed together, their speech packed into shared Whisper windows: a 3 s
        clip then costs about a tenth of a window instead of a whole one. Longer recordings are analysed
        alone, ``on_progress(input, fraction)`` reporting how far ASR got."""
        if isinstance(sources, (str, os.PathLike)):
            raise InputError("analyze_many takes a list of paths; for one file use analyze(path)")
        slots: list[AnalysisResult | AnalysisError | _Pending] = []
        held: list[_Pending] = []

        def flush() -> Iterator[AnalysisResult | AnalysisError]:
            self._transcribe_guarded(held)
            held.clear()
            for x in slots:
                if not isinstance(x, _Pending):
                    yield x
                elif x.error is not None:
                    if x.face is not None:
                        x.face.cancel()
                    yield x.error
                else:
                    yield self._guarded(x.probe.path, lambda x=x: self._finish_av(x))
            slots.clear()

        for source in sources:
            t0 = time.perf_counter()
            try:
                p = probe(source, self.media_options)
                if p.kind == "image":
                    slots.append(self._guarded(source, lambda: self._analyze_image(p, t0)))
                    if not held:
                        yield from flush()
                    continue
                if p.duration > PACK_MAX_S or not p.has_audio:
                    yield from flush()
                    w = self._begin_av(p, t0)
                    self._transcribe([w], None if on_progress is None else lambda f, s=str(source): on_progress(s, f))
                    yield self._finish_av(w)
                    continue
                w = self._begin_av(p, t0)
            except Exception as e:  # noqa: BLE001 - one input's failure is its own result
                slots.append(_error(source, e))
                if not held:
                    yield from flush()
                continue
            held.append(w)
            slots.append(w)
            if len(held) >= PACK_HOLD or sum(x.probe.duration for x in held) >= PACK_HOLD_S:
                yield from flush()
        yield from flush()

    def _transcribe_guarded(self, group: list[_Pending]) -> None:
        """Transcribe a group together; if that fails, each input alone, so that a failure costs one input."""
        try:
            self._transcribe(group)
            return
        except Exception:  # noqa: BLE001 - find the input that fails
            pass
        for w in group:
            try:
                self._transcribe([w])
            except Exception as e:  # noqa: BLE001
                w.error = _error(w.probe.path, e)

    def _guarded(self, source: str | Path, run: Callable[[], AnalysisResult]) -> AnalysisResult | AnalysisError:
        try:
            return run()
        except Exception as e:  # noqa: BLE001 - one input's failure is its own result
            return _error(source, e)

    def safe_analyze(self, source: str | Path, on_progress: Progress | None = None) -> AnalysisResult | AnalysisError:
        return self._guarded(source, lambda: self.analyze(source, on_progress))

    # -- stages -------------------------------------------------------------------------------------
    def _analyze_image(self, p: Probe, t0: float) -> AnalysisResult:
        if "face" not in self.options.modalities:
            raise InputError(f"{p.path}: an image has only a face to analyse; add 'face' to --modalities")
        # on the face thread: held videos of iter_analyze may be running their faces there, and the LiteRT
        # interpreter serves one caller at a time
        obs = self._face_pool.submit(lambda: self._load_face().analyze_image(decode_image(p))).result()
        if obs is None:
            raise InputError(f"{p.path}: no face found; pass a photo with a visible, roughly frontal face "
                             "(or a tight face crop)")
        out = self._face.summarize([obs])
        seg = Segment(0.0, 0.0, "", None, {"face": out}, self.fuse({"face": out}, features=_face_features(out)))
        notes = p.notes + (("the whole image was used as the face (no detection; looks like a face crop)",)
                           if obs.mode == "whole-image" else ())
        if obs.faces > 1:
            notes += (f"{obs.faces} faces found: the largest is modalities.face; details.faces gives each classified "
                      "face (box, probabilities)" + (f", {obs.faces - len(obs.seen)} too small to classify"
                                                     if obs.faces > len(obs.seen) else ""),)
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

    def _begin_av(self, p: Probe, t0: float) -> _Pending:
        """Start the face analysis of a video (on its own thread) and decode the audio ASR needs."""
        w = _Pending(p, t0)
        w.notes += p.notes
        if p.has_video and "face" in self.options.modalities:
            w.face = self._face_pool.submit(self._faces, p)
        speech_needed = "voice" in self.options.modalities or "text" in self.options.modalities
        if p.has_audio and speech_needed:
            t = time.perf_counter()
            try:
                w.audio, anotes = decode_audio(p)
            except BaseException:
                if w.face is not None:
                    w.face.cancel()
                raise
            w.notes += anotes
            w.timings["decode_audio"] = time.perf_counter() - t
        elif speech_needed:
            w.notes.append("no audio stream: voice and text are absent (pass --text to add words)")
        return w

    def _transcribe(self, group: Sequence[_Pending], on_progress: Progress | None = None) -> None:
        """ASR for the inputs of ``group`` that have audio, in shared windows (see WhisperASR.transcribe_many);
        each input's share of the time by its length."""
        todo = [w for w in group if w.audio is not None]
        if not todo:
            return
        t = time.perf_counter()
        # a face job running beside ASR fills the cores one decode stream leaves idle; two streams would only
        # take them from it (benchmarks/pipeline.py --streams-beside-faces measures both)
        faces = any(w.face is not None and not w.face.done() for w in group)
        streams = self.options.asr_streams_beside_faces if faces else None
        window = todo[0].window  # a group shares its windows: one length (analyze_samples groups one input)
        utts = self._load_asr().transcribe_many([w.audio for w in todo], on_progress, streams, window)  # type: ignore[misc]
        spent = time.perf_counter() - t
        total = sum(len(w.audio) for w in todo) or 1  # type: ignore[arg-type]
        for w, u in zip(todo, utts):
            w.utts = u
            w.timings["asr"] = spent * len(w.audio) / total  # type: ignore[arg-type]
            if len(todo) > 1:
                w.timings["asr_shared_by"] = len(todo)
            if not u:
                w.notes.append("no speech detected: voice and text are absent")

    def _finish_av(self, w: _Pending) -> AnalysisResult:
        mods = self.options.modalities
        p, utts, notes, timings = w.probe, w.utts, w.notes, w.timings
        face_times: np.ndarray = np.zeros(0)
        face_obs: list[Any] = []
        if w.face is not None:
            from .features.face import track_faces

            ft, face_obs, fnotes, timings["face"] = w.face.result()
            face_times = np.asarray(ft)
            face_obs = track_faces(face_times, face_obs)
            notes += fnotes
            if not any(o is not None for o in face_obs):
                notes.append("no face found in the sampled frames: face is absent")
            frames_of: dict[int, int] = {}
            for o in face_obs:
                for f in (o.seen if o is not None else ()):
                    frames_of[f.track] = frames_of.get(f.track, 0) + 1
            if (people := sum(n >= 2 for n in frames_of.values())) > 1:  # a one-frame track is most likely noise
                most = max((o.faces for o in face_obs if o is not None), default=0)
                notes.append(f"{people} face tracks (people) in view, up to {most} faces in a frame: each segment "
                             "reads the face most present during it (details.track, details.tracks)")
            if len(face_times) and p.duration > 2.0 and face_times[-1] < 0.9 * p.duration - 1.0 and not fnotes:
                notes.append(f"video frames end at {face_times[-1]:.1f} s of the {p.duration:.1f} s the file "
                             "declares: it looks truncated (the frames up to there were analysed)")

        spans = [(u.start, u.end) for u in utts]
        if not spans and len(face_times) and any(o is not None for o in face_obs):
            # No speech: give a face-only timeline in fixed windows so a silent video still gets an answer.
            fw = self.options.face_window
            n = max(1, int(np.ceil((p.duration or (face_times[-1] + 1e-3)) / fw)))
            spans = [(i * fw, min((i + 1) * fw, p.duration or (i + 1) * fw)) for i in range(n)]

        t = time.perf_counter()
        voice_outs: list[ExpertOutput | None] = [None] * len(utts)
        window = w.window or self.options.asr_window
        head = self.voice_head(window) if "voice" in mods else None
        if "voice" in mods and utts:
            if head is None:
                notes.append(f"voice is absent: no voice head for ASR model {self.options.asr_model!r} (the shipped "
                             "heads read whisper-base or whisper-tiny.en encoder states)")
            else:
                X = np.stack([u.embedding for u in utts])
                # the speech seconds go with each answer: the poe fusion rule weighs a short utterance less
                voice_outs = [replace(o, extra=dict(o.extra, seconds=round(u.end - u.start, 3)))
                              for o, u in zip(head.predict(X), utts)]
        timings["voice"] = time.perf_counter() - t
        t = time.perf_counter()
        text_outs: list[ExpertOutput | None] = [None] * len(utts)
        feats: list[dict[str, np.ndarray]] = [{} for _ in utts]  # raw features for fusion networks
        if "text" in mods and utts:
            # only text that the quality score trusts is read and fused; the rest is shown, marked unreliable
            use = [i for i, u in enumerate(utts) if u.text and u.reliable]
            if use:  # the feature dicts are shared: _run_text fills feats[i]
                outs = self._run_text([utts[i].text for i in use], [utts[i].language for i in use],
                                      [feats[i] for i in use], notes)
                for i, o in zip(use, outs):  # the transcript's quality goes with the answer (the poe rule reads it)
                    q = utts[i].quality
                    text_outs[i] = o if q is None else replace(o, extra=dict(o.extra, quality=round(float(q), 3)))
            shaky = sum(1 for u in utts if u.text and not u.reliable)
            if shaky:
                notes.append(f"{shaky} segment(s) with an unreliable transcript (quality below "
                             f"{self._load_asr().threshold:.2f}): their text is shown but the text expert and fusion "
                             "left it out (segments[].transcript)")
        silent = sum(1 for u in utts if u.source == "vad" and not u.text)
        if silent and ("text" in mods or "voice" in mods):
            notes.append(f"{silent} stretch(es) of speech without a transcript: their segments come from voice "
                         "activity detection and carry voice (and face) only")
        if "voice" in mods and window == self.options.asr_window:  # a network was trained on the options' window
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
            tr = Transcript(u.quality, u.reliable, u.source) if u is not None else None
            segs.append(Segment(s, e, u.text if u else "", u.language if u else None, m, self.fuse(m, features=f), tr))
        notes += self.fusion_notes
        timings["total"] = time.perf_counter() - w.t0
        return AnalysisResult(str(p.path), p.kind, p.duration, tuple(segs), tuple(notes), timings)

    def _face_in(self, times: np.ndarray, obs: list[Any], s: float, e: float) -> ExpertOutput | None:
        if not len(times):
            return None
        idx = np.flatnonzero((times >= s) & (times <= e))
        if not len(idx):  # a short segment between two sampled frames: take the nearest one
            j = int(np.abs(times - (s + e) / 2).argmin())
            idx = np.array([j]) if abs(times[j] - (s + e) / 2) <= 0.5 + (e - s) / 2 else idx
        sel = [obs[i] for i in idx]
        return self._face.summarize(sel, tracked=True) if sel else None

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
            win = enc.windows(own) if hasattr(enc, "windows") else [1] * len(own)
            for n, i in enumerate(idx):
                if win[n] > 1:
                    outs[i] = replace(outs[i], extra=dict(outs[i].extra, windows=win[n]))  # type: ignore[arg-type]
            if (k := sum(w > 1 for w in win)) and notes is not None:
                notes.append(f"{k} text segment(s) longer than {enc.max_tokens} tokens: the {enc.name} text expert read "
                             f"each in windows of {enc.max_tokens} tokens and averaged them (details.windows)")
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


@dataclass
class _Pending:
    """A recording between decoding and its result: faces may still run, ASR may be pending."""

    probe: Probe
    t0: float
    face: Future[tuple[list[float], list[Any], list[str], float]] | None = None
    audio: np.ndarray | None = None
    utts: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    error: AnalysisError | None = None  # ASR failed for this input
    window: float | None = None  # seconds per ASR window, when not the options' (analyze_samples)


def _error(source: str | Path, e: BaseException) -> AnalysisError:
    if isinstance(e, EmofuseError):
        return AnalysisError(str(source), str(e), type(e).__name__)
    # a library failure on one input must not cost the batch
    return AnalysisError(str(source), f"{source}: unexpected {type(e).__name__}: {e}", "InternalError")


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
