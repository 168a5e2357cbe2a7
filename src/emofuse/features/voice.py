"""Voice embedding pooled from the Whisper encoder output that ASR already computes.

faster-whisper encodes audio in 30 s windows: log-mel frames at 100/s, encoder output frames at 50/s
(``FRAME_SECONDS`` = 0.02 s each; shape ``[1, 1500, d]`` for a full window, d = 512 for whisper-base,
384 for whisper-tiny.en). The analysis pipeline keeps each window's encoder output, and for an utterance
spanning ``[start, end]`` seconds (relative to the window start) :func:`pool_frames` pools the frames
``floor(start / 0.02) .. ceil(end / 0.02) - 1`` into ``concat(mean, std)`` (``2 d`` values). No second
network runs for the voice expert.

:func:`embed_clips` produces the same embedding for isolated clips (training, tests): to mimic analysis,
where an utterance sits inside a 30 s window together with other speech of the same speaker, it packs
consecutive clips into one window separated by short silences, encodes the window once and pools each
clip's frames.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

SAMPLE_RATE = 16000
FRAME_SECONDS = 0.02  # one Whisper encoder output frame (2 mel frames of 10 ms)
WINDOW_FRAMES = 1500  # encoder frames in a full 30 s window
MEL_FRAMES = 3000  # log-mel frames in a full 30 s window
POOLING = "mean+std"
VERSION = 1  # bump when the embedding changes (feature caches and heads record it)


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


def encode_window(model: "WhisperModel", audio: np.ndarray) -> np.ndarray:
    """Encoder output ``[T, d]`` of one window of 16 kHz audio, exactly as faster-whisper's transcription
    computes it (log-mel of the audio, padded or trimmed to 3000 mel frames, then encoded): ``T = 1500``."""
    from faster_whisper.audio import pad_or_trim

    feats = pad_or_trim(model.feature_extractor(np.asarray(audio, dtype=np.float32)))
    return np.array(model.encode(feats))[0]


def encode_alone(model: "WhisperModel", audio: np.ndarray) -> np.ndarray:
    """Encoder output of a clip encoded on its own, without padding to 30 s (CTranslate2 accepts short
    inputs; about 10x cheaper, but the frames then differ from what analysis sees)."""
    feats = model.feature_extractor(np.asarray(audio, dtype=np.float32))[:, :MEL_FRAMES]
    if feats.shape[1] % 2:  # the encoder's stride-2 convolution; keep whole output frames
        feats = feats[:, :-1]
    return np.array(model.encode(np.ascontiguousarray(feats)))[0]


def pack_windows(durations: Sequence[float], window_s: float = 30.0, gap_s: float = 0.5) -> list[list[tuple[int, float]]]:
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


def embed_clips(
    model: "WhisperModel",
    clips: Sequence[np.ndarray],
    window_s: float = 30.0,
    gap_s: float = 0.5,
    packed: bool = True,
) -> np.ndarray:
    """Voice embeddings ``[n, 2 d]`` (float32) of 16 kHz mono clips.

    ``packed=True`` (the default, matching analysis): consecutive clips, which the caller should take
    from one speaker, share a 30 s window separated by ``gap_s`` of silence; each window is encoded once
    and every clip pools its own frames. ``packed=False`` encodes each clip alone (cheaper, see
    :func:`encode_alone`).
    """
    clips = [np.asarray(c, dtype=np.float32).reshape(-1) for c in clips]
    if not clips:
        return np.zeros((0, 0), dtype=np.float32)
    out: list[np.ndarray | None] = [None] * len(clips)
    if not packed:
        for i, c in enumerate(clips):
            enc = encode_alone(model, c)
            out[i] = pool_frames(enc, 0.0, len(c) / SAMPLE_RATE)
        return np.stack(out)  # type: ignore[arg-type]
    n_window = int(round(window_s * SAMPLE_RATE))
    durations = [len(c) / SAMPLE_RATE for c in clips]
    for window in pack_windows(durations, window_s, gap_s):
        starts = [int(round(s * SAMPLE_RATE)) for _, s in window]
        end = min(n_window, max(s + len(clips[i]) for (i, _), s in zip(window, starts)))
        audio = np.zeros(end, dtype=np.float32)
        for (i, _), s in zip(window, starts):
            piece = clips[i][: max(0, end - s)]
            audio[s: s + len(piece)] = piece
        enc = encode_window(model, audio)
        for (i, start), s in zip(window, starts):
            out[i] = pool_frames(enc, start, min(end, s + len(clips[i])) / SAMPLE_RATE)
    return np.stack(out)  # type: ignore[arg-type]


def load_audio(path: str, sampling_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode any audio file PyAV reads (FLAC, WAV, MP3, a video's audio track) to mono float32."""
    from faster_whisper.audio import decode_audio

    return decode_audio(str(path), sampling_rate=sampling_rate)
