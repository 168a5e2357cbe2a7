"""Bad and edge-case inputs, made in code (no fixtures on disk)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_wav(path: Path, audio: np.ndarray, sr: int = 16000, channels: int = 1) -> Path:
    """16-bit PCM WAV of ``audio`` ([n], repeated over ``channels``: 1, 2 or 6) at ``sr`` Hz."""
    layout = {1: "mono", 2: "stereo", 6: "5.1"}[channels]
    with av.open(str(path), "w", format="wav") as c:
        s = c.add_stream("pcm_s16le", rate=sr)
        s.layout = layout
        data = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
        f = av.AudioFrame.from_ndarray(np.repeat(data[:, None], channels, axis=1).reshape(1, -1), format="s16",
                                       layout=layout)
        f.sample_rate, f.pts, f.time_base = sr, 0, Fraction(1, sr)
        for p in s.encode(f):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def write_silent_video(path: Path, seconds: float = 2.0, fps: int = 10, image: np.ndarray | None = None) -> Path:
    """A video with no audio stream (a still image, or grey frames)."""
    img = image if image is not None else np.full((120, 160, 3), 128, np.uint8)
    h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        for _ in range(int(seconds * fps)):
            for p in v.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img[:h, :w]), format="rgb24")):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
    return path


def make_bad_inputs(tmp: Path, media: Path | None = None) -> dict[str, Path]:
    """name -> path of each kind of bad input."""
    out: dict[str, Path] = {}
    out["missing"] = tmp / "does_not_exist.mp4"
    out["empty"] = tmp / "empty.wav"
    out["empty"].write_bytes(b"")
    out["unsupported"] = tmp / "notes.xyz"
    out["unsupported"].write_bytes(b"hello")
    out["garbage"] = tmp / "garbage.mp4"
    out["garbage"].write_bytes(np.random.default_rng(0).bytes(4096))
    out["garbage_image"] = tmp / "garbage.png"
    out["garbage_image"].write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    if media is not None and (media / "demo.mp4").exists():
        data = (media / "demo.mp4").read_bytes()
        out["truncated"] = tmp / "truncated.mp4"
        out["truncated"].write_bytes(data[: len(data) // 3])
    out["silence"] = write_wav(tmp / "silence.wav", np.zeros(16000 * 2, np.float32))
    out["no_audio_stream"] = write_silent_video(tmp / "no_audio.mp4")
    return out
