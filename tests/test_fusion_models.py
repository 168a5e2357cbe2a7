"""Fusion networks: every registered model honours the shared interface."""

from __future__ import annotations

import dataclasses
import itertools
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from emofuse.models import FUSION_MODELS, FusionConfig, UnknownFusionModelError, build, modality_dropout  # noqa: E402

DIMS = {"voice": 12, "face": 7, "text": 9}
MODS = tuple(DIMS)
SUBSETS = [s for r in range(1, 4) for s in itertools.combinations(MODS, r)]
NAMES = sorted(FUSION_MODELS)


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def make(name: str, seed: int = 0, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    cfg = FusionConfig(dims=DIMS, hidden=kw.pop("hidden", 16), **kw)
    return build(name, cfg)


def batch(b: int, seed: int = 1, mods=MODS) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(b, DIMS[m], generator=g) for m in mods}


def test_registry_names():
    assert {"late", "concat", "pairwise", "gated"} <= set(FUSION_MODELS)


def test_models_package_is_import_light():
    code = ("import sys, emofuse.models as m; assert 'torch' not in sys.modules; "
            "m.FusionConfig; assert 'torch' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("regression", [True, False])
def test_output_shapes_no_nan(name, regression):
    model = make(name, regression=regression).eval()
    out = model(batch(5))
    assert out["logits"].shape == (5, 7)
    assert torch.isfinite(out["logits"]).all()
    if regression:
        assert out["valence"].shape == (5,)
        assert torch.isfinite(out["valence"]).all()
    else:
        assert "valence" not in out


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name):
    model = make(name, modality_dropout=0.0).train()
    b = 2 * len(SUBSETS)
    # every subset of modalities appears, so fallbacks and "missing" embeddings are used too
    rows = SUBSETS * 2
    mask = {m: torch.tensor([m in s for s in rows]) for m in MODS}
    out = model(batch(b), mask)
    target = torch.arange(b) % 7
    loss = torch.nn.functional.cross_entropy(out["logits"], target) + out["valence"].pow(2).mean()
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("subset", SUBSETS, ids="+".join)
def test_masking_equals_omitting(name, subset):
    model = make(name).eval()
    x = batch(6)
    # garbage (even NaN) in masked-out rows must not leak
    x_masked = {m: v.clone() for m, v in x.items()}
    for m in MODS:
        if m not in subset:
            x_masked[m][:] = float("nan")
    mask = {m: torch.full((6,), m in subset) for m in MODS}
    with torch.no_grad():
        masked = model(x_masked, mask)
        omitted = model({m: x[m] for m in subset})
    for k in omitted:
        assert torch.isfinite(masked[k]).all()
        torch.testing.assert_close(masked[k], omitted[k], atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_batch_equals_per_sample(name):
    model = make(name).eval()
    rows = SUBSETS  # a "padded" batch: each row has its own modalities
    b = len(rows)
    x = batch(b)
    mask = {m: torch.tensor([m in s for s in rows]) for m in MODS}
    with torch.no_grad():
        full = model(x, mask)
        for i, s in enumerate(rows):
            one = model({m: x[m][i:i + 1] for m in s})
            for k in one:
                torch.testing.assert_close(full[k][i:i + 1], one[k], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_model_built_for_fewer_modalities(name):
    for subset in SUBSETS:
        torch.manual_seed(0)
        model = build(name, FusionConfig(dims={m: DIMS[m] for m in subset}, hidden=8)).eval()
        out = model(batch(3, mods=subset))
        assert out["logits"].shape == (3, 7) and torch.isfinite(out["logits"]).all()


def test_modality_dropout_never_drops_all():
    g = torch.Generator().manual_seed(0)
    b = 4000
    present = {m: torch.rand(b, generator=g) < 0.7 for m in MODS}
    present["voice"][:10] = False
    present["face"][:10] = False
    present["text"][:10] = False  # samples with nothing stay with nothing
    kept = modality_dropout(present, 0.95, generator=g)
    keep = torch.stack([kept[m] for m in MODS], 1)
    pres = torch.stack([present[m] for m in MODS], 1)
    assert not (keep & ~pres).any()  # only present modalities can be kept
    assert (keep.any(1) == pres.any(1)).all()  # never all of a sample's modalities dropped
    assert (keep.sum() < pres.sum())  # but dropping happens
    assert modality_dropout(present, 0.0) == present


@pytest.mark.parametrize("name", NAMES)
def test_modality_dropout_only_in_training(name):
    plain = make(name, dropout=0.0).eval()
    dropping = make(name, dropout=0.0, modality_dropout=0.9).eval()
    x = batch(64)
    with torch.no_grad():
        a = plain(x)["logits"]
        torch.testing.assert_close(dropping(x)["logits"], a)
        dropping.train()
        torch.manual_seed(3)
        trained = dropping(x)["logits"]
    assert torch.isfinite(trained).all()
    assert not torch.allclose(trained, a)


@pytest.mark.parametrize("name", NAMES)
def test_overfits_tiny_data(name):
    g = torch.Generator().manual_seed(0)
    n = 32
    y = torch.arange(n) % 7
    centers = {m: torch.randn(7, d, generator=g) for m, d in DIMS.items()}
    x = {m: centers[m][y] + 0.5 * torch.randn(n, DIMS[m], generator=g) for m in MODS}
    v = torch.rand(n, generator=g) * 2 - 1
    model = make(name, hidden=32, modality_dropout=0.2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(200):
        opt.zero_grad()
        out = model(x)
        loss = torch.nn.functional.cross_entropy(out["logits"], y) + torch.nn.functional.mse_loss(out["valence"], v)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x)["logits"].argmax(1) == y).float().mean().item()
    assert acc >= 0.9, acc


def test_unknown_name_lists_registered():
    with pytest.raises(UnknownFusionModelError) as info:
        build("nope", FusionConfig(dims=DIMS))
    msg = str(info.value)
    assert "nope" in msg
    for name in FUSION_MODELS:
        assert name in msg
    assert isinstance(info.value, ValueError)


def test_config_frozen_and_hashable():
    cfg = FusionConfig(dims=DIMS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.hidden = 3  # type: ignore[misc]
    assert hash(cfg) == hash(FusionConfig(dims=dict(DIMS)))
    assert cfg.modalities == MODS and cfg.dim_map == DIMS
    assert FusionConfig(dims=cfg.dims) == cfg


@pytest.mark.parametrize("bad", [
    dict(dims={}), dict(dims={"voice": 0}), dict(dims={"a.b": 3}), dict(dims=DIMS, dropout=1.0),
    dict(dims=DIMS, modality_dropout=1.0), dict(dims=DIMS, hidden=0),
])
def test_config_validation(bad):
    with pytest.raises(ValueError):
        FusionConfig(**bad)


@pytest.mark.parametrize("name", NAMES)
def test_input_errors(name):
    model = make(name).eval()
    with pytest.raises(ValueError, match="unknown modality"):
        model({"audio": torch.zeros(2, 3)})
    with pytest.raises(ValueError, match="shape"):
        model({"voice": torch.zeros(2, 5)})
    with pytest.raises(ValueError, match="batch size"):
        model({"voice": torch.zeros(2, 12), "face": torch.zeros(3, 7)})
    with pytest.raises(ValueError, match="no inputs"):
        model({})


@pytest.mark.parametrize("name", NAMES)
def test_sample_with_nothing_present_is_finite(name):
    model = make(name).eval()
    mask = {m: torch.tensor([True, False]) for m in MODS}
    with torch.no_grad():
        out = model(batch(2), mask)
        alone = model({m: batch(2)[m][:1] for m in MODS})
    assert torch.isfinite(out["logits"]).all() and torch.isfinite(out["valence"]).all()
    torch.testing.assert_close(out["logits"][:1], alone["logits"], atol=1e-5, rtol=1e-5)
