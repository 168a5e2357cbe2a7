"""The live engine: audio and video frames arrive as they are captured; events leave as soon as they are known.

A :class:`LiveSession` turns a stream into events, the same ones over the WebSocket (``emofuse serve``,
``/v1/live``) and in the terminal (``emofuse live``):

* ``face`` — one per processed frame: the faces found (box, probabilities) and the main one's label; frames
  come faster than they are read only as far as ``max_fps`` allows, the newest winning (the caller keeps one
  frame slot, never a queue);
* ``partial`` — while someone speaks, the words so far (at most every ``partial_every`` s, only when the speech
  thread is idle, so that partials never delay an utterance);
* ``utterance`` — when voice-activity detection sees ``min_silence`` s of silence after speech (or the speech
  runs past ``max_utterance`` s): the utterance's audio and the faces seen meanwhile go through
  :meth:`Analyzer.analyze_samples`, the same stages as a file; the event carries that segment's block
  (``segment``: times on the stream's clock, text, language, per-modality probabilities, fused label,
  valence/arousal; ``closed``: ``pause``, ``max_utterance`` or ``stream_end``; ``early``: whether it was
  analysed while the pause ran). With ``speculate`` the analysis starts once ``pad`` s of the pause have passed
  (after VAD's own 30 ms of padding; skipped when another stream holds the speech models), and its result
  waits for the rest of ``min_silence`` (sent) or for the speech to go on (dropped): the same answer, sooner.

:func:`replay` feeds a recording through a session (at real time or as fast as it goes): ``emofuse live
--from FILE``, the tests and ``benchmarks/live.py`` use it. :func:`capture` feeds it from capture devices
opened by PyAV (``alsa:default``, ``pulse:default``, ``v4l2:/dev/video0``, ``avfoundation:0``, ``dshow:...``;
``lavfi:`` sources stand in for them in the tests): ``emofuse live --mic ... --camera ...``.

Memory is bounded: the open audio is at most ``max_utterance`` s plus what arrives while an utterance is being
analysed (a stream analysed slower than real time loses its oldest audio, with a ``dropped`` event); the faces
kept are those of the last ``max_utterance`` s. Stream time is the audio clock (samples received / rate); a
frame is stamped with the stream time at which it arrived.

Threads: ``push_audio`` is cheap (the caller's thread); ``step`` (VAD, partials, utterances) and
``push_frame`` (the face expert) may run on two other threads at once. Sessions on one analyzer share its
models through :class:`LiveEngine`'s two locks (speech and face), as a file's analysis overlaps the two.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError
from .media import SAMPLE_RATE

__all__ = ["LiveEngine", "LiveOptions", "LiveSession", "capture", "replay"]


@dataclass(frozen=True)
class LiveOptions:
    sample_rate: int = SAMPLE_RATE  # of the PCM16 mono the client sends (resampled to 16 kHz)
    min_silence: float = 0.4  # s of silence after speech that closes an utterance
    max_utterance: float = 15.0  # s; longer speech is cut into utterances of this length
    pad: float = 0.2  # s of audio kept around the speech handed to the analysis
    partials: bool = True
    partial_every: float = 1.0  # s between partial transcripts of the open utterance
    # analyse an utterance as soon as its speech has been followed by ``pad`` s of silence, while the rest of
    # ``min_silence`` is still awaited: the result is sent the moment the pause is long enough, or dropped when
    # the speech goes on (the same audio either way, so the same answer; costs the compute of the pauses that
    # turn out shorter than ``min_silence``)
    speculate: bool = True
    max_fps: float = 10.0  # face frames processed per second at most
    vad_every: float = 0.1  # s of new audio between two voice-activity checks
    # seconds per Whisper window for the utterances and partials: a lone 3 s utterance padded to 10 s instead of 30
    # costs a third of the encoder (benchmarks/live.py: utterance events 2-3x sooner), read by the voice head
    # trained on 10 s windows; a few points weaker than 30 s (weights/voice.md). None: the analyzer's own window
    asr_window: float | None = 10.0

    def __post_init__(self) -> None:
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int) or \
                not 8000 <= self.sample_rate <= 48000:
            raise InputError(f"sample_rate must be an integer from 8000 to 48000 Hz, not {self.sample_rate!r}")
        for name in ("min_silence", "max_utterance", "partial_every", "max_fps", "vad_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise InputError(f"{name} must be a positive number, not {v!r}")
        if not 0 <= self.pad <= 1:
            raise InputError(f"pad must be between 0 and 1 s, not {self.pad!r}")
        if self.asr_window is not None:
            from .asr import check_window_seconds

            check_window_seconds(self.asr_window, "asr_window")
        if self.max_utterance < 1:
            raise InputError(f"max_utterance must be at least 1 s, not {self.max_utterance!r}")


class LiveEngine:
    """An analyzer shared by live sessions: its speech models and its face models each serve one at a time."""

    def __init__(self, analyzer: Any) -> None:
        self.analyzer = analyzer
        self.speech_lock = threading.Lock()
        self.face_lock = threading.Lock()

    def session(self, options: LiveOptions = LiveOptions()) -> "LiveSession":
        return LiveSession(self, options)


class LiveSession:
    """One stream's state; see the module docstring for the events."""

    def __init__(self, engine: LiveEngine, options: LiveOptions = LiveOptions()) -> None:
        from .pipeline import check_window
        from .segment_fusion import NetworkFusion

        self.engine, self.options = engine, options
        self.modalities = engine.analyzer.options.modalities
        aopts = engine.analyzer.options
        # a fusion network was trained on the features of the analyzer's own window: it keeps that one
        self.asr_window = aopts.asr_window if options.asr_window is None or \
            isinstance(engine.analyzer.fuse, NetworkFusion) else float(options.asr_window)
        if "voice" in self.modalities:
            check_window(aopts.asr_model, self.asr_window)
        self._lock = threading.Lock()  # guards the audio buffer between push_audio and step
        self._buf = np.zeros(0, np.float32)  # the open audio (16 kHz)
        self._buf_start = 0  # its first sample's index on the stream clock
        self._received = 0  # 16 kHz samples received in all
        self._checked = 0  # buffer length at the last VAD check
        self._last_partial = 0.0
        self._partial_text = ""
        self._faces: deque[tuple[float, Any]] = deque()  # (stream time, FaceObservation | None)
        self._last_frame = -1e9  # stream time of the last frame processed
        self._born = time.monotonic()
        self.dropped_frames = 0
        # compute seconds per thread (speech and faces run side by side): each below the stream's length keeps up
        # early: utterances analysed while their pause ran (speculate); early_used: of those, the ones sent
        self.stats = {"utterances": 0, "partials": 0, "frames": 0, "speech_seconds": 0.0, "speech_compute": 0.0,
                      "face_compute": 0.0, "early": 0, "early_used": 0}
        # ((first sample, last sample, face times), result, seconds) of the speculative analysis
        self._early: tuple[tuple[int, int, tuple[float, ...]], Any, float] | None = None

    @property
    def now(self) -> float:
        """Stream time, seconds: the audio received so far."""
        return self._received / SAMPLE_RATE

    # -- input ------------------------------------------------------------------------------------------------
    def push_audio(self, pcm16: bytes) -> list[dict[str, Any]]:
        """Little-endian 16-bit mono samples at ``options.sample_rate``; returns events (a ``dropped`` one when
        the open audio had to lose its oldest part)."""
        if len(pcm16) % 2:
            raise InputError(f"an audio frame of {len(pcm16)} bytes is not whole 16-bit samples")
        x = np.frombuffer(pcm16, "<i2").astype(np.float32) / 32768.0
        if self.options.sample_rate != SAMPLE_RATE and len(x):
            n = int(round(len(x) * SAMPLE_RATE / self.options.sample_rate))
            x = np.interp(np.arange(n) * (self.options.sample_rate / SAMPLE_RATE), np.arange(len(x)), x).astype(np.float32)
        events: list[dict[str, Any]] = []
        with self._lock:
            self._buf = np.concatenate([self._buf, x])
            self._received += len(x)
            cap = int(2 * self.options.max_utterance * SAMPLE_RATE)
            if len(self._buf) > cap:  # analysis slower than the stream: keep the newest audio
                cut = len(self._buf) - cap
                self._buf, self._buf_start = self._buf[cut:], self._buf_start + cut
                self._checked = max(0, self._checked - cut)
                events.append({"type": "dropped", "seconds": round(cut / SAMPLE_RATE, 3),
                               "detail": "audio arrived faster than it could be analysed; the oldest part was dropped"})
        return events

    def push_frame(self, image: bytes | np.ndarray, t: float | None = None) -> dict[str, Any] | None:
        """A JPEG/PNG frame (bytes) or an RGB array, stamped ``t`` (default: now on the stream clock); returns its
        ``face`` event, or None when it came sooner than ``max_fps`` allows (counted in ``dropped_frames``)."""
        if "face" not in self.modalities:
            return None
        if t is None:  # the stream clock; before any audio (a video-only stream), the time since the start
            t = self.now if self._received else time.monotonic() - self._born
        t = float(t)
        if t - self._last_frame < 1.0 / self.options.max_fps - 1e-3:
            self.dropped_frames += 1
            return None
        self._last_frame = t
        rgb = decode_frame(image) if isinstance(image, (bytes, bytearray, memoryview)) else np.asarray(image)
        t0 = time.perf_counter()
        with self.engine.face_lock:
            face = self.engine.analyzer._load_face()
            obs = face.analyze_frames([rgb])[0]
        spent = time.perf_counter() - t0
        self.stats["frames"] += 1
        self.stats["face_compute"] += spent
        self._faces.append((t, obs))
        while self._faces and self._faces[0][0] < t - self.options.max_utterance - 5:
            self._faces.popleft()
        ev: dict[str, Any] = {"type": "face", "t": round(t, 3), "faces": [], "ms": round(spent * 1e3, 1)}
        if obs is not None:
            from .taxonomy import EMOTIONS

            ev |= {"faces": [f.to_dict() for f in obs.seen], "box": list(obs.box), "label": obs.label,
                   "probs": {e: round(float(p), 4) for e, p in zip(EMOTIONS, obs.probs)}}
        return ev

    # -- speech -----------------------------------------------------------------------------------------------
    def step(self, final: bool = False) -> list[dict[str, Any]]:
        """Look at the audio that arrived since the last step: close every utterance whose speech ended, else
        give a partial transcript. ``final``: the stream ended, so close whatever speech is open too."""
        if not ({"voice", "text"} & set(self.modalities)):
            return []
        events: list[dict[str, Any]] = []
        while True:
            got = self._step_once(final)
            events += got
            if not any(e["type"] == "utterance" for e in got):
                return events

    def _step_once(self, final: bool) -> list[dict[str, Any]]:
        with self._lock:
            buf, start = self._buf, self._buf_start
        if not final and len(buf) - self._checked < self.options.vad_every * SAMPLE_RATE:
            return []
        self._checked = len(buf)
        if not len(buf):
            return []
        chunks = self._speech(buf)
        sr, o = SAMPLE_RATE, self.options
        if not chunks:
            keep = int(o.pad * sr)
            self._trim(start, max(0, len(buf) - keep))  # silence: only a little pre-roll is kept
            return []
        first = chunks[0]["start"]
        # VAD splits speech at pauses of at least min_silence: a chunk followed by another one, or by that much
        # silence, is a whole utterance (a step may come late, after the next one began: it is not missed)
        closed = "pause"
        if len(chunks) > 1 or len(buf) - chunks[0]["end"] >= o.min_silence * sr:
            end = chunks[0]["end"] if len(chunks) > 1 else chunks[-1]["end"]
        elif final:
            end, closed = chunks[-1]["end"], "stream_end"
        elif len(buf) - first >= o.max_utterance * sr:
            end, closed = len(buf), "max_utterance"
        else:
            end = 0
        if end:
            return self._utterance(buf, start, max(0, first - int(o.pad * sr)), min(len(buf), end + int(o.pad * sr)),
                                   end, closed)
        trailing = len(buf) - chunks[-1]["end"]  # > 0: a pause began (~0.07 s at least); the speech may be ending
        if o.speculate and trailing > 0 and trailing >= o.pad * sr:  # its audio is all here: analyse it while we wait
            s, e = max(0, first - int(o.pad * sr)), chunks[-1]["end"] + int(o.pad * sr)
            key = (start + s, start + e, self._frame_times(start, s, e))
            if (self._early is None or self._early[0] != key) and self.engine.speech_lock.acquire(blocking=False):
                try:  # never wait behind another stream for a guess: it is analysed when it closes instead
                    self._early = (key, *self._analyse(buf, start, s, e, locked=True))
                finally:
                    self.engine.speech_lock.release()
                self.stats["early"] += 1
            return []
        if o.partials and "text" in self.modalities and not trailing and \
                time.monotonic() - self._last_partial >= o.partial_every:
            return self._partial(buf, start, first)
        return []

    def finish(self) -> list[dict[str, Any]]:
        """The stream ended: the open utterance, if any, is analysed now."""
        return self.step(final=True)

    def _speech(self, buf: np.ndarray) -> list[dict[str, int]]:
        """Speech chunks split at pauses of ``min_silence`` s. VAD splits at pauses of 0.1 s and the chunks closer
        than ``min_silence`` are joined again: about the same chunks as VAD run at ``min_silence`` (it may split a
        few 32 ms windows sooner where the pause ends in windows between its two thresholds), and a last chunk
        that is closed once 0.1 s of silence followed it (VAD at ``min_silence`` would report it open until
        then), so that a pause is seen as it begins: no partial is started in it, and the speculative analysis
        can start once ``pad`` s of it have passed."""
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        if len(buf) < 512:
            return []
        o, pad = self.options, 30
        split = min(o.min_silence, 0.1)
        raw = get_speech_timestamps(buf, VadOptions(min_silence_duration_ms=int(split * 1000), speech_pad_ms=pad))
        chunks: list[dict[str, int]] = []
        # joined unless the pause (padded gap + both pads) less one 512-sample VAD window reaches min_silence: where
        # VAD run at min_silence splits
        for c in raw:
            if chunks and c["start"] - chunks[-1]["end"] + 2 * pad * 16 - 512 < o.min_silence * SAMPLE_RATE:
                chunks[-1] = {"start": chunks[-1]["start"], "end": c["end"]}
            else:
                chunks.append(dict(c))
        return chunks

    def _trim(self, start: int, cut: int) -> None:
        """Drop the first ``cut`` samples of the buffer that began at ``start`` (audio may have arrived since)."""
        with self._lock:
            drop = start + cut - self._buf_start
            if drop > 0:
                self._buf, self._buf_start = self._buf[drop:], self._buf_start + drop
                self._checked = max(0, self._checked - drop)

    def _frames(self, start: int, s: int, e: int) -> list[tuple[float, Any]]:
        """The faces seen during ``buf[s:e]``: (stream time, observation)."""
        t0, t1 = (start + s) / SAMPLE_RATE, (start + e) / SAMPLE_RATE
        return [(t, ob) for t, ob in list(self._faces) if t0 <= t <= t1 and ob is not None]

    def _frame_times(self, start: int, s: int, e: int) -> tuple[float, ...]:
        return tuple(t for t, _ in self._frames(start, s, e))

    def _analyse(self, buf: np.ndarray, start: int, s: int, e: int, locked: bool = False) -> tuple[Any, float]:
        """``buf[s:e]`` and the faces seen meanwhile through the analyzer: (its result, compute seconds).
        ``locked``: the caller holds the speech lock already."""
        t0 = time.perf_counter()
        offset = (start + s) / SAMPLE_RATE
        frames = [(t - offset, ob) for t, ob in self._frames(start, s, e)]
        with contextlib.nullcontext() if locked else self.engine.speech_lock:
            r = self.engine.analyzer.analyze_samples(buf[s:e], [t for t, _ in frames], [ob for _, ob in frames],
                                                     name="<live>", asr_window=self.asr_window)
        spent = time.perf_counter() - t0
        self.stats["speech_compute"] += spent
        return r, spent

    def _utterance(self, buf: np.ndarray, start: int, s: int, e: int, speech_end: int,
                   closed: str) -> list[dict[str, Any]]:
        offset = (start + s) / SAMPLE_RATE
        # analysed while the pause ran, on the same audio and the same faces (a frame may land after the guess)
        early = self._early is not None and self._early[0] == (start + s, start + e, self._frame_times(start, s, e))
        if early:
            _, r, spent = self._early  # type: ignore[misc]
            self.stats["early_used"] += 1
        else:
            r, spent = self._analyse(buf, start, s, e)
        self._early = None
        self._trim(start, speech_end)
        self._checked = 0  # the rest of the buffer may hold another whole utterance: look again at once
        self._partial_text = ""
        self.stats["speech_seconds"] += (e - s) / SAMPLE_RATE
        from .result import segment_dict

        events = []
        for seg in r.segments:
            d = segment_dict(seg)
            d["start"], d["end"] = round(d["start"] + offset, 3), round(d["end"] + offset, 3)
            events.append({"type": "utterance", "segment": d, "speech_end": round((start + speech_end) / SAMPLE_RATE, 3),
                           "closed": closed, "early": early, "ms": round(spent * 1e3, 1)})
        self.stats["utterances"] += len(events)
        if not events:  # VAD heard speech that ASR and the experts could not use: say so, once
            events.append({"type": "utterance", "segment": None, "speech_end": round((start + speech_end) / SAMPLE_RATE, 3),
                           "closed": closed, "early": early, "notes": list(r.notes), "ms": round(spent * 1e3, 1)})
        return events

    def _partial(self, buf: np.ndarray, start: int, first: int) -> list[dict[str, Any]]:
        if not self.engine.speech_lock.acquire(blocking=False):
            return []  # another stream's utterance is being analysed: it goes first
        try:
            t0 = time.perf_counter()
            utts = self.engine.analyzer._load_asr().transcribe(buf[first:], window=self.asr_window)
        finally:
            self.engine.speech_lock.release()
        self._last_partial = time.monotonic()
        self.stats["speech_compute"] += time.perf_counter() - t0
        text = " ".join(u.text for u in utts if u.text).strip()
        if not text or text == self._partial_text:
            return []
        self._partial_text = text
        self.stats["partials"] += 1
        return [{"type": "partial", "start": round((start + first) / SAMPLE_RATE, 3), "text": text}]


