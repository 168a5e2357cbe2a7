"""Input validation and decoding (no models)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from badmedia import make_bad_inputs, write_wav
from emofuse.errors import InputError
from emofuse.media import MediaOptions, decode_audio, decode_image, expand_inputs, iter_frames, probe


@pytest.fixture()
def bad(tmp_path: Path) -> dict[str, Path]:
    return make_bad_inputs(tmp_path)


@pytest.mark.parametrize("name, fragment", [
    ("missing", "no such file"),
    ("empty", "empty (0 bytes)"),
    ("unsupported", "unsupported format '.xyz'"),
    ("garbage", "cannot be decoded"),
    ("garbage_image", "cannot be decoded"),
])
def test_bad_inputs_raise_input_error_naming_the_fix(bad: dict[str, Path], name: str, fragment: str) -> None:
    with pytest.raises(InputError) as e:
        pr = probe(bad[name])
        decode_image(pr) if pr.kind == "image" else decode_audio(pr)
    msg = str(e.value)
    assert fragment in msg and str(bad[name].name) in msg


def test_too_long_is_refused_with_the_limit_named(tmp_path: Path) -> None:
    p = write_wav(tmp_path / "long.wav", np.zeros(16000 * 3, np.float32))
    with pytest.raises(InputError, match=r"over the limit of 2 s.*--max-duration"):
        probe(p, MediaOptions(max_duration=2))


def test_audio_decodes_to_16k_mono(tmp_path: Path) -> None:
    t = np.arange(16000) / 16000
    p = write_wav(tmp_path / "tone.wav", 0.5 * np.sin(2 * np.pi * 440 * t).astype(np.float32))
    pr = probe(p)
    assert pr.kind == "audio" and pr.has_audio and not pr.has_video
    a, notes = decode_audio(pr)
    assert a.dtype == np.float32 and abs(len(a) - 16000) < 400 and not notes
    assert 0.45 < np.abs(a).max() < 0.55


def test_video_without_audio_stream_probes_as_video(bad: dict[str, Path]) -> None:
    pr = probe(bad["no_audio_stream"])
    assert pr.kind == "video" and not pr.has_audio and pr.has_video
    frames = list(iter_frames(pr, MediaOptions(fps=5)))
    assert 9 <= len(frames) <= 11  # 2 s at 5 fps
    ts = [t for t, _ in frames]
    assert all(b > a for a, b in zip(ts, ts[1:]))
    assert frames[0][1].shape == (120, 160, 3)


def test_folders_expand_to_supported_files(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(b"x")
    (tmp_path / "b.txt").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.JPG").write_bytes(b"x")
    got = expand_inputs([tmp_path, tmp_path / "missing.mp4"])
    assert [p.name for p in got] == ["a.wav", "c.JPG", "missing.mp4"]
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(InputError, match="no supported media"):
        probe(expand_inputs([empty])[0])


def test_real_media_probe_and_decode(media: Path) -> None:
    v = probe(media / "WolfgangLanger_Pexels.mp4")
    assert v.kind == "video" and v.has_audio and 19 < v.duration < 20.5
    frames = list(iter_frames(v, MediaOptions(fps=2, frame_max_side=320)))
    assert 37 <= len(frames) <= 41 and max(frames[0][1].shape[:2]) <= 320
    img = probe(media / "single_face.jpg")
    assert img.kind == "image"
    assert decode_image(img).shape[2] == 3
    a = probe(media / "two_cities.wav")
    assert a.kind == "audio" and 44 < a.duration < 45


def test_truncated_video_is_an_error_or_a_note(media: Path, tmp_path: Path) -> None:
    demo = media / "demo.mp4"
    if not demo.exists():
        pytest.skip("demo clip not built (scripts/make_media.py demo)")
    data = demo.read_bytes()
    p = tmp_path / "cut.mp4"
    p.write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match="cut.mp4"):
        pr = probe(p)
        decode_audio(pr)


def _encode(path: Path, audio_codec: str | None, video_codec: str | None, seconds: float = 1.0) -> Path:
    import av
    from fractions import Fraction

    sr = 48000 if audio_codec in ("libopus", "aac", "libmp3lame") else 16000
    with av.open(str(path), "w") as c:
        v = a = None
        if video_codec:
            v = c.add_stream(video_codec, rate=10)
            v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        if audio_codec:
            a = c.add_stream(audio_codec, rate=sr)
            a.layout = "mono"
        if v is not None:
            for _ in range(int(10 * seconds)):
                for p in v.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), 90, np.uint8), format="rgb24")):
                    c.mux(p)
            for p in v.encode():
                c.mux(p)
        if a is not None:
            # Feed float frames through a resampler into whatever sample format the encoder wants.
            rs = av.AudioResampler(format=a.codec_context.codec.audio_formats[0].name, layout="mono", rate=sr)
            t = np.arange(int(sr * seconds)) / sr
            x = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
            n = a.codec_context.frame_size or 1024
            for i in range(0, len(x), n):
                f = av.AudioFrame.from_ndarray(x[None, i: i + n], format="flt", layout="mono")
                f.sample_rate, f.pts, f.time_base = sr, i, Fraction(1, sr)
                for g in rs.resample(f):
                    for p in a.encode(g):
                        c.mux(p)
            for p in a.encode():
                c.mux(p)
    return path


@pytest.mark.parametrize("name, acodec, vcodec, kind", [
    ("a.flac", "flac", None, "audio"),
    ("a.mp3", "libmp3lame", None, "audio"),
    ("a.ogg", "libopus", None, "audio"),
    ("a.opus", "libopus", None, "audio"),
    ("a.m4a", "aac", None, "audio"),
    ("v.webm", "libopus", "libvpx", "video"),
    ("v.mkv", "aac", "libx264", "video"),
    ("v.mov", "aac", "libx264", "video"),
    ("v.avi", "libmp3lame", "mpeg4", "video"),
])
def test_every_supported_container_decodes(tmp_path: Path, name: str, acodec: str, vcodec: str | None, kind: str) -> None:
    p = _encode(tmp_path / name, acodec, vcodec)
    pr = probe(p)
    assert pr.kind == kind and pr.has_audio
    a, _ = decode_audio(pr)
    assert 0.8 * 16000 < len(a) < 1.3 * 16000 and 0.2 < np.abs(a).max() < 0.6  # lossy codecs overshoot a little
    if vcodec:
        assert len(list(iter_frames(pr, MediaOptions(fps=5)))) >= 4
