"""Input validation and decoding. This is the one place where inputs are checked: every problem becomes
an :class:`~emofuse.errors.InputError` whose message names the cause and the fix.

Decoding uses PyAV (bundled FFmpeg): audio to 16 kHz mono float32, video frames sampled at ``fps``.
Audio and video are decoded in separate passes so that ASR can start on the audio while the video
is decoded (and faces analysed) on the other core; each stream is still decoded exactly once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal

import numpy as np

from .errors import InputError

SAMPLE_RATE = 16_000
VIDEO_EXT = frozenset({".mp4", ".mkv", ".webm", ".mov", ".avi"})
AUDIO_EXT = frozenset({".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a"})
IMAGE_EXT = frozenset({".jpg", ".jpeg", ".png", ".webp"})
SUPPORTED = VIDEO_EXT | AUDIO_EXT | IMAGE_EXT

Kind = Literal["video", "audio", "image"]


@dataclass(frozen=True)
class MediaOptions:
    fps: float = 5.0  # video frames sampled per second for the face expert
    max_duration: float = 3600.0  # seconds; longer inputs are refused (split them or raise the limit)
    frame_max_side: int = 640  # sampled frames are downscaled so their longer side is at most this
    # still images with more pixels are refused before decoding (a 222 KB PNG can hold 14000x14000 = 588 MB
    # of RGB, several GB once converted); 64 MP is above any camera photo
    max_image_pixels: int = 64_000_000

    def __post_init__(self) -> None:
        if isinstance(self.max_image_pixels, bool) or not isinstance(self.max_image_pixels, int) \
                or self.max_image_pixels < 1:
            raise InputError(f"MediaOptions.max_image_pixels must be a positive integer, not {self.max_image_pixels!r}")
        for name in ("fps", "max_duration"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise InputError(f"MediaOptions.{name} must be a positive number, not {v!r}")
        if isinstance(self.frame_max_side, bool) or not isinstance(self.frame_max_side, int) or self.frame_max_side < 16:
            raise InputError(f"MediaOptions.frame_max_side must be an integer >= 16, not {self.frame_max_side!r}")


@dataclass(frozen=True)
class Probe:
    """What a file holds, known before any decoding."""

    path: Path
    kind: Kind
    duration: float  # seconds (0 for an image)
    has_audio: bool
    has_video: bool
    width: int = 0
    height: int = 0
    notes: tuple[str, ...] = ()  # what the analysis should say about the file (e.g. a misleading extension)


@dataclass
class Frames:
    """Sampled RGB frames and their times (seconds)."""

    images: list[np.ndarray] = field(default_factory=list)
    times: list[float] = field(default_factory=list)


def _fmt_list(exts: frozenset[str]) -> str:
    return " ".join(sorted(e.lstrip(".") for e in exts))


def expand_inputs(paths: list[str | Path]) -> list[Path]:
    """Files as given, folders expanded to their supported files (sorted, not recursive into hidden dirs).
    Unknown paths are kept so that each one fails on its own later instead of failing the batch."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUPPORTED
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not found:
                out.append(p)  # reported as "no supported files" by probe()
            out.extend(found)
        else:
            out.append(p)
    return out


def _ffmpeg_errors() -> tuple[type[BaseException], ...]:
    import av

    return (av.error.FFmpegError, UnicodeDecodeError, ValueError, IndexError)


# FFmpeg demuxers of still-image files: the content, not the extension, says a file is an image.
_IMAGE_DEMUXERS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "jpegls_pipe")
_KIND_EXT = {"image": ".jpg / .png", "audio": ".wav / .mp3", "video": ".mp4"}