def decode_frame(data: bytes | bytearray | memoryview) -> np.ndarray:
    """A JPEG / PNG / WebP frame -> RGB array; InputError when it is not one."""
    import cv2

    if len(data) > 8 * 2**20:
        raise InputError(f"a video frame of {len(data) / 2**20:.1f} MiB is over the 8 MiB limit; send JPEG frames "
                         "of at most 1280x720")
    img = cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"a video frame of {len(data)} bytes is not a JPEG, PNG or WebP image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _emitter(events: list[dict[str, Any]], t_start: float, on_event: Any) -> Any:
    """``emit(evs)``: stamp each event with ``wall`` (seconds since ``t_start``), keep it, hand it to ``on_event``."""
    def emit(evs: list[dict[str, Any]]) -> None:
        for ev in evs:
            ev["wall"] = round(time.monotonic() - t_start, 3)
            events.append(ev)
            if on_event is not None:
                on_event(ev)

    return emit


def replay(session: LiveSession, path: str, realtime: bool = True, chunk: float = 0.1, fps: float = 10.0,
           on_event: Any = None) -> list[dict[str, Any]]:
    """Feed a recording to ``session`` as a capture would: ``chunk`` s of audio at a time and its video frames at
    ``fps`` (each when its time comes), sleeping to keep real time when ``realtime``; returns the events (each
    also given to ``on_event`` as it happens), with ``wall`` (seconds since the start) added."""
    from .media import MediaOptions, decode_audio, iter_frames, probe

    p = probe(path, MediaOptions(fps=fps))
    if p.kind == "image":
        raise InputError(f"{path}: an image is not a stream; use `emofuse analyze` for it")
    audio = decode_audio(p)[0] if p.has_audio else np.zeros(int(p.duration * SAMPLE_RATE), np.float32)
    frames = iter(iter_frames(p, MediaOptions(fps=fps))) if p.has_video and "face" in session.modalities else iter(())
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    step = int(chunk * SAMPLE_RATE)
    events: list[dict[str, Any]] = []
    t_start = time.monotonic()
    nxt = next(frames, None)
    emit = _emitter(events, t_start, on_event)

    for i in range(0, len(pcm), step):
        t_chunk = (i + step) / SAMPLE_RATE
        if realtime and (lag := t_start + t_chunk - time.monotonic()) > 0:
            time.sleep(lag)
        emit(session.push_audio(pcm[i:i + step].tobytes()))
        while nxt is not None and nxt[0] <= t_chunk:
            ev = session.push_frame(nxt[1], t=nxt[0])
            emit([ev] if ev else [])
            nxt = next(frames, None)
        emit(session.step())
    emit(session.finish())
    return events


