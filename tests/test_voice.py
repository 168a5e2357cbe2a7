"""Voice expert: encoder-frame pooling, clip packing, the shipped heads, and (slow) real RAVDESS audio."""

from __future__ import annotations

import numpy as np
import pytest

from emofuse.experts import shipped_head
from emofuse.features import voice as vf
from emofuse.media import load_audio
from emofuse.taxonomy import EMOTIONS

# ------------------------------------------------------------------------------------------- pool_frames


def _enc(T: int = 100, d: int = 4) -> np.ndarray:
    """Frame t holds t in every channel (so a pooled mean names the frames used)."""
    return np.repeat(np.arange(T, dtype=np.float32)[:, None], d, axis=1)


def test_pool_frames_range_and_shape():
    enc = _enc()
    v = vf.pool_frames(enc, 0.1, 0.3)  # frames floor(5)..ceil(15)-1 = 5..14
    assert v.shape == (8,) and v.dtype == np.float32
    assert np.allclose(v[:4], np.arange(5, 15).mean())
    assert np.allclose(v[4:], np.arange(5, 15).std())


def test_pool_frames_partial_frames_are_included():
    enc = _enc()
    lo, hi = vf.frame_range(0.105, 0.301, 100)  # start inside frame 5, end inside frame 15
    assert (lo, hi) == (5, 16)
    assert np.allclose(vf.pool_frames(enc, 0.105, 0.301)[0], np.arange(5, 16).mean())


def test_pool_frames_clamps_to_window():
    enc = _enc(50)
    assert np.allclose(vf.pool_frames(enc, -3.0, 99.0)[0], np.arange(50).mean())
    assert vf.frame_range(-1.0, 0.5, 50) == (0, 25)
    assert vf.frame_range(0.9, 5.0, 50) == (45, 50)
    v = vf.pool_frames(enc, 7.0, 9.0)  # entirely after the window: the last frame
    assert np.allclose(v[:4], 49) and np.allclose(v[4:], 0)


@pytest.mark.parametrize("start,end", [(0.2, 0.2), (0.2, 0.1), (0.2, 0.2001)])
def test_pool_frames_empty_range_gives_one_frame(start, end):
    v = vf.pool_frames(_enc(), start, end)
    assert np.allclose(v[:4], 10) and np.allclose(v[4:], 0)


def test_pool_frames_accepts_batch_axis_and_rejects_bad_shapes():
    enc = _enc(1500, 6)
    assert np.array_equal(vf.pool_frames(enc[None], 1.0, 2.0), vf.pool_frames(enc, 1.0, 2.0))
    assert vf.pool_frames(enc, 0, 30).shape == (12,)
    with pytest.raises(ValueError):
        vf.pool_frames(np.zeros(10), 0, 1)
    with pytest.raises(ValueError):
        vf.pool_frames(np.zeros((0, 4)), 0, 1)


# ------------------------------------------------------------------------------------------- packing


def test_pack_windows_fits_clips_in_windows_with_gaps():
    durs = [4.0] * 10 + [29.0, 31.0, 2.0]
    windows = vf.pack_windows(durs, window_s=30.0, gap_s=0.5)
    seen = [i for w in windows for i, _ in w]
    assert seen == list(range(len(durs)))  # order kept, every clip once
    for w in windows:
        assert w[0][1] == 0.0
        for (i, s), (j, t) in zip(w, w[1:]):
            assert t == pytest.approx(s + durs[i] + 0.5)
        if len(w) > 1:
            assert w[-1][1] + durs[w[-1][0]] <= 30.0
    assert [len(w) for w in windows] == [6, 4, 1, 1, 1]  # 6 x 4 s + 5 x 0.5 s = 26.5 s; a 7th would end at 31 s


