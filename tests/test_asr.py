"""ASR: real transcripts, timestamps, and the shared encoder states the voice expert pools from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from badmedia import write_wav
from emofuse.asr import ASROptions, WhisperASR, model_dir, to_simplified
from emofuse.errors import MissingComponentError
from emofuse.media import decode_audio, probe


def test_traditional_chinese_becomes_simplified() -> None:
    assert to_simplified("我們今天很開心，這個世界真美麗。") == "我们今天很开心，这个世界真美丽。"
    assert to_simplified("hello 123") == "hello 123"


def test_unknown_model_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(MissingComponentError, match="CTranslate2 Whisper directory"):
        model_dir(str(tmp_path / "no-such-model"))


@pytest.fixture(scope="module")
def tiny() -> WhisperASR:
    return WhisperASR(ASROptions(model="whisper-tiny.en"))


@pytest.mark.slow
def test_tiny_en_transcribes_and_embeddings_come_from_the_asr_encoder_pass(tiny: WhisperASR, media: Path) -> None:
    from faster_whisper.audio import pad_or_trim

    from emofuse.features.voice import chunk_frames, pool_frames

    audio, _ = decode_audio(probe(media / "two_cities.wav"))
    audio = audio[: 16000 * 12]  # one 30 s window, no VAD gaps to undo: times map 1:1
    asr = WhisperASR(ASROptions(model="whisper-tiny.en", vad=False))
    utts = asr.transcribe(audio)
    assert "best of times" in " ".join(u.text.lower() for u in utts)
    assert all(u.language == "en" and u.embedding is not None and u.embedding.shape == (768,) for u in utts)
    # The embedding must be exactly what a separate encoder pass over that window would give.
    feats = asr.model.feature_extractor(audio)
    enc = np.asarray(asr.model.encode(pad_or_trim(feats[:, : feats.shape[-1] - 1])))[0]  # as transcribe() slices
    for u in utts:
        np.testing.assert_allclose(u.embedding, pool_frames(enc, u.start, u.end), rtol=1e-4, atol=1e-4)
        # and the sequence input of fusion networks (voice-<model>-seq) chunks the same frames
        assert u.frames is not None and u.frames.shape[1] == 384 and u.frames.shape[0] >= (u.end - u.start) / 0.5 - 1
        np.testing.assert_allclose(u.frames, chunk_frames(enc, u.start, u.end), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_vad_gaps_are_mapped_back_to_original_time(tiny: WhisperASR, media: Path, tmp_path: Path) -> None:
    audio, _ = decode_audio(probe(media / "two_cities.wav"))
    speech = audio[16000 * 1: 16000 * 5]  # "It was the best of times, ..."
    padded = np.concatenate([np.zeros(16000 * 6, np.float32), speech, np.zeros(16000 * 3, np.float32)])
    utts = tiny.transcribe(padded)
    assert utts and "best of times" in utts[0].text.lower()
    assert 5.0 <= utts[0].start <= 7.0 and utts[-1].end <= 10.5


@pytest.mark.slow
def test_silence_gives_no_utterances(tiny: WhisperASR, tmp_path: Path) -> None:
    p = write_wav(tmp_path / "quiet.wav", np.random.default_rng(0).normal(0, 1e-4, 16000 * 3).astype(np.float32))
    audio, _ = decode_audio(probe(p))
    assert tiny.transcribe(audio) == []


@pytest.mark.slow
def test_a_10_s_window_transcribes_the_same_words_and_pools_its_own_encoder_pass(media: Path) -> None:
    from faster_whisper.audio import pad_or_trim

    from emofuse.features.voice import encode_window, pool_frames

    audio, _ = decode_audio(probe(media / "two_cities.wav"))
    speech = audio[16000 * 1: 16000 * 5]  # "It was the best of times, ..."
    asr = WhisperASR(ASROptions(model="whisper-tiny.en", vad=False, window=10))
    utts = asr.transcribe(speech)
    assert "best of times" in " ".join(u.text.lower() for u in utts)
    feats = asr.model.feature_extractor(speech)
    enc = np.asarray(asr.model.encode(pad_or_trim(feats[:, : feats.shape[-1] - 1], 1000)))[0]
    assert enc.shape[0] == 500  # 10 s of encoder frames, not 30
    for u in utts:
        np.testing.assert_allclose(u.embedding, pool_frames(enc, u.start, u.end), rtol=1e-4, atol=1e-4)
    # the training side (extractors voice-<model>-w10) encodes a 10 s window too (keeping the last mel frame the
    # ASR drops, as at 30 s: pooled vectors within 0.05)
    train = encode_window(asr.model, speech, 10.0)
    assert train.shape == enc.shape
    np.testing.assert_allclose(pool_frames(train, 0.5, 3.5), pool_frames(enc, 0.5, 3.5), atol=0.05)


@pytest.mark.parametrize("bad", [4, 31, True, "10", float("nan")])
def test_the_window_is_checked(bad: object) -> None:
    from emofuse.errors import InputError

    with pytest.raises(InputError, match="ASR window"):
        ASROptions(window=bad)  # type: ignore[arg-type]