def open_device(spec: str, kind: str) -> Any:
    """A PyAV input for a capture device named ``FORMAT:NAME`` (``alsa:default``, ``v4l2:/dev/video0``, …);
    InputError naming the cause and what this machine offers when it cannot be opened."""
    import av

    fmt, sep, name = spec.partition(":")
    if not sep or not fmt or not name:
        raise InputError(f"--{kind} {spec!r}: name a device as FORMAT:NAME, e.g. "
                         + ("alsa:default or pulse:default" if kind == "mic" else "v4l2:/dev/video0"))
    if fmt not in av.formats_available:
        have = sorted(set(av.formats_available) & {"alsa", "pulse", "oss", "v4l2", "video4linux2", "avfoundation",
                                                     "dshow", "lavfi", "x11grab"})
        raise InputError(f"--{kind} {spec!r}: this PyAV build has no {fmt!r} input; it has {', '.join(have)}")
    try:
        c = av.open(name, format=fmt)
    except (av.error.FFmpegError, OSError) as e:
        raise InputError(f"--{kind} {spec!r}: cannot be opened ({e}); is the device there and free?") from None
    if not (c.streams.audio if kind == "mic" else c.streams.video):
        c.close()
        raise InputError(f"--{kind} {spec!r}: has no {'audio' if kind == 'mic' else 'video'} stream")
    return c


