"""Fusion networks end to end: the training loop (emofuse.training.networks), validation-only selection,
checkpoints (emofuse.checkpoints), the analysis adapter (emofuse.segment_fusion), `emofuse train` with a
[fusion] table, and the benchmark's core (synthetic data unless marked)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from emofuse.errors import EmofuseError, InputError, MissingComponentError  # noqa: E402
from emofuse import checkpoints as ck  # noqa: E402
from emofuse.networks import NETWORKS, FusionConfig  # noqa: E402
from emofuse.training import networks as tn  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LABELS = ["neutral", "calm", "happy"]


def synthetic(n: int = 120, seed: int = 0, dims: dict[str, int] | None = None, noise: float = 0.3) -> tn.Part:
    """Three classes, each modality carries the class in its first columns (separable)."""
    dims = dims or {"a": 6, "b": 4}
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    inputs = {}
    for m, d in dims.items():
        x = rng.normal(scale=noise, size=(n, d)).astype(np.float32) + 5.0  # an offset the standardisation removes
        x[np.arange(n), y % d] += 2.0
        inputs[m] = x
    return tn.Part(inputs, y.astype(np.int64))


def config(part: tn.Part, **kw: object) -> FusionConfig:
    return FusionConfig(dims=tuple((m, x.shape[-1]) for m, x in part.inputs.items()), n_classes=3,
                        regression=False, **kw)  # type: ignore[arg-type]


def test_loop_overfits_a_separable_problem() -> None:
    p = synthetic()
    norm = tn.fit_norm(p)
    z = tn.apply_norm(p, norm)
    seen: list[dict[str, float]] = []
    res = tn.fit("gated", config(p), z, z, LABELS, tn.TrainOptions(epochs=40, patience=0, lr=3e-3), on_epoch=seen.append)
    assert len(res.history) == 40 == len(seen) and res.n_params > 0
    assert res.val_metrics["UA"] == 1.0
    assert tn.evaluate(res.model, z, LABELS)["UA"] == 1.0
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert not res.model.training


def test_same_seed_same_result() -> None:
    p = tn.apply_norm(synthetic(), tn.fit_norm(synthetic()))
    a, b = (tn.fit("concat", config(p), p.take(range(90)), p.take(range(90, 120)), LABELS,
                   tn.TrainOptions(epochs=5, seed=3)) for _ in range(2))
    np.testing.assert_array_equal(tn.predict(a.model, p)["logits"], tn.predict(b.model, p)["logits"])


def test_selection_uses_validation_only() -> None:
    """Shuffling the test labels changes neither the chosen epoch nor the weights, only the test score."""
    p = synthetic(n=150, noise=1.5)
    tr, va, te = np.arange(0, 90), np.arange(90, 120), np.arange(120, 150)
    opts = tn.TrainOptions(epochs=12, patience=4, seed=1)
    r1, v1, t1, _ = tn.run_split("pairwise", config(p), p, tr, va, te, LABELS, opts)
    shuffled = tn.Part(p.inputs, p.label.copy())
    shuffled.label[te] = np.random.default_rng(5).permutation(shuffled.label[te])
    r2, v2, t2, _ = tn.run_split("pairwise", config(p), shuffled, tr, va, te, LABELS, opts)
    assert r1.best_epoch == r2.best_epoch and v1["UA"] == v2["UA"]
    for k, v in r1.model.state_dict().items():
        assert torch.equal(v, r2.model.state_dict()[k]), k
    assert t1["confusion_matrix"] != t2["confusion_matrix"]


def test_norm_uses_valid_steps_and_keeps_padding_zero() -> None:
    x = np.zeros((2, 3, 2), dtype=np.float32)
    x[0, :2] = [[1, 2], [3, 4]]
    x[1, :1] = [[5, 6]]
    mask = np.array([[True, True, False], [True, False, False]])
    p = tn.Part({"s": x}, np.zeros(2, np.int64), mask={"s": mask})
    mu, sd = tn.fit_norm(p)["s"]
    np.testing.assert_allclose(mu, [3, 4])
    z = tn.apply_norm(p, {"s": (mu, sd)}).inputs["s"]
    assert (z[~mask] == 0).all() and np.isfinite(z).all()
    # a presence mask [N] on a sequence: padded (all-zero) steps neither count nor become non-zero
    q = tn.Part({"s": x}, np.zeros(2, np.int64), mask={"s": np.array([True, True])})
    mu2, sd2 = tn.fit_norm(q)["s"]
    np.testing.assert_allclose(mu2, [3, 4])
    z2 = tn.apply_norm(q, {"s": (mu2, sd2)}).inputs["s"]
    assert (z2[~mask] == 0).all()


def _checkpoint(tmp_path: Path, name: str = "gated", sources: dict[str, str] | None = None,
                dims: dict[str, int] | None = None, labels: list[str] = LABELS) -> tuple[Path, tn.FitResult, tn.Part]:
    dims = dims or {"a": 6, "b": 4}
    sources = sources or {m: f"synthetic:{m}" for m in dims}
    p = synthetic(dims=dims)
    norm = tn.fit_norm(p)
    z = tn.apply_norm(p, norm)
    res = tn.fit(name, config(p), z, z, labels, tn.TrainOptions(epochs=3))
    feats = {m: ck.FeatureSpec(sources[m], dims[m], "vector", "test", tuple(norm[m][0].tolist()),
                               tuple(norm[m][1].tolist())).to_dict() for m in dims}
    meta = {"features": feats, "labels": labels, "training": {"corpora": ["synthetic"], "fold": "all", "seed": 0},
            "metrics": {"validation": res.val_metrics}}
    path = ck.save_network(tmp_path / f"{name}.safetensors", res.model, name, meta)
    return path, res, p


def _edit_meta(path: Path, edit: Any) -> None:
    """Rewrite a checkpoint's metadata in place (``edit(meta)`` mutates it)."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    meta = ck.read_network_meta(path)
    edit(meta)
    with safe_open(str(path), framework="numpy") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    save_file(tensors, str(path), metadata={"emofuse": json.dumps(meta)})


