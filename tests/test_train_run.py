"""Config round-trip and errors; end-to-end training runs on a synthetic corpus with a fake extractor
(no models); a small MELD text run when the shared data are present."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from typer.testing import CliRunner

from emofuse import extractors as ex_mod
from emofuse.checkpoints import FeatureSpec, load_head
from emofuse.experts import LinearHead
from emofuse.cli import app
from emofuse.corpora import CORPORA
from emofuse.corpora.manifest import Corpus, Item, Manifest
from emofuse.errors import InputError
from emofuse.extractors import Extractor, TextConfig
from emofuse.training import data as data_mod
from emofuse.training import run as run_mod
from emofuse.training.config import (DataConfig, ModelConfig, ProtocolConfig, TrainConfig, dump_config,
                                     load_config, loads_config)

ROOT = Path(__file__).resolve().parent.parent
LABELS = ("neutral", "happy", "sad", "angry")


# ------------------------------------------------------------------------------------------- config


def _cfg(tmp: Path, **kw) -> TrainConfig:
    base = TrainConfig("t", DataConfig(("ravdess",), "../shared/data", "voice-whisper-tiny.en", ".cache/features"),
                       ProtocolConfig("kfold", {"val_speakers": 0.2}), ModelConfig("linear", (0.001, 0.1, 1.0), "balanced"),
                       3, str(tmp / "out"))
    return replace(base, **kw)


def _roundtrip(cfg: TrainConfig, tmp: Path) -> TrainConfig:
    p = tmp / "c.toml"
    p.write_text(dump_config(cfg))
    return load_config(p)


def test_config_roundtrip(tmp_path):
    cfg = _cfg(tmp_path)
    assert _roundtrip(cfg, tmp_path) == cfg
    loco = _cfg(tmp_path, data=DataConfig(("ravdess", "savee", "emodb"), "/data dir/x \"q\"", "voice-whisper-base",
                                          "c", limit=50),
                protocol=ProtocolConfig("loco", {"val_speakers": 2, "val_fraction": 1e-05, "labelled_only": True}),
                model=ModelConfig("linear", (1e-4, 0.5, 3.0), None), name="loco ünïcode")
    back = _roundtrip(loco, tmp_path)
    assert back == loco and back.model.class_weight is None and back.data.corpora == ("ravdess", "savee", "emodb")


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "configs").glob("*.toml")))
def test_shipped_configs_load(name, tmp_path):
    cfg = load_config(ROOT / "configs" / name)
    assert _roundtrip(cfg, tmp_path) == cfg


@pytest.mark.parametrize("text, key", [
    ('name = "x"\n[data]\ncorpora = ["ravdess"]\nroot = "r"\nextractor = "voice-whisper-tiny.en"\nbogus = 1\n',
     "data.bogus"),
    ('name = "x"\n[data]\ncorpora = ["nope"]\nroot = "r"\nextractor = "voice-whisper-tiny.en"\n', "data.corpora[0]"),
    ('name = "x"\n[data]\ncorpora = ["ravdess"]\nroot = "r"\nextractor = "voice-nope"\n', "data.extractor"),
    ('name = "x"\n[data]\ncorpora = ["ravdess"]\nroot = "r"\n', "data.extractor"),
    ('name = "x"\n[data]\ncorpora = ["ravdess"]\nroot = "r"\nextractor = "text-minilm-l6"\n[protocol]\nname = "kfolds"\n',
     "protocol.name"),
    ('name = "x"\n[data]\ncorpora = ["ravdess"]\nroot = "r"\nextractor = "text-minilm-l6"\n[model]\nC_grid = [0.1, -1]\n',
     "model.C_grid[1]"),
    ('name = "x"\n[data]\ncorpora = ["ravdess"]\nroot = "r"\nextractor = "text-minilm-l6"\n[model]\nclass_weight = "auto"\n',
     "model.class_weight"),
    ('name = "x"\n[data]\ncorpora = ["ravdess"]\nroot = "r"\nextractor = "text-minilm-l6"\nlimit = 0\n', "data.limit"),
    ('name = "x"\nseed = "0"\n[data]\ncorpora = ["ravdess"]\nroot = "r"\nextractor = "text-minilm-l6"\n', "seed"),
    ('name = "x"\n[data\n', "not valid TOML"),
])
def test_config_errors_name_the_key(text, key):
    with pytest.raises(InputError, match=key.replace("[", r"\[").replace("]", r"\]")):
        loads_config(text)


def test_missing_config_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_config(tmp_path / "none.toml")


# ------------------------------------------------------------------------------------------- synthetic


def _synthetic_items(n_speakers: int = 6, per: int = 16, splits: bool = False, seed: int = 0) -> list[Item]:
    items = []
    for s in range(n_speakers):
        for j in range(per):
            lab = LABELS[j % len(LABELS)]
            split = None
            if splits:
                split = "train" if s < n_speakers - 2 else ("val" if s == n_speakers - 2 else "test")
            items.append(Item(id=f"s{s}-{j}", corpus="synth", text=f"{lab} {s} {j} {seed}", speaker=f"spk{s}",
                              split=split, label=lab, original_label=lab))
    return items


def _fake_compute(model, cfg, items):
    out = []
    for it in items:
        lab, s, j, _ = it.text.split()
        rng = np.random.default_rng(abs(hash((s, j))) % 2**32)
        x = rng.normal(size=8).astype(np.float32)
        x[LABELS.index(lab)] += 2.0  # learnable, but not perfectly
        out.append(x)
    return out


@pytest.fixture
def synth(monkeypatch, tmp_path):
    """Registers corpus 'synth' (items set by the test) and extractor 'fake-text' (no model)."""
    state: dict = {"items": _synthetic_items()}
    monkeypatch.setitem(CORPORA, "synth", Corpus("synth", lambda root: Manifest(state["items"]), "", "any"))
    fake = Extractor("fake-text", "text", TextConfig("fake", "fake"), lambda cfg, threads: None, _fake_compute)
    monkeypatch.setitem(ex_mod.EXTRACTORS, "fake-text", fake)
    state["cfg"] = TrainConfig("synth-run", DataConfig(("synth",), str(tmp_path), "fake-text", str(tmp_path / "cache")),
                               ProtocolConfig("kfold", {"k": 3, "val_speakers": 1}),
                               ModelConfig("linear", (0.001, 0.1, 10.0), "balanced"), 0, str(tmp_path / "out"))
    return state


def test_end_to_end_kfold(synth, tmp_path):
    cfg = synth["cfg"]
    out = Path(cfg.out)
    r = run_mod.run(cfg, progress=False, save=out / "head.safetensors")
    for f in ("results.json", "report.md", "confusion.png", "curves.png", "config.toml", "head.safetensors"):
        assert (out / f).is_file(), f
    res = json.loads((out / "results.json").read_text())
    assert all(set(f["train_score_by_C"]) == set(f["val_score_by_C"]) for f in res["folds"])
    assert len(res["folds"]) == 3 == len(r["chosen_C"])
    assert all(f["evaluated_on"] == "test" for f in res["folds"])
    assert all(c in cfg.model.C_grid for c in r["chosen_C"])
    assert sum(map(sum, res["confusion_matrix"])) == len(synth["items"])  # every item tested once
    assert r["summary"]["UA"]["mean"] > 0.5
    assert load_config(out / "config.toml") == cfg
    report = (out / "report.md").read_text()
    assert "fold" in report and "±" in report and "true \\ pred" in report
    head = load_head(out / "head.safetensors")
    assert head.labels == LABELS and head.feature.source == "fake-text" and head.feature.identity
    assert head.meta["training"]["C"] == r["final"]["C"] and "UA" in head.meta["metrics"]["kfold"]["summary"]
    assert "evaluated" not in r["final"] and "saved_head" not in head.meta["metrics"]["kfold"]  # it saw every item
    # calibration: a temperature per split (ECE on its test part before/after) and one for the saved head, which
    # divides the logits of the same fit: the same labels, other confidences
    assert all(f["calibration"]["temperature"] > 0 for f in res["folds"]) and "Calibration of the saved head" in report
    T = r["final"]["calibration"]["temperature"]
    raw = run_mod.run(replace(cfg, model=replace(cfg.model, calibrate=False), out=str(tmp_path / "raw")),
                      progress=False, save=tmp_path / "raw.safetensors")
    assert "calibration" not in raw["final"] and "calibration" not in raw["folds"][0]
    plain = load_head(tmp_path / "raw.safetensors")
    np.testing.assert_allclose(head.W * T, plain.W, rtol=1e-4, atol=1e-6)
    # second run reads the cache only
    r2 = run_mod.run(cfg, progress=False)
    assert r2["data"]["extract"]["computed"] == 0 and r2["chosen_C"] == r["chosen_C"]


def test_C_choice_ignores_test_labels(synth, monkeypatch):
    cfg = replace(synth["cfg"], protocol=ProtocolConfig("holdout", {}))
    synth["items"] = _synthetic_items(splits=True)
    r1 = run_mod.run(cfg, progress=False)
    # shuffle the TEST labels (features unchanged: the fake text keeps its own label word)
    rng = np.random.default_rng(1)
    test = [it for it in synth["items"] if it.split == "test"]
    perm = rng.permutation(len(test))
    shuffled = {it.id: test[k].label for it, k in zip(test, perm)}
    synth["items"] = [replace(it, label=shuffled.get(it.id, it.label)) for it in synth["items"]]
    assert any(a.label != b.label for a, b in zip(_synthetic_items(splits=True), synth["items"]))
    r2 = run_mod.run(cfg, progress=False)
    assert r1["chosen_C"] == r2["chosen_C"]
    assert r1["folds"][0]["val_score_by_C"] == r2["folds"][0]["val_score_by_C"]
    assert r1["folds"][0]["metrics"] != r2["folds"][0]["metrics"]  # the test figures did change


def test_no_test_split_is_labelled_validation(synth, tmp_path):
    synth["items"] = [it for it in _synthetic_items(splits=True) if it.split != "test"]
    cfg = replace(synth["cfg"], protocol=ProtocolConfig("holdout", {}))
    r = run_mod.run(cfg, progress=False, save=tmp_path / "h.safetensors")
    # the saved head is fitted on train (selection part included) and scored on the validation part it never saw
    assert r["final"]["n_items"] == 64 and 0 < r["final"]["evaluated"]["UA"] <= 1
    saved = load_head(tmp_path / "h.safetensors").meta["metrics"]["holdout"]["saved_head"]
    assert saved["UA"] == round(r["final"]["evaluated"]["UA"], 4) and "synth" in saved["by_corpus"]
    f = r["folds"][0]
    assert r["evaluated_on"] == "validation" and f["n_test"] == 0
    assert f["n_select"] > 0 and f["n_train"] + f["n_select"] == 64  # C chosen on a part of train, not on val
    assert "validation figures" in (Path(cfg.out) / "report.md").read_text()


def test_train_and_evaluate_commands(synth, tmp_path):
    p = tmp_path / "synth.toml"
    synth["items"] = _synthetic_items(splits=True)
    p.write_text(dump_config(replace(synth["cfg"], protocol=ProtocolConfig("holdout", {}))))
    head = Path(synth["cfg"].out) / "head.safetensors"
    cli = CliRunner()
    r = cli.invoke(app, ["train", str(p), "--save", str(head), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "UA" in r.stdout and head.is_file()
    out = tmp_path / "eval.json"
    args = ["evaluate", "--head", str(head), "--corpus", "synth", "--data", str(tmp_path), "--cache",
            synth["cfg"].data.cache, "--no-progress"]
    r = cli.invoke(app, args + ["--extractor", "fake-text", "--split", "test", "--output", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["n"] == 16 and 0 <= res["metrics"]["UA"] <= 1 and res["extractor"] == "fake-text"
    assert cli.invoke(app, args + ["--split", "test", "--output", str(out)]).exit_code == 0  # the head names its extractor
    r = cli.invoke(app, args + ["--extractor", "text-minilm-l6"])
    assert r.exit_code == 2 and "fake-text" in r.stderr and "Traceback" not in r.output
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n')
    r = cli.invoke(app, ["train", str(bad)])
    assert r.exit_code == 2 and "data: missing required key" in r.stderr


# ------------------------------------------------------------------------------------------- real data


def test_meld_text_config_small(data_root, tmp_path):
    cfg = load_config(ROOT / "configs" / "text_meld_holdout.toml")
    cfg = replace(cfg, data=replace(cfg.data, root=str(data_root), limit=300, cache=str(tmp_path / "cache")),
                  out=str(tmp_path / "out"))
    try:
        r = run_mod.run(cfg, progress=False)
    except Exception as e:  # the MiniLM encoder is a setup component
        if "MissingComponent" in type(e).__name__:
            pytest.skip(str(e))
        raise
    assert (tmp_path / "out" / "report.md").is_file() and (tmp_path / "out" / "confusion.png").is_file()
    assert r["evaluated_on"] == "validation" and r["n_items"] == 300


def test_normalize_per_group():
    items = [Item(id=str(i), corpus="a" if i < 4 else "b", speaker=f"s{i % 2}" if i < 4 else None, text="x")
             for i in range(7)]
    X = np.arange(14, dtype=np.float32).reshape(7, 2) ** 2
    assert data_mod.normalize(X, items, "none") is X
    for mode in ("corpus", "speaker"):
        Z = data_mod.normalize(X, items, mode)
        groups = ([[0, 1, 2, 3], [4, 5, 6]] if mode == "corpus" else [[0, 2], [1, 3], [4, 5, 6]])
        for g in groups:  # items without a speaker fall back to their corpus
            np.testing.assert_allclose(Z[g].mean(axis=0), 0, atol=1e-5)
            np.testing.assert_allclose(Z[g].std(axis=0), 1, atol=1e-3)
    with pytest.raises(InputError, match="normalize"):
        data_mod.normalize(X, items, "global")


def test_normalized_run_refuses_to_save_a_head(synth, tmp_path):
    cfg = replace(synth["cfg"], data=replace(synth["cfg"].data, normalize="speaker"))
    assert _roundtrip(cfg, tmp_path) == cfg
    with pytest.raises(InputError, match="analyze"):
        run_mod.run(cfg, progress=False, save=tmp_path / "h.safetensors")
    r = run_mod.run(cfg, progress=False)
    assert "transductive" in (Path(cfg.out) / "report.md").read_text() and r["summary"]["UA"]["mean"] > 0.4


# ------------------------------------------------------------------------------------------- the ship recipes' features


def test_config_roundtrip_with_grids_protocols_and_regression(tmp_path):
    from emofuse.training.config import RegressionConfig

    cfg = _cfg(tmp_path, data=DataConfig(("meld", "goemotions"), "r", "text-minilm-l6", None, labels="canonical",
                                         train_views=("text-e5-small",)),
               model=ModelConfig("linear", (0.01, 0.1), (None, "balanced"), (("meld", (1.0, 2.0)),),
                                 (("meld", "weighted_f1"), ("goemotions", "macro_f1")), 4),
               regression=RegressionConfig((10.0, 100.0), (("valence", (("emobank", "Corr"), ("mosi-en", "Acc2_non0"))),
                                                           ("arousal", (("emobank", "Corr"),))), 0.2, "video"),
               extra_protocols=(ProtocolConfig("loco", {"val_speakers": 0.3}),), licence="research only")
    back = _roundtrip(cfg, tmp_path)
    assert back == cfg and back.protocols[1].name == "loco" and back.model.class_weights == (None, "balanced")
    assert "[[protocol]]" in dump_config(cfg) and "[regression.valence]" in dump_config(cfg)


@pytest.mark.parametrize("model, key", [
    ('select = {meld = "accuracy"}', "model.select.meld"),
    ('select = {ravdess = "UA"}', "model.select.ravdess"),
    ('select = {meld = "UA"}\ncorpus_weight = {savee = [2.0]}', "model.corpus_weight.savee"),
    ('select_folds = 1', "model.select_folds"),
    ('class_weight = ["none", "auto"]', "model.class_weight"),
])
def test_model_options_name_the_key(model, key):
    text = f'name = "x"\n[data]\ncorpora = ["meld"]\nroot = "r"\nextractor = "text-minilm-l6"\n[model]\n{model}\n'
    with pytest.raises(InputError, match=key.replace(".", r"\.")):
        loads_config(text)


@pytest.mark.parametrize("extra, key", [
    ('[regression]\nalpha_grid = [1.0]\n', "names no target"),
    ('[regression.valence]\nnowhere = "Corr"\n', "regression.valence.nowhere"),
    ('[regression.valence]\nemobank = "R2"\n', "regression.valence.emobank"),
    ('[fusion]\nmodel = "gated"\n', "regression"),
])
def test_regression_options_name_the_key(extra, key):
    text = f'name = "x"\n[data]\ncorpora = ["meld"]\nroot = "r"\nextractor = "text-minilm-l6"\n{extra}'
    if "fusion" in extra:
        text += '[regression]\n[regression.valence]\nemobank = "Corr"\n'
        pytest.importorskip("torch")
    with pytest.raises(InputError, match=key):
        loads_config(text)


def _fake_va(model, cfg, items):
    """Features for synthetic items: the class items of _synthetic_items, or 'va V A k' items whose first two
    features carry valence and arousal (plus noise)."""
    out = []
    for it in items:
        parts = it.text.split()
        if parts[0] == "va":
            rng = np.random.default_rng(int(parts[3]))
            x = rng.normal(scale=0.3, size=8).astype(np.float32)
            x[:2] += [float(parts[1]), float(parts[2])]
            out.append(x)
        else:
            out.append(_fake_compute(model, cfg, [it])[0])
    return out


def test_views_weights_inner_folds_and_per_corpus_selection(synth, monkeypatch, tmp_path):
    """Two corpora, a second view of every item for training, a corpus-weight grid, a per-corpus selection
    metric and C chosen on 3 speaker-disjoint folds of each split's training speakers."""
    other = [Item(id=f"b{s}-{j}", corpus="synthb", text=f"{LABELS[j % 4]} {s + 10} {j} 0", speaker=f"b{s}",
                  label=LABELS[j % 4]) for s in range(4) for j in range(12)]
    monkeypatch.setitem(CORPORA, "synthb", Corpus("synthb", lambda root: Manifest(other), "", "any"))
    view = Extractor("fake-view", "text", TextConfig("fake-view", "fake"), lambda cfg, threads: None, _fake_compute)
    monkeypatch.setitem(ex_mod.EXTRACTORS, "fake-view", view)
    cfg = replace(synth["cfg"], data=replace(synth["cfg"].data, corpora=("synth", "synthb"), train_views=("fake-view",)),
                  protocol=ProtocolConfig("loco", {}),
                  model=ModelConfig("linear", (0.01, 1.0), ("balanced", None), (("synthb", (1.0, 3.0)),),
                                    (("synth", "UA"), ("synthb", "macro_f1")), 3))
    head_path = tmp_path / "h.safetensors"
    r = run_mod.run(cfg, progress=False, save=head_path)
    assert [f["split"] for f in r["folds"]] == ["loco-synth", "loco-synthb"]
    for f in r["folds"]:
        assert f["select_folds"] == 3 and len(f["grid"]) == 2 * 2 * 2  # C x class weight x corpus weight
        assert set(f["by_corpus"]) == {f["split"].split("-")[1]}  # loco evaluates the left-out corpus only
    assert set(r["by_corpus"]) == {"synth", "synthb"} and r["by_corpus"]["synth"]["n_splits"] == 1
    assert r["final"]["n_items"] == 96 + 48 and r["final"]["n_rows"] == 2 * (96 + 48)
    head = load_head(head_path)
    assert head.meta["training"]["train_views"] == ["fake-view"]
    assert set(head.meta["metrics"]["loco"]["by_corpus"]) == {"synth", "synthb"}
    assert "synthb" in (Path(cfg.out) / "report.md").read_text()