def capture(session: LiveSession, mic: str | None = None, camera: str | None = None, seconds: float | None = None,
            on_event: Any = None, stop: threading.Event | None = None, realtime: bool = True) -> list[dict[str, Any]]:
    """Feed ``session`` from capture devices (:func:`open_device` specs) until ``seconds`` of stream have passed,
    the devices end, ``stop`` is set or Ctrl-C. One thread reads each device as it delivers (a device is never
    kept waiting while an utterance is analysed); this thread pushes the audio, the newest frame and steps the
    session. Sources that deliver faster than real time (files through ``lavfi``) are held to their timestamps
    unless ``realtime`` is off (then the audio waits for the session and the frames for the audio, as fast as
    it goes). Audio that piles up beyond 60 s while the session is busy loses its oldest chunks (a ``dropped``
    event)."""
    import queue

    import av

    if mic is None and camera is None:
        raise InputError("live capture needs --mic or --camera (or both)")
    devices = [(k, open_device(spec, k)) for k, spec in (("mic", mic), ("camera", camera)) if spec]
    stop = stop or threading.Event()
    chunks: queue.Queue[bytes] = queue.Queue(maxsize=600)  # 60 s of 100 ms chunks: bounded
    latest: list[tuple[float, Any] | None] = [None]
    ended: list[str] = []
    failure: list[BaseException] = []
    t0 = time.monotonic()
    lost = [0]  # samples dropped from the backlog since the last ``dropped`` event

    def hold(t: float) -> None:  # a source ahead of the wall clock waits for it
        if realtime and (lag := t0 + t - time.monotonic()) > 0:
            stop.wait(lag)

    def put(b: bytes) -> None:
        while not stop.is_set():
            try:
                chunks.put(b, timeout=0.1 if not realtime else 0)
                return
            except queue.Full:
                if realtime:  # a device cannot wait: the oldest audio goes
                    with contextlib.suppress(queue.Empty):
                        lost[0] += len(chunks.get_nowait()) // 2

    def read(kind: str, c: Any) -> None:
        try:
            if kind == "mic":
                rs = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
                sent = 0
                for frame in c.decode(audio=0):
                    for out in rs.resample(frame):
                        b = bytes(out.planes[0])[: out.samples * 2]
                        sent += out.samples
                        hold(sent / SAMPLE_RATE)
                        put(b)
                    if stop.is_set():
                        break
            else:
                first, kept = None, -1e9
                for frame in c.decode(video=0):
                    t = float(frame.time or 0.0)
                    first = t if first is None else first
                    if t - kept < 1.0 / session.options.max_fps - 1e-3:
                        continue  # a 30 fps camera: only the frames the session can take are converted
                    kept = t
                    if realtime or not mic:
                        hold(t - first)
                    else:  # as fast as it goes: frames keep pace with the audio the session has taken
                        while session.now < t - first and not stop.is_set() and not ("mic" in ended and chunks.empty()):
                            stop.wait(0.01)
                    latest[0] = (t - first, frame.to_ndarray(format="rgb24"))  # the newest frame wins
                    if stop.is_set():
                        break
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            if not stop.is_set():
                failure.append(e)
        finally:
            ended.append(kind)
            c.close()

    threads = [threading.Thread(target=read, args=d, daemon=True, name=f"emofuse-{d[0]}") for d in devices]
    events: list[dict[str, Any]] = []
    emit = _emitter(events, t0, on_event)
    for t in threads:
        t.start()
    try:
        while not stop.is_set() and not failure and (len(ended) < len(devices) or not chunks.empty()):
            if seconds is not None and (session.now if mic else time.monotonic() - t0) >= seconds:
                break
            got = 0  # bytes: all that waits (a device's backlog), or 100 ms a turn when replaying as fast as it goes
            try:
                while realtime or got < 3200:
                    b = chunks.get(timeout=0.05 if not got else 0)
                    emit(session.push_audio(b))
                    got += len(b)
            except queue.Empty:
                pass
            if lost[0]:
                emit([{"type": "dropped", "seconds": round(lost[0] / SAMPLE_RATE, 3),
                       "detail": "the microphone delivered faster than the analysis read it; its oldest audio was dropped"}])
                lost[0] = 0
            if (f := latest[0]) is not None:
                latest[0] = None
                ev = session.push_frame(f[1], t=f[0] if not mic else None)
                emit([ev] if ev else [])
            emit(session.step())
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=2)
    while not chunks.empty():
        emit(session.push_audio(chunks.get_nowait()))
    emit(session.finish())
    if failure:
        raise InputError(f"live capture stopped: {type(failure[0]).__name__}: {failure[0]}")
    return events