def _sequence_checkpoint(tmp_path: Path, source: str, dim: int, labels: list[str] = LABELS) -> tuple[Path, Any]:
    """A transformer_gate checkpoint whose one modality is a sequence source."""
    path, res, _ = _checkpoint(tmp_path, "transformer_gate", sources={"voice": source}, dims={"voice": dim},
                               labels=labels)
    _edit_meta(path, lambda m: m["features"]["voice"].update(kind="sequence"))
    return path, res


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_checkpoint_round_trip(tmp_path: Path, name: str) -> None:
    path, res, p = _checkpoint(tmp_path, name)
    model, meta = ck.load_network(path)
    assert not model.training
    z = tn.apply_norm(p, {m: (np.array(s["mean"], np.float32), np.array(s["std"], np.float32))
                          for m, s in meta["features"].items()})
    np.testing.assert_array_equal(tn.predict(model, z)["logits"], tn.predict(res.model, z)["logits"])
    assert meta["model"] == name and meta["labels"] == LABELS and meta["format"] == ck.NETWORK_FORMAT
    assert ck.config_from_dict(meta["config"]) == res.model.config
    assert meta["features"]["a"]["dim"] == 6 and meta["training"]["corpora"] == ["synthetic"]
    assert "emofuse_version" in meta and ck.read_network_meta(path)["model"] == name  # readable without building


def test_bad_checkpoints_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(MissingComponentError, match="does not exist"):
        ck.load_network(tmp_path / "nope.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00\x01 not a checkpoint at all")
    with pytest.raises(InputError, match="not a readable safetensors"):
        ck.load_network(junk)
    path, _, _ = _checkpoint(tmp_path)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size - 100])
    with pytest.raises(InputError, match="damaged|not a readable"):
        ck.load_network(cut)
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(path), framework="numpy") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta = ck.read_network_meta(path) | {"model": "no_such_net"}
    other = tmp_path / "other.safetensors"
    save_file(tensors, str(other), metadata={"emofuse": json.dumps(meta)})
    with pytest.raises(InputError, match="no_such_net"):
        ck.load_network(other)
    save_file(tensors, str(other))
    with pytest.raises(InputError, match="without emofuse metadata"):
        ck.load_network(other)


# ------------------------------------------------------------------------------------------- analysis adapter


