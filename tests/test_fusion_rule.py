"""The product-of-experts fusion rule (emofuse.segment_fusion.poe_rule), its parameters file, and the
constructed set's pieces that need no data (emofuse.training.constructed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emofuse.errors import InputError
from emofuse.experts import to_output
from emofuse.segment_fusion import POE_FILE, POE_FORMAT, build, poe_rule, read_poe
from emofuse.taxonomy import EMOTIONS

K = len(EMOTIONS)


def _params(**kw: object) -> dict:
    doc = {"format": POE_FORMAT, "labels": list(EMOTIONS), "priors": {}, "temper": {}, "floor": 0.2,
           "voice_seconds": 1.0}
    doc.update(kw)
    return doc


def _p(*weights: float) -> np.ndarray:
    p = np.array(weights + (1.0,) * (K - len(weights)), dtype=float)
    return p / p.sum()


def test_plain_product_multiplies_and_renormalises() -> None:
    a, b = _p(4, 1, 1), _p(1, 3, 1)
    f = poe_rule(_params())({"voice": to_output(a), "face": to_output(b)})
    want = a * b / (a * b).sum()
    assert f is not None and np.allclose([f.probs[e] for e in EMOTIONS], want, atol=1e-6)
    assert f.method == "poe" and f.label == EMOTIONS[int(want.argmax())]


def test_an_expert_that_only_repeats_its_prior_adds_nothing() -> None:
    prior = _p(6, 1, 1)  # e.g. a text head that leans to neutral on every line
    face = _p(1, 1, 5)
    rule = poe_rule(_params(priors={"text:minilm-l6-emo": prior.tolist()}))
    f = rule({"face": to_output(face), "text": to_output(prior, encoder="minilm-l6-emo")})
    assert f is not None and np.allclose([f.probs[e] for e in EMOTIONS], face, atol=1e-6)
    # without the division the prior's lean is counted: the answer moves toward its first class
    g = poe_rule(_params(priors={"text:minilm-l6-emo": prior.tolist()}), use_priors=False)(
        {"face": to_output(face), "text": to_output(prior, encoder="minilm-l6-emo")})
    assert g is not None and g.probs[EMOTIONS[0]] > f.probs[EMOTIONS[0]]


def test_tempers_and_reliability_scale_each_expert() -> None:
    voice, face = _p(5, 1), _p(1, 5)
    rule = poe_rule(_params(temper={"voice": 1.0, "face": 1.0}))
    short = rule({"voice": to_output(voice, seconds=0.5), "face": to_output(face)})  # half a second: r = 0.5
    full = rule({"voice": to_output(voice, seconds=2.0), "face": to_output(face)})
    assert short is not None and full is not None
    assert short.weights["voice"] < full.weights["voice"] and short.label == EMOTIONS[1]
    hot = poe_rule(_params(temper={"voice": 3.0, "face": 1.0}))({"voice": to_output(voice), "face": to_output(face)})
    assert hot is not None and hot.label == EMOTIONS[0]


def test_below_the_floor_an_expert_is_left_out_with_a_note() -> None:
    rule = poe_rule(_params(floor=0.3))
    f = rule({"voice": to_output(_p(9), seconds=0.1), "face": to_output(_p(1, 4))})
    assert f is not None and set(f.weights) == {"face"} and f.label == EMOTIONS[1]
    assert "voice left out: reliability 0.10 < 0.30" in f.method
    assert rule({"voice": to_output(_p(9), seconds=0.1)}) is None  # nothing left: no fused answer
    low = poe_rule(_params(floor=0.5))({"text": to_output(_p(2), quality=0.4, encoder="e5-small"), "face": to_output(_p(1, 2))})
    assert low is not None and "text left out" in low.method


def test_a_lone_expert_answers_as_it_would_alone() -> None:
    prior = _p(6, 1, 1)
    text = to_output(_p(2, 1, 1), encoder="minilm-l6-emo", quality=0.9)
    rule = poe_rule(_params(priors={"text:minilm-l6-emo": prior.tolist()}, temper={"text": 0.05}))
    f = rule({"text": text})  # typed text, or a face-less audio track whose voice was left out
    assert f is not None and f.probs == text.probs and f.label == EMOTIONS[0] and f.weights == {"text": 1.0}
    assert f.method == "poe (text alone)" and f.confidence == pytest.approx(text.confidence)


def test_poe_is_the_default_rule() -> None:
    from emofuse.pipeline import AnalyzerOptions

    assert AnalyzerOptions().fusion is None  # None: the analysis builds segment_fusion.build()'s default
    f = build()({"voice": to_output(_p(3), seconds=2.0), "face": to_output(_p(3))})
    assert f is not None and f.method.startswith("poe")


def test_the_parameters_file_is_checked(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="benchmarks/fusion_constructed.py --save"):
        read_poe(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match="not readable JSON"):
        read_poe(bad)
    bad.write_text(json.dumps(_params(labels=["a", "b"])), encoding="utf-8")
    with pytest.raises(InputError, match=POE_FORMAT):
        read_poe(bad)


@pytest.mark.skipif(not POE_FILE.is_file(), reason="no fitted fusion-poe.json shipped")
def test_the_shipped_parameters_build_the_rule() -> None:
    doc = read_poe()
    assert set(doc["temper"]) == {"voice", "face", "text"} and all(len(v) == K for v in doc["priors"].values())
    f = build("poe")({"voice": to_output(_p(3), seconds=2.0), "face": to_output(_p(3))})
    assert f is not None and f.label == EMOTIONS[0] and f.method.startswith("poe")


def test_fit_poe_gives_the_informative_expert_the_larger_temper() -> None:
    from emofuse.training.constructed import Table, fit_poe

    rng = np.random.default_rng(0)
    n = 280
    y = np.arange(n) % K

    def expert(acc: float) -> np.ndarray:  # right with probability acc, else a random class; peaked either way
        hit = np.where(rng.random(n) < acc, y, rng.integers(0, K, n))
        P = np.full((n, K), 0.3 / (K - 1))
        P[np.arange(n), hit] = 0.7
        return P

    t = Table(y, np.array(["fit"] * n), np.array(["c"] * n), np.array(["s"] * n), np.array(["en"] * n),
              {"voice": expert(0.15), "face": expert(0.9), "text": np.full((n, K), np.nan)},
              np.full(n, 2.0), np.full(n, np.nan), np.array([""] * n), np.array(["detected"] * n))
    doc = fit_poe(t, np.arange(n))
    assert doc["temper"]["face"] > 2 * doc["temper"]["voice"]
    assert np.allclose(doc["priors"]["face"], 1.0 / K, atol=0.05)  # a balanced expert's prior is near uniform
    assert set(doc["priors"]) == {"voice", "face"}  # text absent on every row: no prior


def test_speaker_parts_and_selection() -> None:
    from emofuse.corpora import Item
    from emofuse.training.constructed import select, speaker_parts

    items = [Item(id=f"{c}{s}{k}", corpus=c, speaker=f"{c}{s}", label=EMOTIONS[k % 3])
             for c in ("a", "b") for s in range(5) for k in range(12)]
    parts = speaker_parts(items, 0.4, 0)
    for c in ("a", "b"):
        own = {s: p for s, p in parts.items() if s.startswith(c)}
        assert sorted(own.values()).count("val") == 2 and len(own) == 5
    assert parts == speaker_parts(items, 0.4, 0)  # seeded
    chosen = select(items, parts, 3, 0)
    groups: dict[tuple[str, str, str | None], int] = {}
    for it in chosen:
        key = (it.corpus, parts[str(it.speaker)], it.label)
        groups[key] = groups.get(key, 0) + 1
    assert len(groups) == 2 * 2 * 3 and set(groups.values()) == {3}


def test_uncalibrated_undoes_each_experts_temperature() -> None:
    from emofuse.training.constructed import Table, uncalibrated

    n = 4
    rng = np.random.default_rng(1)
    z = rng.normal(size=(n, K))
    T = 2.0
    p = np.exp(z / T) / np.exp(z / T).sum(1, keepdims=True)  # a voice head calibrated with T = 2
    P = {"voice": p, "face": np.full((n, K), 1.0 / K), "text": np.full((n, K), np.nan)}
    t = Table(np.zeros(n, int), np.array(["val"] * n), np.array(["c"] * n), np.array(["s"] * n), np.array(["tr"] * n),
              P, np.ones(n), np.full(n, np.nan), np.array([""] * n), np.array(["detected"] * n), np.arange(n),
              np.full(n, T))
    u = uncalibrated(t)
    assert np.allclose(u.P["voice"], np.exp(z) / np.exp(z).sum(1, keepdims=True))
    assert np.allclose(u.P["face"], 1.0 / K) and np.isnan(u.P["text"]).all()  # absent stays absent



def test_constructed_table_keeps_its_raw_features(tmp_path: Path) -> None:
    from emofuse.training.constructed import Table

    n, K = 3, len(EMOTIONS)
    P = {m: np.full((n, K), 1.0 / K) for m in ("voice", "face", "text")}
    X = {"voice": np.arange(n * 4, dtype=np.float32).reshape(n, 4), "text": np.full((n, 2), np.nan, np.float32)}
    t = Table(np.zeros(n, int), np.array(["val"] * n), np.array(["c"] * n), np.array(["s"] * n), np.array(["en"] * n),
              P, np.ones(n), np.full(n, np.nan), np.array([""] * n), np.array([""] * n), np.arange(n), np.ones(n),
              X, np.array(["", "text-e5-small", ""]))
    t.save(tmp_path / "t.npz")
    u = Table.load(tmp_path / "t.npz")
    assert np.array_equal(u.X["voice"], X["voice"]) and np.isnan(u.X["text"]).all()
    assert list(u.text_src) == ["", "text-e5-small", ""]


def test_poe_notes_when_the_experts_it_was_fitted_with_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    from emofuse import segment_fusion as sf

    shipped = sf.read_poe()
    assert sf.stale_experts(shipped) == ()  # the shipped parameters were fitted with the shipped experts
    assert sf.poe_rule().notes == ()  # type: ignore[attr-defined]
    other = dict(shipped, experts=dict(shipped["experts"], **{"face-cnn.int8.onnx": "0" * 64}))
    (note,) = sf.stale_experts(other)
    assert "face-cnn.int8.onnx" in note and "fusion_constructed.py --save" in note
    monkeypatch.setattr(sf, "read_poe", lambda: other)
    assert sf.poe_rule().notes == (note,)  # type: ignore[attr-defined]
    assert "do not record" in sf.stale_experts({k: v for k, v in shipped.items() if k != "experts"})[0]
