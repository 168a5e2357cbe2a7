"""Config round-trip and errors; end-to-end training runs on a synthetic corpus with a fake extractor
(no models); a small MELD text run when the shared data are present."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from emofuse import extract as ex_mod
from emofuse.corpora import CORPORA
from emofuse.corpora.manifest import Corpus, Item, Manifest
from emofuse.errors import InputError
from emofuse.experts import LinearHead
from emofuse.extract import Extractor, TextConfig
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


@pytest.mark.parametrize("name", ["voice_ravdess_kfold.toml", "text_meld_holdout.toml"])
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
    r = run_mod.run(cfg, progress=False, save_head=True)
    out = Path(cfg.out)
    for f in ("results.json", "report.md", "confusion.png", "curves.png", "config.toml", "head.safetensors"):
        assert (out / f).is_file(), f
    res = json.loads((out / "results.json").read_text())
    assert all(set(f["train_UA_by_C"]) == set(f["val_UA_by_C"]) for f in res["folds"])
    assert len(res["folds"]) == 3 == len(r["chosen_C"])
    assert all(f["evaluated_on"] == "test" for f in res["folds"])
    assert all(c in cfg.model.C_grid for c in r["chosen_C"])
    assert sum(map(sum, res["confusion_matrix"])) == len(synth["items"])  # every item tested once
    assert r["summary"]["UA"]["mean"] > 0.5
    assert load_config(out / "config.toml") == cfg
    report = (out / "report.md").read_text()
    assert "fold" in report and "±" in report and "true \\ pred" in report
    head = LinearHead.load(out / "head.safetensors")
    assert head.labels == LABELS and head.meta["feature"]["extractor"] == "fake-text"
    assert head.meta["training"]["C"] == r["head"]["C"] and "UA" in head.meta["metrics"]
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
    assert r1["folds"][0]["val_UA_by_C"] == r2["folds"][0]["val_UA_by_C"]
    assert r1["folds"][0]["metrics"] != r2["folds"][0]["metrics"]  # the test figures did change


def test_no_test_split_is_labelled_validation(synth):
    synth["items"] = [it for it in _synthetic_items(splits=True) if it.split != "test"]
    cfg = replace(synth["cfg"], protocol=ProtocolConfig("holdout", {}))
    r = run_mod.run(cfg, progress=False)
    f = r["folds"][0]
    assert r["evaluated_on"] == "validation" and f["n_test"] == 0
    assert f["n_select"] > 0 and f["n_train"] + f["n_select"] == 64  # C chosen on a part of train, not on val
    assert "validation figures" in (Path(cfg.out) / "report.md").read_text()


def test_train_main_and_evaluate_main(synth, tmp_path, capsys):
    p = tmp_path / "synth.toml"
    synth["items"] = _synthetic_items(splits=True)
    p.write_text(dump_config(replace(synth["cfg"], protocol=ProtocolConfig("holdout", {}))))
    assert run_mod.train_main([str(p), "--save-head", "--no-progress"]) == 0
    assert "UA" in capsys.readouterr().out
    head = Path(synth["cfg"].out) / "head.safetensors"
    out = tmp_path / "eval.json"
    assert run_mod.evaluate_main(["--head", str(head), "--corpus", "synth", "--data", str(tmp_path),
                                  "--extractor", "fake-text", "--cache", synth["cfg"].data.cache, "--split", "test",
                                  "--out", str(out), "--no-progress"]) == 0
    res = json.loads(out.read_text())
    assert res["n"] == 16 and 0 <= res["metrics"]["UA"] <= 1
    assert run_mod.evaluate_main(["--head", str(head), "--corpus", "synth", "--data", str(tmp_path),
                                  "--extractor", "text-minilm-l6", "--no-progress"]) == 2
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n')
    assert run_mod.train_main([str(bad)]) == 2


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
    assert run_mod.normalize(X, items, "none") is X
    for mode in ("corpus", "speaker"):
        Z = run_mod.normalize(X, items, mode)
        groups = ([[0, 1, 2, 3], [4, 5, 6]] if mode == "corpus" else [[0, 2], [1, 3], [4, 5, 6]])
        for g in groups:  # items without a speaker fall back to their corpus
            np.testing.assert_allclose(Z[g].mean(axis=0), 0, atol=1e-5)
            np.testing.assert_allclose(Z[g].std(axis=0), 1, atol=1e-3)
    with pytest.raises(InputError, match="normalize"):
        run_mod.normalize(X, items, "global")


def test_normalized_run_refuses_to_save_a_head(synth, tmp_path):
    cfg = replace(synth["cfg"], data=replace(synth["cfg"].data, normalize="speaker"))
    assert _roundtrip(cfg, tmp_path) == cfg
    with pytest.raises(InputError, match="analyze"):
        run_mod.run(cfg, progress=False, save_head=True)
    r = run_mod.run(cfg, progress=False)
    assert "transductive" in (Path(cfg.out) / "report.md").read_text() and r["summary"]["UA"]["mean"] > 0.4
