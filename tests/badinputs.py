"""The bad-input corpus, made in code: every kind of awkward input a user or a server meets, each with the
answer emofuse must give (no fixtures on disk; real media come from ``.cache/media`` when present).

A :class:`Case` is one input file (``kind="media"`` or ``"textfile"``) and its expectation: ``error`` (an
``InputError`` whose message holds every ``says`` fragment and names the file) or ``result`` (an analysis
result, with a note holding every ``says`` fragment when given).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import av
import numpy as np

from badmedia import write_silent_video, write_wav


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[Path], Path]  # tmp folder -> the input's path
    expect: str  # "error" or "result"
    says: tuple[str, ...] = ()  # fragments of the error message, or of a note of the result
    kind: str = "media"  # "media" (a positional input) or "textfile" (--text-file)
    needs_media: bool = False  # built from the real media in .cache/media
    tags: frozenset[str] = field(default_factory=frozenset)


def _tone(seconds: float, sr: int = 16000, f0: float = 220.0, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (level * np.sin(2 * np.pi * f0 * t)).astype(np.float32)


def _png(path: Path, w: int, h: int, pix_fmt: str = "rgb24", value: int = 128) -> Path:
    """A flat image of w x h written with PyAV's PNG encoder (compresses to almost nothing)."""
    with av.open(str(path), "w", format="image2") as c:
        s = c.add_stream("png", rate=1)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        dtype = np.uint16 if "48" in pix_fmt or "16" in pix_fmt else np.uint8
        chans = 3 if pix_fmt.startswith("rgb") else 1
        arr = np.full((h, w, chans) if chans == 3 else (h, w), value * (257 if dtype == np.uint16 else 1), dtype)
        frame = av.VideoFrame.from_ndarray(arr, format=pix_fmt)
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def _huge_png(path: Path, w: int, h: int) -> Path:
    """A grey PNG of w x h zeros written row by row: a few hundred KB on disk, w * h * 3 bytes once decoded
    (FFmpeg's PNG encoder refuses sides over 16384, so it is written by hand)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp, row = zlib.compressobj(9), b"\0" * (w + 1)
    idat = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def _copy(src: str, name: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        from conftest import MEDIA

        out = tmp / name
        shutil.copyfile(MEDIA / src, out)
        return out
    return make


def _bytes(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / name).write_bytes(data)
        return tmp / name
    return make


def _text(name: str, data: bytes) -> Callable[[Path], Path]:
    return _bytes(name, data)


def _truncated(name: str, keep: float, faststart: bool) -> Callable[[Path], Path]:
    """The demo clip cut to ``keep`` of its bytes: with the index (moov) at the end it is lost, with it at
    the front (faststart) the frames before the cut stay decodable."""
    def make(tmp: Path) -> Path:
        from conftest import MEDIA

        src = MEDIA / "demo.mp4"
        full = tmp / f"full-{name}"
        with av.open(str(src)) as i, av.open(str(full), "w", format="mp4",
                                              options={"movflags": "faststart"} if faststart else {}) as o:
            streams = {s.index: o.add_stream_from_template(s) for s in i.streams if s.type in ("audio", "video")}
            for pkt in i.demux():
                if pkt.stream.index in streams and pkt.dts is not None:
                    pkt.stream = streams[pkt.stream.index]
                    o.mux(pkt)
        data = full.read_bytes()
        (tmp / name).write_bytes(data[: int(len(data) * keep)])
        full.unlink()
        return tmp / name
    return make


def _symlink_loop(tmp: Path) -> Path:
    a, b = tmp / "loop_a.wav", tmp / "loop_b.wav"
    os.symlink(b, a)
    os.symlink(a, b)
    return a


def _dangling(tmp: Path) -> Path:
    p = tmp / "dangling.wav"
    os.symlink(tmp / "nowhere.wav", p)
    return p


def _multi_face(tmp: Path) -> Path:
    """Three copies of the single-face photo side by side: three faces in one frame."""
    import cv2

    from conftest import MEDIA

    img = cv2.imread(str(MEDIA / "single_face.jpg"))
    row = np.concatenate([img, img, img], axis=1)
    out = tmp / "three_faces.jpg"
    cv2.imwrite(str(out), row)
    return out


def _cmyk(tmp: Path) -> Path:
    from PIL import Image

    from conftest import MEDIA

    out = tmp / "cmyk_face.jpg"
    Image.open(MEDIA / "single_face.jpg").convert("CMYK").save(out, "JPEG")
    return out


def _gif(tmp: Path) -> Path:
    from PIL import Image

    frames = [Image.new("RGB", (64, 64), (v, v, v)) for v in (40, 120, 200)]
    out = tmp / "animated.gif"
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out


def cases() -> list[Case]:
    rng = np.random.default_rng(0)
    png_magic = b"\x89PNG\r\n\x1a\n"
    return [
        # ---- files that are not there or hold nothing
        Case("missing", lambda t: t / "does_not_exist.mp4", "error", ("no such file",)),
        Case("empty", _bytes("empty.wav", b""), "error", ("empty", "0 bytes")),
        Case("folder_without_media", lambda t: (t / "nothing_here").mkdir() or t / "nothing_here", "error",
             ("holds no supported media",)),
        Case("symlink_loop", _symlink_loop, "error", ("symbolic link",)),
        Case("dangling_symlink", _dangling, "error", ("symbolic link",)),
        Case("unsupported_extension", _bytes("notes.xyz", b"hello"), "error", ("unsupported format",)),
        Case("no_extension", _bytes("README", b"hello"), "error", ("unsupported format",)),
        # ---- damaged files
        Case("random_bytes_mp4", _bytes("garbage.mp4", rng.bytes(4096)), "error", ("cannot be decoded",)),
        Case("random_bytes_wav", _bytes("garbage.wav", rng.bytes(4096)), "error", ("cannot be decoded",)),
        Case("png_header_only", _bytes("garbage.png", png_magic + b"\0" * 64), "error", ("image",)),
        Case("truncated_index_lost", _truncated("cut_index_lost.mp4", 0.5, faststart=False), "error",
             ("cannot be decoded",), needs_media=True),
        Case("truncated_index_first", _truncated("cut_index_first.mp4", 0.5, faststart=True), "result",
             ("looks truncated",), needs_media=True),
        # ---- the extension says one thing, the content another
        Case("flat_png_named_mp4", lambda t: _png(t / "really_a_png.mp4", 64, 64), "error", ("no face found",)),
        Case("jpeg_named_mp4", _copy("single_face.jpg", "really_a_jpeg.mp4"), "result", ("holds an image",),
             needs_media=True),
        Case("wav_named_png", lambda t: write_wav(t / "really_a_wav.png", _tone(1.0)), "result", ("holds audio",)),
        Case("jpeg_named_wav", _copy("single_face.jpg", "really_a_jpeg.wav"), "result", ("holds an image",),
             needs_media=True),
        # ---- audio
        Case("silence", lambda t: write_wav(t / "silence.wav", np.zeros(32000, np.float32)), "result",
             ("no speech",)),
        Case("noise", lambda t: write_wav(t / "noise.wav", rng.normal(0, 0.3, 32000).astype(np.float32)), "result"),
        Case("one_millisecond", lambda t: write_wav(t / "one_ms.wav", _tone(0.001)), "result", ("no speech",)),
        Case("8khz", lambda t: write_wav(t / "tone_8k.wav", _tone(1.0, 8000), 8000), "result"),
        Case("96khz_stereo", lambda t: write_wav(t / "tone_96k_stereo.wav", _tone(1.0, 96000), 96000, 2), "result"),
        Case("44k_5_1", lambda t: write_wav(t / "tone_51.wav", _tone(1.0, 44100), 44100, 6), "result"),
        Case("spaces_and_unicode_name", _copy("beckett.wav", "spaces and ünïcode – speech.wav"), "result",
             needs_media=True),
        Case("leading_dash_name", _copy("single_face.jpg", "-starts-with-dash.jpg"), "result", needs_media=True),
        # ---- video
        Case("video_without_audio", lambda t: write_silent_video(t / "no_audio.mp4"), "result",
             ("no audio stream",)),
        # ---- images
        Case("huge_png_14000", lambda t: _huge_png(t / "huge_14000.png", 14000, 14000), "error",
             ("14000x14000", "downscale")),
        Case("huge_png_20000", lambda t: _huge_png(t / "huge_20000.png", 20000, 20000), "error",
             ("20000x20000", "downscale")),
        Case("png_16_bit_flat", lambda t: _png(t / "flat16.png", 320, 240, "rgb48be"), "error", ("no face found",)),
        Case("grey_png_flat", lambda t: _png(t / "grey.png", 320, 240, "gray"), "error", ("no face found",)),
        Case("cmyk_jpeg", _cmyk, "result", needs_media=True),
        Case("animated_gif", _gif, "error", ("unsupported format",)),
        Case("faceless_photo", _copy("no_face.jpg", "no_face.jpg"), "error", ("no face found",), needs_media=True),
        Case("three_faces", _multi_face, "result", ("3 faces",), needs_media=True),
        # ---- text files (--text-file)
        Case("text_invalid_utf8", _text("latin1.txt", "café noir\n".encode("latin-1")), "error", ("UTF-8",),
             kind="textfile"),
        Case("text_utf16_bom", _text("utf16.txt", "I am so happy today!\n".encode("utf-16")), "result", (),
             kind="textfile"),
        Case("text_whitespace_only", _text("blank.txt", b"  \n\t\n   \n"), "error", ("no text",), kind="textfile"),
        Case("text_binary", _text("binary.txt", rng.bytes(2048)), "error", ("UTF-8",), kind="textfile"),
        Case("text_10000_lines", _text("many.txt", ("ok\n" * 10_000).encode()), "result", (), kind="textfile"),
        Case("text_1mb_line", _text("long.txt", ("word " * 210_000).encode()), "result", ("256 tokens",),
             kind="textfile"),
        Case("text_missing", lambda t: t / "no_such_lines.txt", "error", ("cannot read",), kind="textfile"),
        Case("text_blank_lines_kept", _text("gaps.txt", b"I am so happy!\n\n   \nGo away.\n"), "result",
             ("2 blank line(s) (line 2, 3)",), kind="textfile"),
        Case("text_long_chinese_line", _text("long_zh.txt", ("我今天非常开心，谢谢你们！" * 300).encode()), "result",
             ("windows of 512 tokens",), kind="textfile"),
    ]