def probe(path: str | Path, options: MediaOptions = MediaOptions()) -> Probe:
    """Validate ``path`` and say what it holds. Raises InputError naming the fix.

    The content decides what a file is: an image saved as ``.mp4`` is analysed as an image, audio saved
    as ``.png`` as audio, and the result's notes say so."""
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"expected a file path (str or pathlib.Path), got {type(path).__name__} {path!r:.60}")
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise InputError(f"{path}: a symbolic link to nothing (broken, or a loop of links: {os.readlink(path)}); "
                         "point it at a real file")
    if path.is_dir():
        raise InputError(f"{path}: folder holds no supported media ({_fmt_list(SUPPORTED)})")
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path")
    ext = path.suffix.lower()
    if ext not in SUPPORTED:
        raise InputError(f"{path}: unsupported format '{ext or '(none)'}'; supported: {_fmt_list(SUPPORTED)} "
                         "(convert it, e.g. `ffmpeg -i in.xyz out.mp4`), or pass text with --text")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e.strerror}); check its permissions") from None
    if size == 0:
        raise InputError(f"{path}: file is empty (0 bytes); re-export or re-copy it")
    import av

    try:
        with av.open(str(path)) as c:
            demuxers = set(c.format.name.split(","))
            has_a = len(c.streams.audio) > 0
            vstreams = [s for s in c.streams.video if s.codec_context is not None and not _attached_picture(s)]
            has_v = len(vstreams) > 0
            w = vstreams[0].codec_context.width if has_v else 0
            h = vstreams[0].codec_context.height if has_v else 0
            duration = (c.duration or 0) / 1_000_000
            still = bool(demuxers & set(_IMAGE_DEMUXERS))
            if not duration and not still:
                # Some containers (raw streams, broken headers) give no duration: estimate from a stream.
                streams = list(c.streams.audio) + vstreams
                s = streams[0] if streams else None
                if s is not None and s.duration and s.time_base:
                    duration = float(s.duration * s.time_base)
    except _ffmpeg_errors() as e:
        if ext in IMAGE_EXT:
            raise InputError(f"{path}: not a readable {ext.lstrip('.').upper()} image ({_short(e)}); it is corrupt "
                             "or truncated: re-save it") from None
        raise InputError(f"{path}: cannot be decoded ({_short(e)}); the file is corrupt, truncated or not "
                         f"really '{ext}': re-encode it (e.g. `ffmpeg -i {path.name} fixed{ext}`)") from None
    kind: Kind = "image" if still else ("video" if has_v and (ext in VIDEO_EXT or not has_a) else "audio")
    notes: tuple[str, ...] = ()
    said = "image" if ext in IMAGE_EXT else ("audio" if ext in AUDIO_EXT else "video")
    if (kind == "image") != (said == "image"):  # an image saved as a video or audio file, or the other way
        notes = (f"{path.name} holds {'an image' if kind == 'image' else kind} although its extension {ext} says "
                 f"{said}: it was analysed as {'an image' if kind == 'image' else kind} (rename it to "
                 f"{_KIND_EXT[kind]})",)
    if kind == "image":
        if not has_v:
            raise InputError(f"{path}: not a readable image (no picture inside); re-save it as JPEG or PNG")
        if not (w and h):  # FFmpeg leaves sizes over its limit unset: read them from the header
            import imagesize

            w, h = (max(0, v) for v in imagesize.get(str(path)))
        if w * h > options.max_image_pixels:
            raise InputError(f"{path}: image is {w}x{h} ({w * h / 1e6:.0f} MP), over the limit of "
                             f"{options.max_image_pixels / 1e6:.0f} MP; downscale it (e.g. `ffmpeg -i {path.name} "
                             "-vf scale=4000:-2 smaller.jpg`) or raise MediaOptions.max_image_pixels")
        if not (w and h):
            raise InputError(f"{path}: image cannot be decoded (its header holds no size); it is corrupt or "
                             "truncated: re-save it as JPEG or PNG")
        return Probe(path, "image", 0.0, False, True, w, h, notes)
    if not has_a and not has_v:
        raise InputError(f"{path}: holds neither an audio nor a video stream; re-encode it")
    if kind == "audio" and not has_a:
        raise InputError(f"{path}: holds no audio stream; pass an audio file, or text with --text")
    if duration > options.max_duration:
        raise InputError(f"{path}: {duration:.0f} s long, over the limit of {options.max_duration:.0f} s; split it "
                         "or raise the limit (--max-duration / AnalyzerOptions.max_duration)")
    return Probe(path, kind, duration, has_a, has_v and kind == "video", w, h, notes)


def _attached_picture(stream: object) -> bool:
    """A cover image inside an audio file (mp3 / m4a artwork) is not a video."""
    disp = getattr(stream, "disposition", None)
    try:
        return bool(disp is not None and "attached_pic" in str(disp))
    except Exception:  # noqa: BLE001 - PyAV versions differ
        return False


def read_text_file(path: str | Path) -> list[str]:
    """The lines of a text file (``--text-file``): UTF-8, or UTF-8 / UTF-16 / UTF-32 with a byte-order mark.
    InputError names the fix for anything else (another encoding, binary data, a missing file)."""
    import codecs

    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise InputError(f"{path}: a symbolic link to nothing (broken, or a loop of links); point it at a real file")
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder; --text-file takes a text file (one utterance per line)") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read the text file ({e.strerror or e}); check the path") from None
    boms = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
            (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
    enc = next((e for bom, e in boms if data.startswith(bom)), "utf-8")
    try:
        text = data.decode(enc)
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text (byte {e.start}: {data[e.start:e.start + 1]!r}); re-save it as "
                         "UTF-8 (e.g. `iconv -f latin1 -t utf-8`), or it is not a text file") from None
    if "\0" in text:
        raise InputError(f"{path}: holds NUL characters, so it is binary, not text; pass a UTF-8 text file")
    return text.splitlines()


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return msg[:160]


