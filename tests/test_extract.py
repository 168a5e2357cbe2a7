"""emofuse.extract (cached, resumable extraction) with the extractors of emofuse.extractors: text extractors on
synthetic items, one slow voice test, and the `emofuse extract` command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emofuse import extract as ext
from emofuse import extractors as exs
from emofuse.corpora.manifest import Item
from emofuse.features import voice as vf
from emofuse.errors import InputError
from emofuse.features.text import get_encoder, is_ready

pytestmark = pytest.mark.skipif(not is_ready("minilm-l6"), reason="MiniLM graph not set up: run `emofuse setup`")

TEXTS = ["I am so happy today!", "Get out of here, I hate you.", "The train leaves at noon.",
         "What a wonderful surprise", "I am scared of the dark", "This is disgusting.",
         "Nothing special happened.", "I miss her so much."]


def items(texts=TEXTS, corpus: str = "synth") -> list[Item]:
    return [Item(id=f"t{i:02d}", corpus=corpus, text=t) for i, t in enumerate(texts)]


def test_registry_and_config_hash() -> None:
    assert {"voice-whisper-base", "voice-whisper-tiny.en", "text-minilm-l6", "text-e5-small"} <= set(exs.EXTRACTORS)
    hashes = {exs.EXTRACTORS[n].config_hash() for n in exs.EXTRACTORS}
    assert len(hashes) == len(exs.EXTRACTORS)
    e = exs.EXTRACTORS["voice-whisper-base"]
    assert e.identity()["model_sha256"] and "voice-v" in e.identity()["version"]
    with pytest.raises(InputError, match="unknown extractor 'nope'; known: .*voice-whisper-base"):
        exs.EXTRACTORS["nope"]


@pytest.mark.parametrize("name,encoder", [("text-minilm-l6", "minilm-l6"), ("text-e5-small", "e5-small")])
def test_matches_encoder_and_second_run_is_cached(tmp_path: Path, name: str, encoder: str) -> None:
    its = items()
    r1 = ext.extract(its, name, tmp_path, progress=False)
    assert (r1.n_total, r1.n_cached, r1.n_done, r1.n_failed) == (8, 0, 8, 0)
    assert r1.items_per_second > 0
    ids, X = ext.load_features(its, name, tmp_path)
    assert ids == [it.id for it in its]
    ref = get_encoder(encoder).encode(TEXTS)
    np.testing.assert_allclose(X, ref, atol=1e-5)
    r2 = ext.extract(its, name, tmp_path, progress=False)
    assert (r2.n_cached, r2.n_done, r2.n_failed) == (8, 0, 0)
    folder = ext.cache_folder(exs.EXTRACTORS[name], tmp_path)
    assert folder.name.startswith(name + "-") and (folder / "config.json").exists()
    assert not list(folder.glob("*.tmp*"))


def test_resume_after_interruption(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    its = items()
    real = exs._compute_text
    calls = {"n": 0}

    def flaky(model, cfg, chunk):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the run dies in the middle
        return real(model, cfg, chunk)

    # Extractor is frozen: swap the registry entry
    monkeypatch.setitem(exs.EXTRACTORS, "text-minilm-l6",
                        exs.Extractor("text-minilm-l6", "text", exs.EXTRACTORS["text-minilm-l6"].config,
                                      exs._load_text, flaky))
    with pytest.raises(KeyboardInterrupt):
        ext.extract(its, "text-minilm-l6", tmp_path, progress=False, chunk_size=2)
    monkeypatch.undo()
    r = ext.extract(its, "text-minilm-l6", tmp_path, progress=False, chunk_size=2)
    assert (r.n_cached, r.n_done, r.n_failed) == (4, 4, 0)
    _, X = ext.load_features(its, "text-minilm-l6", tmp_path)
    np.testing.assert_allclose(X, get_encoder("minilm-l6").encode(TEXTS), atol=1e-5)


def test_prepopulated_half_and_changed_text(tmp_path: Path) -> None:
    its = items()
    ext.extract(its[:4], "text-minilm-l6", tmp_path, progress=False)
    r = ext.extract(its, "text-minilm-l6", tmp_path, progress=False)
    assert (r.n_cached, r.n_done) == (4, 4)
    changed = list(its)
    changed[0] = Item(id="t00", corpus="synth", text="A different sentence now.")
    with pytest.raises(InputError, match="1 of 8 items"):
        ext.load_features(changed, "text-minilm-l6", tmp_path)
    r = ext.extract(changed, "text-minilm-l6", tmp_path, progress=False)
    assert (r.n_cached, r.n_done) == (7, 1)
    _, X = ext.load_features(changed, "text-minilm-l6", tmp_path)
    np.testing.assert_allclose(X[0], get_encoder("minilm-l6").encode(["A different sentence now."])[0], atol=1e-5)


def test_failures_reported_not_cached(tmp_path: Path) -> None:
    its = items(TEXTS[:3] + ["   "]) + [Item(id="none", corpus="synth")]
    r = ext.extract(its, "text-minilm-l6", tmp_path, progress=False)
    assert (r.n_done, r.n_failed) == (3, 2)
    assert dict(r.failures)["t03"].endswith("empty text") and "none" in dict(r.failures)
    assert "2 failed" in r.summary() and "empty text" in r.summary()
    r2 = ext.extract(its, "text-minilm-l6", tmp_path, progress=False)  # failures are retried, never skipped
    assert (r2.n_cached, r2.n_done, r2.n_failed) == (3, 0, 2)
    with pytest.raises(InputError, match=r"2 of 5 items .*emofuse extract --corpus synth"):
        ext.load_features(its, "text-minilm-l6", tmp_path)


def test_missing_audio_fails_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A voice item whose file is missing, or an Opus file that does not decode, is reported; the others are
    embedded (stub model, no Whisper)."""
    from emofuse.features import voice as vf

    wav = tmp_path / "a.wav"
    wav.write_bytes(b"x")
    bad = tmp_path / "EB0_anger_1.opus"
    bad.write_bytes(b"OggS" + bytes(200))  # an Ogg page header and nothing behind it
    import emofuse.media

    real = emofuse.media.load_audio
    monkeypatch.setattr(emofuse.media, "load_audio",
                        lambda p: real(p) if not Path(p).exists() or Path(p).suffix == ".opus"
                        else np.ones(16000, dtype=np.float32))
    monkeypatch.setattr(vf, "embed_clips", lambda model, clips, **kw: np.stack([np.full(4, len(c)) for c in clips]))
    monkeypatch.setattr(exs, "_load_voice", lambda cfg, threads: object())
    e = exs.EXTRACTORS["voice-whisper-tiny.en"]
    monkeypatch.setitem(exs.EXTRACTORS, e.name, exs.Extractor(e.name, "voice", e.config, exs._load_voice, e.compute))
    its = [Item(id="ok1", corpus="c", paths=(wav,), speaker="s1"),
           Item(id="gone", corpus="c", paths=(tmp_path / "missing.wav",), speaker="s1"),
           Item(id="ok2", corpus="c", paths=(wav,), speaker="s2"),
           Item(id="EB0_anger_1", corpus="c", paths=(bad,), speaker="s2")]
    r = ext.extract(its, e.name, tmp_path / "cache", progress=False)
    assert (r.n_done, r.n_failed) == (2, 2)
    fails = dict(r.failures)
    assert "no such file" in fails["gone"] and "EB0_anger_1" in fails  # named, with the reason
    assert "2 failed" in r.summary()
    ids, X = ext.load_features([its[0], its[2]], e.name, tmp_path / "cache")
    assert ids == ["ok1", "ok2"] and X.shape == (2, 4)