def test_a_held_out_corpus_is_answered_among_its_own_classes():
    head = LinearHead(np.zeros(2, np.float32), np.ones(2, np.float32), np.eye(2, 3, dtype=np.float32) * [[1, 0, 0], [0, 3, 0]],
                      np.array([0, 0, 1], np.float32), ("happy", "sad", "angry"), FeatureSpec("x", 2), {})
    X = np.array([[0.0, 1.0], [2.0, 0.0], [0.0, 0.0]], np.float32)
    assert run_mod._predict(head, X) == ["sad", "happy", "angry"]
    assert run_mod._predict(head, X, ("happy", "angry")) == ["angry", "happy", "angry"]


def test_regression_targets_are_fitted_selected_and_reported(synth, monkeypatch, tmp_path):
    """[regression]: ridge valence/arousal on a corpus with train / val splits, alpha chosen on a part
    carved from train; the head predicts valence that correlates with the truth on val."""
    from emofuse.training.config import RegressionConfig

    rng = np.random.default_rng(3)
    va_items = []
    for k in range(300):
        v, a = rng.uniform(-0.9, 0.9, size=2)
        va_items.append(Item(id=f"va{k}", corpus="synthva", text=f"va {v:.3f} {a:.3f} {k}",
                             split="val" if k >= 240 else "train", valence=float(v), arousal=float(a),
                             extra={"video": f"g{k // 5}"}))
    monkeypatch.setitem(CORPORA, "synthva", Corpus("synthva", lambda root: Manifest(va_items), "", "any"))
    monkeypatch.setitem(ex_mod.EXTRACTORS, "fake-text",
                        Extractor("fake-text", "text", TextConfig("fake", "fake"), lambda cfg, threads: None, _fake_va))
    cfg = replace(synth["cfg"], regression=RegressionConfig((0.1, 10.0, 1000.0), (
        ("valence", (("synthva", "Corr"),)), ("arousal", (("synthva", "Corr"),))), 0.2, "video"))
    r = run_mod.run(cfg, progress=False, save=tmp_path / "h.safetensors")
    for target in ("valence", "arousal"):
        t = r["regression"][target]
        assert t["n_train"] == 240 and 0 < t["n_select"] < 240 and t["alpha"] in (0.1, 10.0, 1000.0)
        m = t["by_corpus"]["synthva"]
        assert m["evaluated_on"] == "validation" and m["n"] == 60 and m["Corr"] > 0.8
    head = load_head(tmp_path / "h.safetensors")
    assert head.R is not None and head.meta["metrics"]["regression"]["valence"]["alpha"] == r["regression"]["valence"]["alpha"]
    X = np.array(_fake_va(None, None, va_items[240:]))
    pred = head.predict_va(X)
    assert np.corrcoef(pred[:, 0], [it.valence for it in va_items[240:]])[0, 1] > 0.8
    assert "Valence / arousal" in (Path(cfg.out) / "report.md").read_text()


