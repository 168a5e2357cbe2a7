"""emofuse.checkpoints: the head format (emofuse-head/1) round trip and its refusals; network checkpoints
refused before anything is built when their metadata disagrees with their tensors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emofuse import checkpoints as ck
from emofuse.errors import InputError, MissingComponentError
from emofuse.experts import LinearHead
from emofuse.taxonomy import EMOTIONS


def _head(labels: tuple[str, ...] = ("neutral", "calm", "happy"), d: int = 4, va: bool = True) -> LinearHead:
    rng = np.random.default_rng(0)
    spec = ck.FeatureSpec.of_extractor("text-minilm-l6", d)
    R, c = (rng.normal(size=(d, 2)).astype(np.float32), np.zeros(2, np.float32)) if va else (None, None)
    return LinearHead(np.zeros(d, np.float32), np.ones(d, np.float32), rng.normal(size=(d, len(labels))).astype(np.float32),
                      np.zeros(len(labels), np.float32), labels, spec, {"kind": "text", "metrics": {"x": 1}}, R, c)


def _rewrite(path: Path, edit=None, tensors=None) -> None:  # type: ignore[no-untyped-def]
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(path), framework="numpy") as f:
        meta = json.loads(f.metadata()["emofuse"])
        t = {k: f.get_tensor(k) for k in f.keys()}
    if edit:
        edit(meta)
    if tensors:
        tensors(t)
    save_file(t, str(path), metadata={"emofuse": json.dumps(meta)})


def test_head_round_trip_and_label_mapping(tmp_path: Path) -> None:
    h = _head()
    p = ck.save_head(tmp_path / "h.safetensors", h)
    back = ck.load_head(p)
    assert back.labels == h.labels and back.feature == h.feature and back.meta["metrics"] == {"x": 1}
    assert back.meta["format"] == ck.HEAD_FORMAT and "emofuse_version" in back.meta
    x = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(back.scores(x), h.scores(x))
    p7 = back.predict_proba(x)  # calm counts as neutral; classes the head lacks get 0
    np.testing.assert_allclose(p7[:, EMOTIONS.index("neutral")], back.scores(x)[:, :2].sum(1), atol=1e-6)
    assert np.allclose(p7.sum(1), 1) and (p7[:, EMOTIONS.index("sad")] == 0).all()
    assert back.predict_labels(x) == [h.labels[i] for i in h.scores(x).argmax(1)]
    assert ck.read_meta(p)["format"] == ck.HEAD_FORMAT
    assert (p.stat().st_mode & 0o777) == 0o644  # readable: it may ship inside the package


def test_head_refusals(tmp_path: Path) -> None:
    with pytest.raises(MissingComponentError, match="does not exist"):
        ck.load_head(tmp_path / "none.safetensors")
    p = ck.save_head(tmp_path / "h.safetensors", _head())
    _rewrite(p, edit=lambda m: m.pop("format"))  # an unversioned (older) head
    with pytest.raises(InputError, match="older emofuse.*emofuse train"):
        ck.load_head(p)
    p = ck.save_head(tmp_path / "h.safetensors", _head())
    _rewrite(p, edit=lambda m: m["feature"].update(dim=4096))  # metadata and arrays disagree
    with pytest.raises(InputError, match="do not match its metadata"):
        ck.load_head(p)
    p = ck.save_head(tmp_path / "h.safetensors", _head())
    _rewrite(p, tensors=lambda t: t.update(W=np.zeros((4, 9), np.float32)))
    with pytest.raises(InputError, match="do not match its metadata"):
        ck.load_head(p)
    p = ck.save_head(tmp_path / "h.safetensors", _head(labels=tuple(f"c{i}" for i in range(3))))
    _rewrite(p, edit=lambda m: m.update(labels=["a"] * 5000))
    with pytest.raises(InputError, match="labels must be a list"):
        ck.load_head(p)


def test_identity_check_names_the_fix() -> None:
    spec = ck.FeatureSpec.of_extractor("voice-whisper-base", 1024)
    ck.check_identity(spec, "head h")  # the same features: fine
    with pytest.raises(InputError, match="head h was trained on voice-whisper-base features with config hash 0123"):
        ck.check_identity(ck.FeatureSpec("voice-whisper-base", 1024, identity="0123456789"), "head h")


def test_a_crafted_network_checkpoint_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    """Metadata claiming a huge hidden size over tiny tensors: refused by comparing shapes on the meta device."""
    pytest.importorskip("torch")
    from emofuse.networks import FusionConfig, build

    model = build("concat", FusionConfig(dims={"a": 3}, n_classes=2, hidden=8))
    spec = ck.FeatureSpec("synthetic:a", 3).to_dict()
    p = ck.save_network(tmp_path / "n.safetensors", model, "concat", {"features": {"a": spec}, "labels": ["x", "y"]})
    ck.load_network(p)
    _rewrite(p, edit=lambda m: m["config"].update(hidden=60000))  # a real build would need ~15 GB
    with pytest.raises(InputError, match="do not match a 'concat' network"):
        ck.load_network(p)
    _rewrite(p, edit=lambda m: m["config"].update(hidden=10**9))
    with pytest.raises(InputError, match="size over"):
        ck.load_network(p)
    with pytest.raises(InputError, match="expected 'emofuse-fusion/1': it is an expert head"):
        ck.load_network(ck.save_head(tmp_path / "h.safetensors", _head()))