class _FakeWhisper:
    """Stands in for faster_whisper.WhisperModel: 'mel' frame k = mean of samples k*160..; the 'encoder'
    averages pairs of mel frames into d identical channels (so a frame's value is the audio level there)."""

    d = 3

    def feature_extractor(self, audio: np.ndarray) -> np.ndarray:
        audio = np.pad(audio, (0, 160))
        n = len(audio) // 160
        return np.repeat(audio[: n * 160].reshape(n, 160).mean(1)[None], 80, axis=0).astype(np.float32)

    def encode(self, feats: np.ndarray) -> np.ndarray:
        x = feats[0] if feats.ndim == 2 else feats[0, 0]
        x = x[: len(x) // 2 * 2].reshape(-1, 2).mean(1)
        return np.repeat(x[:, None], self.d, axis=1)[None]


@pytest.mark.parametrize("packed", [True, False])
def test_embed_clips_pools_each_clips_own_frames(packed):
    levels = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    clips = [np.full(int(16000 * (3.0 + 0.37 * i)), v, np.float32) for i, v in enumerate(levels)]
    X = vf.embed_clips(_FakeWhisper(), clips, packed=packed)
    assert X.shape == (len(clips), 2 * _FakeWhisper.d) and X.dtype == np.float32
    # boundary frames may mix in a little silence; the mean stays within 3 % of the clip's level
    assert np.allclose(X[:, 0], levels, rtol=0.03)


def _tone(seconds: float, level: float = 0.3, f0: float = 220.0) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return (level * np.sin(2 * np.pi * f0 * t)).astype(np.float32)


def test_speech_span_finds_the_loud_part():
    rng = np.random.default_rng(0)
    clip = np.concatenate([rng.normal(0, 1e-4, 16000), _tone(2.0), rng.normal(0, 1e-4, 8000)]).astype(np.float32)
    a, b = vf.speech_span(clip, pad_s=0.0)
    assert a == pytest.approx(1.0, abs=0.021) and b == pytest.approx(3.0, abs=0.021)
    a, b = vf.speech_span(clip)  # default pad 0.1 s
    assert a == pytest.approx(0.9, abs=0.021) and b == pytest.approx(3.1, abs=0.021)
    assert vf.speech_span(clip, pad_s=5.0) == (0.0, len(clip) / 16000)
    assert vf.speech_span(np.zeros(100, np.float32)) == (0.0, 100 / 16000)  # shorter than a frame
    assert vf.speech_span(np.zeros(16000, np.float32)) == (0.0, 1.0)  # silence: the whole clip


def test_embed_clip_views_pool_speech_and_whole_clip():
    """Silence (level 0) around a loud part (level 1): the speech view sees ~only the loud frames, the
    whole-clip view also ~0.4 s of silence on each side (what survives the VAD-like cut)."""
    loud = np.full(16000 * 2, 1.0, np.float32)
    clip = np.concatenate([np.zeros(16000, np.float32), loud, np.zeros(16000, np.float32)])
    V = vf.embed_clip_views(_FakeWhisper(), [clip, clip, clip])
    assert set(V) == {"speech", "clip"} and V["speech"].shape == (3, 6)
    assert np.allclose(V["speech"][:, 0], 2.0 / 2.2, atol=0.02)  # 2 s loud in a 2.2 s span
    assert np.allclose(V["clip"][:, 0], 2.0 / 2.8, atol=0.02)  # 2 s loud in a 2.8 s cut
    assert np.array_equal(vf.embed_clips(_FakeWhisper(), [clip], span="clip")[0], V["clip"][0])
    with pytest.raises(ValueError):
        vf.embed_clips(_FakeWhisper(), [clip], span="all")


def test_embed_clips_empty():
    assert vf.embed_clips(_FakeWhisper(), []).shape[0] == 0


# ------------------------------------------------------------------------------------------- shipped heads


@pytest.mark.parametrize("asr,d", [("whisper-base", 512), ("whisper-tiny.en", 384)])
def test_shipped_voice_heads_load_and_describe_themselves(asr, d):
    from emofuse.extractors import EXTRACTORS

    head = shipped_head(f"voice-{asr}")
    assert head.labels == EMOTIONS
    assert head.W.shape == (2 * d, len(EMOTIONS)) and head.mean.shape == (2 * d,)
    f = head.feature  # the registered extractor the analysis mimics, and its config hash (model sha256 inside)
    assert f.source == f"voice-{asr}" and f.dim == 2 * d and f.kind == "vector"
    assert f.identity == EXTRACTORS[f"voice-{asr}"].config_hash()
    assert head.meta["kind"] == "voice" and head.meta["format"] == "emofuse-head/1"
    m = head.meta["metrics"]
    for protocol, corpus in (("kfold", "ravdess"), ("kfold", "savee"), ("loco", "ravdess"), ("loco", "savee")):
        assert 0.0 < m[protocol]["by_corpus"][corpus]["UA"]["mean"] <= 1.0
    assert m["kfold"]["by_corpus"]["ravdess"]["UA"]["mean"] > 0.4  # far above chance (1/7) on unseen speakers
    assert m["kfold"]["evaluated_on"] == "test" and m["kfold"]["splits"] == 6
    assert "non-commercial" in head.meta["licence"]
    t = head.meta["training"]
    n = {"whisper-base": 1440 + 480 + 4481, "whisper-tiny.en": 1440 + 480}[asr]  # base also heard nEMO
    assert t["n_items"] == n and t["n_rows"] == 2 * n and t["train_views"] == [f"voice-{asr}-clip"]
    assert 0.5 < t["calibration"]["temperature"] < 2 and t["calibration"]["ece_select_after"] <= 0.05
    assert t["config"]["data"]["extractor"] == f"voice-{asr}" and head.R is None
    p = head.predict_proba(np.zeros((2, 2 * d), np.float32))
    assert p.shape == (2, 7) and np.allclose(p.sum(1), 1)
    out = head.predict(np.zeros(2 * d, np.float32))[0]
    assert out.va_source == "projected" and set(out.probs) == set(EMOTIONS)


# ------------------------------------------------------------------------------------------- real audio


@pytest.mark.slow
def test_tiny_head_on_real_ravdess_clips(data_root):
    """Strong-intensity clips of six distinct emotions by actor 11 (a test speaker of EmoBox fold 1),
    packed and pooled as analysis would (speech spans in one window).
    The shipped head was trained on all speakers, so this checks the whole embedding path end to end
    (decode, packing, encoder, pooling, head) rather than generalisation; the folds measure that."""
    from emofuse.asr import load_whisper

    codes = {"01": "neutral", "03": "happy", "04": "sad", "05": "angry", "06": "fearful", "08": "surprised"}
    paths = [data_root / "speech" / "ravdess" / "Actor_11" / f"03-01-{e}-{'01' if e == '01' else '02'}-01-01-11.flac"
             for e in codes]
    if not all(p.exists() for p in paths):
        pytest.skip("RAVDESS Actor_11 clips missing")
    model = load_whisper("whisper-tiny.en")
    X = vf.embed_clips(model, [load_audio(p) for p in paths])
    assert X.shape == (6, 768) and np.isfinite(X).all()
    head = shipped_head("voice-whisper-tiny.en")
    probs = head.predict_proba(X)
    pred = [EMOTIONS[i] for i in probs.argmax(1)]
    truth = list(codes.values())
    for t, p, pr in zip(truth, pred, probs):
        print(f"{t:>10} -> {p:<10} p={pr.max():.2f}")
    assert sum(t == p for t, p in zip(truth, pred)) >= 3