def decode_audio(p: Probe) -> tuple[np.ndarray, list[str]]:
    """The whole audio stream as 16 kHz mono float32, plus notes (e.g. decoding stopped early)."""
    import av

    notes: list[str] = []
    chunks: list[np.ndarray] = []
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    try:
        with av.open(str(p.path)) as c:
            stream = c.streams.audio[0]
            try:
                for frame in c.decode(stream):
                    for out in resampler.resample(frame):
                        chunks.append(out.to_ndarray().reshape(-1))
                for out in resampler.resample(None):
                    chunks.append(out.to_ndarray().reshape(-1))
            except _ffmpeg_errors() as e:
                if not chunks:
                    raise
                got = sum(len(x) for x in chunks) / SAMPLE_RATE
                notes.append(f"audio decoding stopped at {got:.1f} s ({_short(e)}): the file looks truncated")
    except _ffmpeg_errors() as e:
        raise InputError(f"{p.path}: audio cannot be decoded ({_short(e)}); re-encode it") from None
    audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if audio.size == 0:
        raise InputError(f"{p.path}: the audio stream holds no samples; re-encode it")
    got = len(audio) / SAMPLE_RATE
    if not notes and p.duration > 2.0 and got < 0.9 * p.duration:  # FFmpeg stops quietly at a cut
        notes.append(f"audio ends at {got:.1f} s of the {p.duration:.1f} s the file declares: it looks truncated "
                     "(the audio up to there was analysed)")
    return audio, notes


def load_audio(path: str | Path, options: MediaOptions = MediaOptions()) -> np.ndarray:
    """Validate and decode a file's audio to 16 kHz mono float32 (training and feature extraction use
    the same decoder as analysis, so features match)."""
    return decode_audio(probe(path, options))[0]


def _target_size(w: int, h: int, max_side: int) -> tuple[int, int]:
    s = min(1.0, max_side / max(w, h, 1))
    # Even sizes keep swscale on its fast paths.
    return max(2, int(w * s) // 2 * 2), max(2, int(h * s) // 2 * 2)


def iter_frames(p: Probe, options: MediaOptions = MediaOptions()) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (time, RGB uint8 frame) sampled at ``options.fps``; only kept frames are converted."""
    import av

    step = 1.0 / options.fps
    next_t = 0.0
    try:
        with av.open(str(p.path)) as c:
            stream = c.streams.video[0]
            # Decoding is the costliest part of a video's face analysis, so it is made cheap where that changes
            # little: no deblocking filter (faces at <= 640 px scarcely differ: on the 60 s benchmark clip 97.6 %
            # of frames kept their top class, mean |dp| 0.008) and slice threads only (frame threads cost more
            # CPU than they save beside skipped frames); together 1.0 CPU-s instead of 1.3-1.5 for that clip.
            stream.thread_type = "SLICE"
            stream.codec_context.options = {"skip_loop_filter": "all"}
            rate = float(stream.average_rate or 0)
            # Keeping one frame in several, most need not be decoded at all: skipping B-frames (which
            # P/I frames do not reference in common encoders) halves H.264 decoding, skipping only
            # unreferenced frames saves ~35 %. Either costs at most a few frame intervals of timing.
            if rate >= 4 * options.fps:
                stream.codec_context.skip_frame = "BIDIR"
            elif rate >= 2 * options.fps:
                stream.codec_context.skip_frame = "NONREF"
            w, h = _target_size(stream.codec_context.width, stream.codec_context.height, options.frame_max_side)
            for frame in c.decode(stream):
                t = float(frame.time) if frame.time is not None else next_t
                if t + 1e-6 < next_t:
                    continue
                next_t = t + step
                yield t, frame.to_ndarray(width=w, height=h, format="rgb24", interpolation="FAST_BILINEAR")
    except _ffmpeg_errors() as e:
        # Frames decoded before the error are kept; the caller notes the shortfall.
        raise InputError(f"{p.path}: video decoding failed ({_short(e)}); the file looks corrupt or truncated") from None


def decode_image(p: Probe) -> np.ndarray:
    """A still image as RGB uint8."""
    import av

    try:
        with av.open(str(p.path)) as c:
            frame = next(c.decode(video=0))
            return frame.to_ndarray(format="rgb24")
    except (StopIteration, *_ffmpeg_errors()) as e:
        raise InputError(f"{p.path}: image cannot be decoded ({_short(e) if str(e) else 'no frame'}); "
                         "re-save it as JPEG or PNG") from None