def test_workers(tmp_path: Path) -> None:
    its = items()
    r = ext.extract(its, "text-minilm-l6", tmp_path, workers=2, progress=False, chunk_size=4)
    assert (r.n_done, r.n_failed) == (8, 0)
    _, X = ext.load_features(its, "text-minilm-l6", tmp_path)
    np.testing.assert_allclose(X, get_encoder("minilm-l6").encode(TEXTS), atol=1e-5)


def test_extract_command(tmp_path: Path, data_root: Path) -> None:
    """`emofuse extract` on 5 MELD lines: exit 0 and every item computed; then all cached; a failing
    item gives exit 1 with its reason; an unknown extractor exit 2 with the choices."""
    import json

    from typer.testing import CliRunner

    from emofuse.cli import app

    args = ["extract", "--corpus", "meld", "--data", str(data_root), "--cache", str(tmp_path), "--limit", "5",
            "--no-progress"]
    r = CliRunner().invoke(app, args + ["--extractor", "text-minilm-l6", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert (rep["n_total"], rep["n_done"], rep["n_failed"], rep["n_cached"]) == (5, 5, 0, 0)
    r = CliRunner().invoke(app, args + ["--extractor", "text-minilm-l6"])
    assert r.exit_code == 0 and "5 items: 5 cached, 0 computed, 0 failed" in r.stdout
    r = CliRunner().invoke(app, args + ["--extractor", "voice-whisper-tiny.en"])  # MELD has text, no audio
    assert r.exit_code == 1 and "5 failed" in r.stdout and "no media path" in r.stdout
    r = CliRunner().invoke(app, args + ["--extractor", "nope"])
    assert r.exit_code == 2 and "unknown extractor 'nope'" in r.stderr and "text-minilm-l6" in r.stderr


@pytest.mark.slow
def test_voice_on_ravdess(tmp_path: Path, data_root: Path) -> None:
    from emofuse.corpora import prepare

    try:
        m = prepare("ravdess", data_root)
    except InputError as e:
        pytest.skip(str(e))
    its = m.filter(speaker=m.speakers()[0])[:3]
    r = ext.extract(its, "voice-whisper-tiny.en", tmp_path, progress=False)
    assert (r.n_done, r.n_failed) == (3, 0) and r.rtf is not None and r.audio_seconds > 5
    ids, X = ext.load_features(its, "voice-whisper-tiny.en", tmp_path)
    assert X.shape == (3, 768) and np.isfinite(X).all()
    assert ext.extract(its, "voice-whisper-tiny.en", tmp_path, progress=False).n_cached == 3


def test_relative_and_absolute_roots_share_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fingerprint uses the file's name, size and content, not the path as written."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.wav").write_bytes(b"RIFF0000")
    monkeypatch.chdir(tmp_path)
    rel = Item(id="a", corpus="c", paths=(Path("data/a.wav"),))
    absolute = Item(id="a", corpus="c", paths=(tmp_path / "data" / "a.wav",))
    assert ext.fingerprint(rel, "voice") == ext.fingerprint(absolute, "voice")


def test_a_copied_corpus_keeps_its_cache_and_an_edited_file_misses_it(tmp_path: Path) -> None:
    """A new mtime (a corpus copied or re-synced) keeps the row; new bytes of the same size miss it; a row
    written with the old name|size|mtime fingerprint counts while the file is untouched."""
    import os

    f = tmp_path / "a.wav"
    f.write_bytes(b"RIFF0000")
    it = Item(id="a", corpus="c", paths=(f,))
    fp = ext.fingerprint(it, "voice")
    index = {"c/a": (fp, tmp_path / "shard.npz", 0)}
    os.utime(f, (1_000_000_000, 1_000_000_000))
    assert ext.fingerprint(it, "voice") == fp and ext._cached(it, "voice", index)
    legacy = {"c/a": (f"a.wav|8|{1_000_000_000}", tmp_path / "shard.npz", 0)}
    assert ext._cached(it, "voice", legacy)
    os.utime(f, (1_000_000_100, 1_000_000_100))
    assert not ext._cached(it, "voice", legacy)  # touched: the legacy row is stale
    f.write_bytes(b"RIFF0001")
    os.utime(f, (1_000_000_000, 1_000_000_000))
    assert ext.fingerprint(it, "voice") != fp and not ext._cached(it, "voice", index)


# ------------------------------------------------------------------------- voice-whisper-base-seq (sequences)


def test_chunk_frames_averages_fixed_half_second_chunks() -> None:
    enc = np.arange(1500 * 2, dtype=np.float32).reshape(1500, 2)
    x = vf.chunk_frames(enc, 0.0, 1.2)  # frames 0..59: chunks of 25, 25, 10
    assert x.shape == (3, 2)
    np.testing.assert_allclose(x[0], enc[:25].mean(0))
    np.testing.assert_allclose(x[2], enc[50:60].mean(0))


def test_sequence_store_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sequences of different lengths are padded in their shard and come back with their lengths (stub
    model); the vector extractors' cache keys are untouched by the new extractor."""
    import emofuse.media

    secs = {"a.wav": 1, "b.wav": 3}
    for name in secs:
        (tmp_path / name).write_bytes(b"x")
    monkeypatch.setattr(emofuse.media, "load_audio", lambda p: np.ones(16000 * secs[Path(p).name], np.float32))
    monkeypatch.setattr(exs, "embed_clip_sequences",  # T = seconds + 1, values = T
                        lambda model, clips, cfg: [np.full((len(c) // 16000 + 1, 4), len(c) // 16000 + 1, np.float32)
                                                   for c in clips])
    e = exs.EXTRACTORS["voice-whisper-base-seq"]
    monkeypatch.setitem(exs.EXTRACTORS, e.name, exs.Extractor(e.name, "voice", e.config, lambda c, t: object(),
                                                              e.compute))
    its = [Item(id=n[0], corpus="c", paths=(tmp_path / n,), speaker="s") for n in secs]  # one shard
    r = ext.extract(its, e.name, tmp_path / "cache", progress=False)
    assert (r.n_done, r.n_failed) == (2, 0)
    ids, X, n = ext.load_sequences(its, e.name, tmp_path / "cache")
    assert ids == ["a", "b"] and X.shape == (2, 4, 4) and n.tolist() == [2, 4]
    assert (X[0, :2] == 2).all() and (X[0, 2:] == 0).all() and (X[1] == 4).all()
    assert exs.EXTRACTORS["voice-whisper-base"].config_hash() == "4bc2f40712"


@pytest.mark.slow
def test_voice_seq_on_real_speech(tmp_path: Path, media: Path) -> None:
    """Real Whisper-base states: [T, 512] with T = the speech span in 0.5 s chunks, rounded up."""
    from emofuse.features import voice as vf
    from emofuse.media import load_audio

    it = Item(id="beckett", corpus="media", paths=(media / "beckett.wav",), speaker="s")
    r = ext.extract([it], "voice-whisper-base-seq", tmp_path, progress=False)
    assert (r.n_done, r.n_failed) == (1, 0)
    _, X, n = ext.load_sequences([it], "voice-whisper-base-seq", tmp_path)
    a = load_audio(media / "beckett.wav")
    s0, s1 = vf.speech_span(a, pad_s=vf.VAD_PAD_S)
    cut = a[int(round(s0 * 16000)): int(round(s1 * 16000))]
    lo, hi = vf.speech_span(cut)
    assert X.shape == (1, int(n[0]), 512) and np.isfinite(X).all()
    assert abs(int(n[0]) - np.ceil((min(hi, 30.0) - lo) / 0.5)) <= 1
    assert ext.extract([it], "voice-whisper-base-seq", tmp_path, progress=False).n_cached == 1