def test_network_fusion_maps_labels_and_masks_what_analysis_lacks(tmp_path: Path) -> None:
    from emofuse.segment_fusion import NetworkFusion
    from emofuse.taxonomy import EMOTIONS

    path, res, p = _checkpoint(tmp_path, "concat", sources={"voice": "voice-whisper-base", "au": "ravdess_av:au"},
                               dims={"voice": 8, "au": 5}, labels=["calm", "disgust", "surprised"])
    fuse = NetworkFusion(path, "concat", supplied={"voice-whisper-base", "text-minilm-l6"})
    assert any("'au'" in n and "OpenFace" in n for n in fuse.notes)
    f = fuse({}, features={"voice-whisper-base": p.inputs["voice"][0]})
    assert f is not None and f.method == "concat" and list(f.probs) == list(EMOTIONS)
    assert abs(sum(f.probs.values()) - 1) < 1e-6
    assert f.probs["happy"] == f.probs["sad"] == 0.0  # classes the network does not have
    assert f.probs["neutral"] > 0 and f.probs["disgusted"] > 0  # calm -> neutral, disgust -> disgusted
    assert f.weights == {"voice": 1.0}
    with pytest.raises(EmofuseError, match="ravdess_av:au.*compute none"):
        NetworkFusion(path, supplied={"text-minilm-l6"})
    with pytest.raises(EmofuseError, match="does not match"):
        NetworkFusion(path, "gated")
    assert any("without modality dropout" in n for n in fuse.notes)  # it was trained with au always present


def test_network_fusion_feeds_sequences(tmp_path: Path) -> None:
    """A checkpoint with a sequence source gets the segment's [T, d] chunks, standardised per step."""
    import torch

    from emofuse.segment_fusion import NetworkFusion, supplied_sources

    assert "voice-whisper-base-seq" in supplied_sources(("voice",), "whisper-base")
    assert "voice-whisper-tiny.en-seq" not in supplied_sources(("voice",), "whisper-tiny.en")  # no such extractor
    path, res = _sequence_checkpoint(tmp_path, "voice-whisper-base-seq", 8, labels=["calm", "disgust", "surprised"])
    fuse = NetworkFusion(path, supplied={"voice-whisper-base-seq"})
    assert set(fuse.usable) == {"voice"} and not fuse.notes
    seq = np.random.default_rng(0).normal(5.0, 1.0, size=(5, 8)).astype(np.float32)
    f = fuse({}, features={"voice-whisper-base-seq": seq})
    assert f is not None and f.method == "transformer_gate"
    spec = fuse.usable["voice"]
    with torch.no_grad():
        q = torch.softmax(res.model({"voice": torch.from_numpy(spec.normalise(seq)[None])})["logits"], -1)[0]
    np.testing.assert_allclose([f.probs[c] for c in ("neutral", "disgusted", "surprised")], q.numpy(), atol=1e-5)


def test_network_fusion_refuses_features_from_another_extractor_version(tmp_path: Path) -> None:
    from emofuse.extractors import EXTRACTORS
    from emofuse.segment_fusion import NetworkFusion

    path, res, p = _checkpoint(tmp_path, "late", sources={"voice": "voice-whisper-base"}, dims={"voice": 8})
    _edit_meta(path, lambda m: m["features"]["voice"].update(identity=EXTRACTORS["voice-whisper-base"].config_hash()))
    assert NetworkFusion(path, supplied={"voice-whisper-base"}).usable  # same features: accepted
    _edit_meta(path, lambda m: m["features"]["voice"].update(identity="0123456789"))
    with pytest.raises(EmofuseError, match="retrain"):
        NetworkFusion(path, supplied={"voice-whisper-base"})


def test_confidence_rule_without_checkpoint_and_networks_need_one() -> None:
    from emofuse import segment_fusion
    from emofuse.errors import UnknownNameError

    assert segment_fusion.build("confidence") is not None and segment_fusion.build() is not None
    for net in ("gated", "late"):  # the network `late` is not the expert-level rule
        with pytest.raises(EmofuseError, match="--checkpoint"):
            segment_fusion.build(net)
    with pytest.raises(UnknownNameError, match="unknown fusion 'nope'.*confidence.*gated"):
        segment_fusion.build("nope")
    assert set(segment_fusion.fusion_names()) == set(NETWORKS) | {"confidence", "poe"}


