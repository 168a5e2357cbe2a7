"""Voice embedding pooled from the Whisper encoder output that ASR already computes.

faster-whisper encodes audio in 30 s windows: log-mel frames at 100/s, encoder output frames at 50/s
(``FRAME_SECONDS`` = 0.02 s each; shape ``[1, 1500, d]`` for a full window, d = 512 for whisper-base,
384 for whisper-tiny.en). The analysis pipeline keeps each window's encoder output, and for an utterance
spanning ``[start, end]`` seconds (relative to the window start) :func:`pool_frames` pools the frames
``floor(start / 0.02) .. ceil(end / 0.02) - 1`` into ``concat(mean, std)`` (``2 d`` values). No second
network runs for the voice expert.

:func:`embed_clips` produces the same embedding for isolated clips (training, tests) by mimicking analysis,
where VAD has cut the silences and an utterance sits inside a 30 s window together with other speech of
the same speaker: each clip is cut to its speech ± 0.4 s, consecutive clips are packed into one window,
the window is encoded once and each clip pools the frames of its speech span ± 0.1 s (as an ASR segment's
timestamps would delimit it). Pooling the whole clip instead, silences included, and testing on speech
spans costs ~20 points of UA on RAVDESS, hence the care.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

SAMPLE_RATE = 16000
FRAME_SECONDS = 0.02  # one Whisper encoder output frame (2 mel frames of 10 ms)
WINDOW_FRAMES = 1500  # encoder frames in a full 30 s window
MEL_FRAMES = 3000  # log-mel frames in a full 30 s window
POOLING = "mean+std"
VERSION = 2  # bump when the embedding changes (feature caches and heads record it)
VAD_PAD_S = 0.4  # training clips are cut to speech +- this, like faster-whisper's VAD (speech_pad_ms=400)
SPAN_PAD_S = 0.1  # the pooled utterance span: speech +- this, like an ASR segment's timestamps


def frame_range(start_s: float, end_s: float, n_frames: int) -> tuple[int, int]:
    """Half-open encoder-frame range ``[lo, hi)`` covering ``[start_s, end_s]``: ``lo = floor(start / 0.02)``,
    ``hi = ceil(end / 0.02)``, clamped to ``[0, n_frames)`` and never empty (at least one frame)."""
    if n_frames <= 0:
        raise ValueError("encoder output has no frames")
    lo = math.floor(start_s / FRAME_SECONDS + 1e-6)
    hi = math.ceil(end_s / FRAME_SECONDS - 1e-6)
    lo = min(max(lo, 0), n_frames - 1)
    hi = min(max(hi, lo + 1), n_frames)
    return lo, hi


def pool_frames(enc: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    """``concat(mean, std)`` over the encoder frames of ``[start_s, end_s]`` (seconds from the window start).

    ``enc`` is one window's encoder output, ``[T, d]`` (a leading batch axis of 1 is accepted). The range is
    clamped to the window; an empty or inverted range pools the single frame at ``start_s``. Returns
    float32 ``[2 d]``.
    """
    enc = np.asarray(enc)
    if enc.ndim == 3 and enc.shape[0] == 1:
        enc = enc[0]
    if enc.ndim != 2:
        raise ValueError(f"expected encoder output [T, d], got shape {enc.shape}")
    lo, hi = frame_range(start_s, end_s, enc.shape[0])
    x = enc[lo:hi].astype(np.float64)
    return np.concatenate([x.mean(axis=0), x.std(axis=0)]).astype(np.float32)


def encode_window(model: "WhisperModel", audio: np.ndarray, window_s: float = 30.0) -> np.ndarray:
    """Encoder output ``[T, d]`` of one window of 16 kHz audio, exactly as the ASR computes it (log-mel of the
    audio, padded or trimmed to the window's mel frames, then encoded): ``T = 1500`` for a 30 s window, 500 for
    a 10 s one (``ASROptions.window``)."""
    from faster_whisper.audio import pad_or_trim

    frames = int(round(window_s * 100))
    feats = pad_or_trim(model.feature_extractor(np.asarray(audio, dtype=np.float32))[:, :frames], frames)
    return np.array(model.encode(feats))[0]


def encode_alone(model: "WhisperModel", audio: np.ndarray) -> np.ndarray:
    """Encoder output of a clip encoded on its own, without padding to 30 s (CTranslate2 accepts short
    inputs; about 10x cheaper, but the frames then differ from what analysis sees)."""
    feats = model.feature_extractor(np.asarray(audio, dtype=np.float32))[:, :MEL_FRAMES]
    if feats.shape[1] % 2:  # the encoder's stride-2 convolution; keep whole output frames
        feats = feats[:, :-1]
    return np.array(model.encode(np.ascontiguousarray(feats)))[0]


def speech_span(audio: np.ndarray, pad_s: float = SPAN_PAD_S, floor_db: float = 35.0) -> tuple[float, float]:
    """``(start, end)`` seconds of the speech in a clip: from the first to the last 20 ms frame whose energy
    is within ``floor_db`` of the loudest frame, widened by ``pad_s`` and clamped to the clip. A cheap stand-in
    for the tight utterance boundaries that analysis gets from VAD and Whisper's timestamps."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    dur = len(audio) / SAMPLE_RATE
    hop = int(FRAME_SECONDS * SAMPLE_RATE)
    n = len(audio) // hop
    if n == 0:
        return 0.0, dur
    energy = (audio[: n * hop].reshape(n, hop).astype(np.float64) ** 2).mean(axis=1)
    db = 10.0 * np.log10(energy + 1e-10)
    active = np.flatnonzero(db > db.max() - floor_db)
    return float(max(0.0, active[0] * FRAME_SECONDS - pad_s)), float(min(dur, (active[-1] + 1) * FRAME_SECONDS + pad_s))


def pack_windows(durations: Sequence[float], window_s: float = 30.0, gap_s: float = 0.0) -> list[list[tuple[int, float]]]:
    """Greedy packing of clips (in the given order) into windows: a list of windows, each a list of
    ``(clip index, start second)``. The first clip of a window starts at 0, the next ones after ``gap_s``
    of silence; a clip longer than the window gets a window of its own (and is truncated to it)."""
    windows: list[list[tuple[int, float]]] = []
    cur: list[tuple[int, float]] = []
    cursor = 0.0
    for i, d in enumerate(durations):
        start = cursor + gap_s if cur else 0.0
        if cur and start + d > window_s:
            windows.append(cur)
            cur, start = [], 0.0
        cur.append((i, start))
        cursor = start + d
    if cur:
        windows.append(cur)
    return windows


def cut_to_speech(clips: Sequence[np.ndarray], pad_s: float = VAD_PAD_S) -> list[np.ndarray]:
    """Each clip cut to its speech span +- ``pad_s``, as faster-whisper's VAD hands speech to Whisper."""
    out = []
    for c in clips:
        c = np.asarray(c, dtype=np.float32).reshape(-1)
        a, b = speech_span(c, pad_s=pad_s)
        out.append(c[int(round(a * SAMPLE_RATE)): int(round(b * SAMPLE_RATE))])
    return out


def encode_clips(model: "WhisperModel", clips: Sequence[np.ndarray], window_s: float = 30.0, gap_s: float = 0.0,
                 packed: bool = True) -> Iterator[tuple[int, np.ndarray, float, float]]:
    """Encode the clips once and yield ``(clip index, encoder output, clip offset s, limit s)``: the clip's
    frames are those of ``[offset, limit]`` in that output. ``packed=True``: consecutive clips share 30 s
    windows (:func:`pack_windows`), each window encoded once; ``packed=False``: each clip alone."""
    if not packed:
        for i, c in enumerate(clips):
            yield i, encode_alone(model, c), 0.0, window_s
        return
    n_window = int(round(window_s * SAMPLE_RATE))
    for window in pack_windows([len(c) / SAMPLE_RATE for c in clips], window_s, gap_s):
        starts = [int(round(s * SAMPLE_RATE)) for _, s in window]
        end = min(n_window, max(s + len(clips[i]) for (i, _), s in zip(window, starts)))
        audio = np.zeros(end, dtype=np.float32)
        for (i, _), s in zip(window, starts):
            piece = clips[i][: max(0, end - s)]
            audio[s: s + len(piece)] = piece
        enc = encode_window(model, audio, window_s)
        for (i, _), s in zip(window, starts):
            yield i, enc, s / SAMPLE_RATE, end / SAMPLE_RATE


def chunk_frames(enc: np.ndarray, start_s: float, end_s: float, chunk_s: float = 0.5) -> np.ndarray:
    """Mean of the encoder frames of ``[start_s, end_s]`` in consecutive ``chunk_s`` chunks: ``[T, d]``
    float32 with ``T = ceil(frames / frames_per_chunk)`` (the last chunk may be shorter)."""
    lo, hi = frame_range(start_s, end_s, enc.shape[0])
    per = max(1, int(round(chunk_s / FRAME_SECONDS)))
    x = np.asarray(enc[lo:hi], dtype=np.float64)
    return np.stack([x[i:i + per].mean(axis=0) for i in range(0, len(x), per)]).astype(np.float32)


def embed_clip_views(
    model: "WhisperModel",
    clips: Sequence[np.ndarray],
    window_s: float = 30.0,
    gap_s: float = 0.0,
    packed: bool = True,
    vad_pad_s: float | None = VAD_PAD_S,
) -> dict[str, np.ndarray]:
    """Both poolings of every clip from one encoder pass: ``{"speech": [n, 2 d], "clip": [n, 2 d]}``.

    Each clip is first cut to its speech ± ``vad_pad_s`` (as faster-whisper's VAD, speech_pad_ms = 400,
    hands speech to Whisper in analysis; ``None`` keeps the whole clip). ``packed=True``: consecutive clips,
    which the caller should take from one speaker, share 30 s windows (joined after ``gap_s`` of silence;
    with the VAD padding two neighbours are 0.8 s apart, like VAD output); each window is encoded once.
    ``packed=False`` encodes each clip alone (see :func:`encode_alone`). ``"speech"`` pools the speech span
    ± 0.1 s (:func:`speech_span`, like an ASR segment); ``"clip"`` pools the whole (cut) clip.
    """
    clips = [np.asarray(c, dtype=np.float32).reshape(-1) for c in clips]
    if vad_pad_s is not None:
        clips = cut_to_speech(clips, vad_pad_s)
    n = len(clips)
    views: dict[str, list[np.ndarray | None]] = {"speech": [None] * n, "clip": [None] * n}
    if n == 0:
        return {k: np.zeros((0, 0), dtype=np.float32) for k in views}
    spans = [speech_span(c) for c in clips]
    for i, enc, offset, limit in encode_clips(model, clips, window_s, gap_s, packed):
        a, b = spans[i]
        views["speech"][i] = pool_frames(enc, offset + a, min(limit, offset + b))
        views["clip"][i] = pool_frames(enc, offset, min(limit, offset + len(clips[i]) / SAMPLE_RATE))
    return {k: np.stack(v) for k, v in views.items()}  # type: ignore[arg-type]


def embed_clips(
    model: "WhisperModel",
    clips: Sequence[np.ndarray],
    window_s: float = 30.0,
    gap_s: float = 0.0,
    packed: bool = True,
    span: str = "speech",
) -> np.ndarray:
    """Voice embeddings ``[n, 2 d]`` (float32) of 16 kHz mono clips, as analysis would compute them for
    utterances of one speaker (see :func:`embed_clip_views`; ``span`` = ``"speech"`` or ``"clip"``)."""
    if span not in ("speech", "clip"):
        raise ValueError(f"span must be 'speech' or 'clip', not {span!r}")
    return embed_clip_views(model, clips, window_s, gap_s, packed)[span]