def test_original_labels_give_the_corpus_classes(synth, tmp_path):
    """labels = "original": the corpus's own names, ordered by the canonical class they count as."""
    synth["items"] = [replace(it, original_label="calm" if it.label == "neutral" and int(it.id.split("-")[1]) % 8 == 0
                              else it.label) for it in _synthetic_items()]
    cfg = replace(synth["cfg"], data=replace(synth["cfg"].data, labels="original"))
    r = run_mod.run(cfg, progress=False, save=tmp_path / "h.safetensors")
    assert r["labels"] == ["neutral", "calm", "happy", "sad", "angry"]
    head = load_head(tmp_path / "h.safetensors")
    assert head.labels == tuple(r["labels"]) and head.predict_proba(np.zeros((1, 8))).shape == (1, 7)
    with pytest.raises(InputError, match="labels = 'original'"):
        run_mod.run(replace(cfg, data=replace(cfg.data, corpora=("synth", "ravdess"))), progress=False)


@pytest.mark.slow
@pytest.mark.data
def test_evaluate_a_shipped_head_with_its_registered_extractor(data_root, tmp_path):
    """`emofuse evaluate --head <shipped voice head> --extractor voice-whisper-base` on 40 RAVDESS clips."""
    head = ROOT / "src" / "emofuse" / "weights" / "voice-whisper-base.safetensors"
    out = tmp_path / "eval.json"
    r = CliRunner().invoke(app, ["evaluate", "--head", str(head), "--extractor", "voice-whisper-base", "--corpus",
                                 "ravdess", "--data", str(data_root), "--split", "all", "--limit", "40", "--cache",
                                 str(tmp_path / "cache"), "--output", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["n"] == 40 and res["n_failed"] == 0 and res["metrics"]["UA"] > 0.5  # the head saw these clips


def test_config_dataclasses_validate_themselves():
    """Built in Python, without a TOML file, a config is checked as strictly (the same messages)."""
    from emofuse.training.config import RegressionConfig

    for make, key in ((lambda: ModelConfig("linear", (-1.0,)), r"model.C_grid\[0\]"),
                      (lambda: ModelConfig(class_weight=("balanced", "auto")), "model.class_weight"),
                      (lambda: ModelConfig(select="accuracy"), "model.select"),
                      (lambda: ModelConfig(select_folds=1), "model.select_folds"),
                      (lambda: ModelConfig(calibrate="yes"), "model.calibrate"),  # type: ignore[arg-type]
                      (lambda: DataConfig(("ravdess",), "r", "x", labels="mine"), "data.labels"),
                      (lambda: TrainConfig("t", DataConfig(("ravdess",), "r", None)), "a linear head reads data.extractor"),
                      (lambda: DataConfig(("ravdess",), "r", "x", modalities=(("au", "x"),)), "either extractor"),
                      (lambda: DataConfig((), "r", "x"), "data.corpora"),
                      (lambda: RegressionConfig((1.0,), ()), "names no target"),
                      (lambda: RegressionConfig((1.0,), (("valence", (("emobank", "R2"),)),)), "regression.valence")):
        with pytest.raises(InputError, match=key):
            make()


def test_loso_and_a_second_protocol_write_their_fold_files(synth):
    """Split names hold corpus/speaker (loso): the fold files get safe names; each protocol carves with its
    own parameters."""
    cfg = replace(synth["cfg"], protocol=ProtocolConfig("loso", {"val_speakers": 1}),
                  extra_protocols=(ProtocolConfig("kfold", {"k": 2, "val_speakers": 2}),))
    r = run_mod.run(cfg, progress=False)
    out = Path(cfg.out)
    assert len(r["folds"]) == 6 and (out / "fold-loso-synth_spk0.json").is_file()
    assert (out / "fold-kfold-fold1.json").is_file() and r["other_protocols"][0]["params"] == {"k": 2, "val_speakers": 2}
    assert all(f["n_val"] == 2 * 16 for f in r["other_protocols"][0]["folds"])  # its own val_speakers


def test_two_classes_train_and_predict(synth, tmp_path):
    synth["items"] = [it for it in _synthetic_items() if it.label in ("happy", "sad")]
    r = run_mod.run(synth["cfg"], progress=False, save=tmp_path / "h.safetensors")
    head = load_head(tmp_path / "h.safetensors")
    assert r["labels"] == ["happy", "sad"] and head.W.shape == (8, 2) and r["summary"]["UA"]["mean"] > 0.6