@pytest.mark.slow
def test_analyze_with_a_trained_network(tmp_path: Path, media: Path) -> None:
    """`emofuse analyze --fusion NAME --checkpoint PATH`: segments are fused by the network."""
    path, _, _ = _checkpoint(tmp_path, "gated", sources={"voice": "voice-whisper-base", "text": "text-minilm-l6",
                                                         "au": "ravdess_av:au"},
                             dims={"voice": 1024, "text": 384, "au": 35})
    from emofuse import Analyzer, AnalyzerOptions

    an = Analyzer(AnalyzerOptions(modalities=("voice", "text"), fusion="gated", checkpoint=str(path)))
    r = an.analyze(media / "beckett.wav")
    assert r.segments and all(s.fused is not None and s.fused.method == "gated" for s in r.segments)
    assert any("OpenFace" in n for n in r.notes)
    out = subprocess.run([sys.executable, "-m", "emofuse.cli", "analyze", str(media / "beckett.wav"), "--modalities",
                          "voice,text", "--checkpoint", str(path), "--format", "json"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout.splitlines()[0])
    assert doc["segments"] and all(s["fused"]["method"] == "gated" for s in doc["segments"])
    bad = subprocess.run([sys.executable, "-m", "emofuse.cli", "analyze", "--text", "hi", "--modalities", "text",
                          "--fusion", "concat", "--checkpoint", str(path)], capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "does not match" in bad.stderr
    # a network over Whisper-base chunk sequences gets the utterances' own chunks
    seq, _ = _sequence_checkpoint(tmp_path, "voice-whisper-base-seq", 512)
    r = Analyzer(AnalyzerOptions(modalities=("voice",), fusion="transformer_gate", checkpoint=str(seq))).analyze(
        media / "beckett.wav")
    assert r.segments and all(s.fused is not None and s.fused.method == "transformer_gate" for s in r.segments)


# ------------------------------------------------------------------------------------------- CLI config and benchmark


def test_example_config_parses() -> None:
    from emofuse.training.config import load_config

    cfg = load_config(ROOT / "configs" / "fusion_ravdess_gated.toml")
    assert cfg.fusion is not None and cfg.fusion.model == "gated" and cfg.fusion.train.metric == "UA"
    assert {m for m, _ in cfg.data.modalities} == {"au", "mfcc", "voice"}
    assert cfg.kind == "network" and load_config(ROOT / "configs" / "voice_ravdess_kfold.toml").kind == "linear"


def test_bad_fusion_config_names_the_key(tmp_path: Path) -> None:
    from emofuse.training.config import load_config

    f = tmp_path / "c.toml"
    f.write_text('[data]\ncorpora = ["ravdess_av"]\nroot = "x"\n[data.modalities]\nau = "ravdess_av:au"\n'
                 '[fusion]\nmodel = "gated"\nhiden = 3\n')
    with pytest.raises(InputError, match="fusion.hiden"):
        load_config(f)


@pytest.mark.data
def test_train_cli_with_fusion_table(tmp_path: Path, data_root: Path) -> None:
    """`emofuse train` dispatches a [fusion] config: reports, curves and a checkpoint (AU + MFCC, 2 epochs)."""
    if not (data_root / "multimodal" / "ravdess_au_mfcc.npz").is_file():
        pytest.skip("ravdess_au_mfcc.npz not in the data folder")
    f = tmp_path / "c.toml"
    f.write_text(f'name = "t"\nout = "{tmp_path / "out"}"\n[data]\ncorpora = ["ravdess_av"]\nroot = "{data_root}"\n'
                 'labels = "original"\n[data.modalities]\nau = "ravdess_av:au"\nmfcc = "ravdess_av:mfcc"\n'
                 '[fusion]\nmodel = "concat"\n[fusion.train]\nepochs = 2\n')
    path = tmp_path / "c.safetensors"
    r = subprocess.run([sys.executable, "-m", "emofuse.cli", "train", str(f), "--save", str(path)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    res = json.loads((out / "results.json").read_text())
    assert len(res["folds"]) == 6 and len(res["labels"]) == 8 and "calm" in res["labels"]
    assert all((out / n).is_file() for n in ("report.md", "curves.png", "confusion.png", "fold-fold1.json",
                                              "config.toml"))
    _, meta = ck.load_network(path)
    assert meta["features"]["au"]["source"] == "ravdess_av:au" and len(meta["features"]["mfcc"]["mean"]) == 259
    assert meta["training"]["protocol"] == "kfold"


def _bench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_fusion", ROOT / "benchmarks" / "fusion.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["bench_fusion"] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_benchmark_core_on_synthetic_data() -> None:
    b = _bench()
    p = synthetic(n=60)
    idx = np.arange(60)
    splits = {"kfold": {0: [("fold1", idx[:36], idx[36:48], idx[48:]), ("fold2", idx[24:], idx[12:24], idx[:12])]},
              "random": {0: [("random", idx[::2], idx[1::4], idx[3::4])]}}
    subsets = b.all_subsets(["a", "b"])
    assert subsets == [("a",), ("b",), ("a", "b")]
    jobs = b.make_jobs(["late", "gated"], subsets, splits)
    assert len(jobs) == 2 * 3 * 3
    res = b.run_jobs(jobs, p, LABELS, tn.TrainOptions(epochs=2), {"hidden": 16}, workers=1, log=None)
    rows = b.aggregate(res)
    assert len(rows) == 2 * 3 * 2 and all(r["n_runs"] == (2 if r["protocol"] == "kfold" else 1) for r in rows)
    assert all(r["params"] > 0 and r["latency_ms"] > 0 and 0 <= r["UA"] <= 1 for r in rows)
    table = b.markdown(rows)
    assert "| gated | a+b |" in table and "### random" in table
    check = b.target_check(res, rows)  # choices on validation UA; paired differences over the same runs
    assert "### Target check (kfold" in check
    line = next(x for x in check.splitlines() if x.startswith("| a+b | gated |"))
    assert line.split("|")[9].strip().endswith("/2")  # wins out of the 2 (fold, seed) pairs


@pytest.mark.parametrize("extra, key", [('hidden = "big"', "fusion: a value has the wrong type"),
                                        ("dropout = 1.5", "fusion: dropout must be in"),
                                        ('[fusion.train]\nepochs = "ten"', "fusion.train: TrainOptions.epochs"),
                                        ('[fusion.train]\nlr = -1.0', "fusion.train: epochs, batch_size")])
def test_fusion_options_are_checked_when_the_config_loads(tmp_path: Path, extra: str, key: str) -> None:
    from emofuse.training.config import load_config

    f = tmp_path / "c.toml"
    f.write_text('[data]\ncorpora = ["ravdess_av"]\nroot = "x"\n[data.modalities]\nau = "ravdess_av:au"\n'
                 f'[fusion]\nmodel = "gated"\n{extra}\n')
    with pytest.raises(InputError, match=key):
        load_config(f)


def test_network_runs_never_evaluate_the_part_that_chose_the_epoch(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    """A holdout corpus without a test part: the epoch is chosen on a part carved from train, the
    validation part is only evaluated (so its figures are labelled validation)."""
    from emofuse import extractors as exs
    from emofuse.corpora import CORPORA
    from emofuse.corpora.manifest import Corpus, Item, Manifest
    from emofuse.training.config import DataConfig, FusionSection, ProtocolConfig, TrainConfig
    from emofuse.training.run import run

    rng = np.random.default_rng(0)
    items = [Item(id=f"s{s}-{j}", corpus="synthn", text=f"{j % 3} {s} {j}", speaker=f"s{s}",
                  split="val" if s >= 5 else "train", label=["neutral", "happy", "sad"][j % 3])
             for s in range(6) for j in range(12)]

    def compute(model, cfg, its):  # type: ignore[no-untyped-def]
        return [rng.normal(size=4).astype(np.float32) + np.eye(4, dtype=np.float32)[int(it.text.split()[0])] * 3
                for it in its]

    monkeypatch.setitem(CORPORA, "synthn", Corpus("synthn", lambda root: Manifest(items), "", "any"))
    monkeypatch.setitem(exs.EXTRACTORS, "fake-n", exs.Extractor("fake-n", "text", exs.TextConfig("fake", "fake"),
                                                               lambda cfg, threads: None, compute))
    cfg = TrainConfig("n", DataConfig(("synthn",), str(tmp_path), None, str(tmp_path / "cache"),
                                      modalities=(("a", "fake-n"),)), ProtocolConfig("holdout", {"val_speakers": 1}),
                      None, 0, str(tmp_path / "out"), fusion=FusionSection("concat", {"hidden": 8},
                                                                           tn.TrainOptions(epochs=3)))
    r = run(cfg, progress=False)
    f = r["folds"][0]
    assert f["evaluated_on"] == "validation" and f["n_val"] == 12
    assert f["n_select"] == 12 and f["n_train"] == 48  # one training speaker carved out to choose the epoch
