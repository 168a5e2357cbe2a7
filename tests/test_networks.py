"""Fusion networks: every registered model honours the shared interface."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from emofuse.errors import UnknownNameError  # noqa: E402
from emofuse.networks import NETWORKS, FusionConfig, build, modality_dropout  # noqa: E402

DIMS = {"voice": 12, "face": 7, "text": 9}
MODS = tuple(DIMS)
SUBSETS = [s for r in range(1, 4) for s in itertools.combinations(MODS, r)]
NAMES = sorted(NETWORKS)
ALL_NAMES = {"late", "concat", "pairwise", "gated", "transformer_gate", "talking_heads", "mult", "self_mm"}
# models whose attention has no gradient into its query/key maps for length-1 sequences (softmax
# over one key is constant); their every-parameter-gradient check runs on sequences only
SEQ_ATTENTION = {"transformer_gate", "mult"}


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


def seq_batch(b: int, seed: int = 1, mods=MODS, tmax: int = 4):
    """NaN-padded sequences of random lengths 1..tmax and their step masks."""
    g = torch.Generator().manual_seed(seed)
    x, steps = {}, {}
    for m in mods:
        lens = torch.randint(1, tmax + 1, (b,), generator=g)
        steps[m] = torch.arange(tmax)[None, :] < lens[:, None]
        x[m] = torch.randn(b, tmax, DIMS[m], generator=g)
        x[m][~steps[m]] = float("nan")  # padding must never leak
    return x, steps


def targets(b: int, seed: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sign = torch.where(torch.arange(b) % 3 == 0, -1.0, 1.0)  # both polarities: Self-MM needs both centres
    return {"label": torch.arange(b) % 7, "valence": sign * (0.2 + torch.rand(b, generator=g))}


def warm_up(model, x, mask, target, epochs: int = 2) -> None:
    """A few no-grad "epochs" through the hooks (Self-MM generates unimodal labels from epoch 2)."""
    b = next(iter(x.values())).shape[0]
    model.begin_training(b)
    with torch.no_grad():
        for e in range(epochs):
            model.loss(model(x, mask), target, torch.arange(b))
            model.end_epoch(e)


def test_registry_names():
    assert set(NETWORKS) == ALL_NAMES


def test_networks_package_is_import_light():
    code = ("import sys, emofuse.networks as m; assert 'torch' not in sys.modules; "
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
@pytest.mark.parametrize("kind", ["vector", "sequence"])
def test_gradients_reach_every_parameter(name, kind):
    if kind == "vector" and name in SEQ_ATTENTION:
        pytest.skip("attention over one step has no query/key gradient; checked on sequences")
    model = make(name, modality_dropout=0.0).train()
    b = 2 * len(SUBSETS) + 2
    # every subset of modalities appears (and all modalities twice more), so fallbacks and
    # "missing" embeddings are used too
    rows = SUBSETS * 2 + [MODS] * 2
    present = {m: torch.tensor([m in s for s in rows]) for m in MODS}
    if kind == "vector":
        x, mask = batch(b), present
    else:
        x, steps = seq_batch(b)
        mask = {m: steps[m] & present[m][:, None] for m in MODS}
    target = targets(b)
    warm_up(model, x, mask, target)
    loss, parts = model.loss(model(x, mask), target, torch.arange(b))
    assert torch.isfinite(loss) and all(math.isfinite(v) for v in parts.values())
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
    n, t = 16, 3
    y = torch.arange(n) % 7
    centers = {m: torch.randn(7, d, generator=g) for m, d in DIMS.items()}
    x = {m: centers[m][y][:, None, :] + 0.5 * torch.randn(n, t, DIMS[m], generator=g) for m in MODS}
    steps = {m: torch.arange(t)[None, :] < torch.randint(1, t + 1, (n,), generator=g)[:, None] for m in MODS}
    v = torch.rand(n, generator=g) * 2 - 1
    target = {"label": y, "valence": v}
    model = make(name, hidden=32, modality_dropout=0.2)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    model.train()
    model.begin_training(n)
    for epoch in range(150):
        opt.zero_grad()
        loss, _ = model.loss(model(x, steps), target, torch.arange(n))
        loss.backward()
        opt.step()
        model.end_epoch(epoch)
    model.eval()
    with torch.no_grad():
        out = model(x, steps)
        acc = (out["logits"].argmax(1) == y).float().mean().item()
        mse = torch.nn.functional.mse_loss(out["valence"], v).item()
    assert acc >= 0.9, acc
    assert mse < 0.5 * v.var().item(), mse


def test_unknown_name_lists_registered():
    with pytest.raises(UnknownNameError) as info:
        build("nope", FusionConfig(dims=DIMS))
    msg = str(info.value)
    assert "nope" in msg
    for name in NETWORKS:
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
    {"dims": {}}, {"dims": {"voice": 0}}, {"dims": {"a.b": 3}}, {"dims": DIMS, "dropout": 1.0},
    {"dims": DIMS, "modality_dropout": 1.0}, {"dims": DIMS, "hidden": 0},
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


# ---- sequences, step masks, the loss hook ------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("regression", [True, False])
def test_sequence_shapes_no_nan_finite_backward(name, regression):
    model = make(name, regression=regression).train()
    x, steps = seq_batch(6)
    x["voice"] = x["voice"].nan_to_num()[:, 0]  # mixed: a vector with sequences
    steps.pop("voice")
    out = model(x, steps)
    assert out["logits"].shape == (6, 7) and torch.isfinite(out["logits"]).all()
    assert ("valence" in out) == regression
    if regression:
        assert out["valence"].shape == (6,) and torch.isfinite(out["valence"]).all()
    target = targets(6)
    target["label"][0] = -100
    target["valence"][1] = float("nan")
    model.begin_training(6)
    loss, parts = model.loss(out, target, torch.arange(6))
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert parts and all(isinstance(v, float) and math.isfinite(v) for v in parts.values())
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", NAMES)
def test_loss_without_any_target_is_zero_with_grad(name):
    model = make(name).train()
    out = model(batch(4))
    target = {"label": torch.full((4,), -100), "valence": torch.full((4,), float("nan"))}
    loss, _ = model.loss(out, target)  # validation call: no index
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    with pytest.raises(ValueError, match=r"shape \[B\]"):
        model.loss(model(batch(4)), {"label": torch.zeros(3, dtype=torch.long)})


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("subset", SUBSETS, ids="+".join)
def test_step_masking_equals_omitting(name, subset):
    model = make(name).eval()
    x, steps = seq_batch(5)
    mask = {m: steps[m] if m in subset else torch.zeros_like(steps[m]) for m in MODS}
    with torch.no_grad():
        masked = model(x, mask)
        omitted = model({m: x[m] for m in subset}, {m: steps[m] for m in subset})
    for k in ("logits", "valence"):
        assert torch.isfinite(masked[k]).all()
        torch.testing.assert_close(masked[k], omitted[k], atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_padded_batch_equals_unbatched(name):
    model = make(name).eval()
    rows = SUBSETS + [MODS] * 3
    b = len(rows)
    x, steps = seq_batch(b, tmax=5)
    mask = {m: steps[m] & torch.tensor([m in s for s in rows])[:, None] for m in MODS}
    with torch.no_grad():
        full = model(x, mask)
        for i, s in enumerate(rows):
            one = model({m: x[m][i:i + 1, : int(steps[m][i].sum())] for m in s})  # unpadded, no mask
            for k in ("logits", "valence"):
                torch.testing.assert_close(full[k][i:i + 1], one[k], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_vector_equals_length1_sequence(name):
    model = make(name).eval()
    x = batch(4)
    mask = {"face": torch.tensor([True, False, True, True])}
    with torch.no_grad():
        vec = model(x, mask)
        seq = model({m: v[:, None, :] for m, v in x.items()}, {"face": mask["face"][:, None]})
    for k in ("logits", "valence"):
        torch.testing.assert_close(vec[k], seq[k], atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_sequence_input_errors(name):
    model = make(name).eval()
    with pytest.raises(ValueError, match=r"\[B, T, 12\]"):
        model({"voice": torch.zeros(2, 3, 5)})
    with pytest.raises(ValueError, match=r"\[B, T\] = \[2, 3\]"):
        model({"voice": torch.zeros(2, 3, 12)}, {"voice": torch.ones(2, 4, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"\[B\] = \[2\]"):
        model({"voice": torch.zeros(2, 12)}, {"voice": torch.ones(3, dtype=torch.bool)})


def test_default_losses():
    assert make("transformer_gate").loss_name == "focal"
    assert make("transformer_gate", loss="ce").loss_name == "ce"
    assert make("late").loss_name == "ce" and make("late", loss="focal").loss_name == "focal"
    model = make("late", regression=False).eval()
    out = model(batch(5))
    target = targets(5)
    loss, parts = model.loss(out, target)
    # late fusion trains each unimodal expert on its own: the mean of the experts' cross-entropies
    ce = [torch.nn.functional.cross_entropy(out[f"logits.{m}"], target["label"]) for m in MODS]
    torch.testing.assert_close(loss, sum(ce) / len(ce))
    assert set(parts) == {f"ce.{m}" for m in MODS}
    # and fuses them as a product of experts: the mean of their log-probabilities
    logp = torch.stack([torch.log_softmax(out[f"logits.{m}"], -1) for m in MODS]).mean(0)
    torch.testing.assert_close(out["logits"], logp)


def test_late_experts_do_not_learn_from_each_other():
    """A gradient step on the late loss moves each expert only by its own modality's error."""
    model = make("late", regression=False).eval()  # eval: no dropout masks to line up
    x, target = batch(6), targets(6)
    loss, _ = model.loss(model(x), target)
    loss.backward()
    g = model.cls["voice"].weight.grad.clone()
    model.zero_grad()
    solo = make("late", regression=False).eval()
    solo.load_state_dict(model.state_dict())
    out = solo({"voice": x["voice"]})
    (torch.nn.functional.cross_entropy(out["logits.voice"], target["label"]) / len(MODS)).backward()
    torch.testing.assert_close(g, solo.cls["voice"].weight.grad)


def test_talking_heads_contrastive_term():
    model = make("talking_heads", contrastive_weight=0.5).train()
    out = model(batch(8))
    _, parts = model.loss(out, targets(8))
    assert parts["supcon"] > 0
    # regression-only targets: positives from sentiment bins
    _, parts = model.loss(out, {"label": torch.full((8,), -100), "valence": torch.linspace(-1, 1, 8)})
    assert parts["supcon"] > 0


def test_talking_heads_mixing_trains_on_vectors():
    # utterance vectors give one key per source; the learned null key keeps the softmax non-trivial
    model = make("talking_heads").train()
    out = model(batch(6))
    model.loss(out, targets(6))[0].backward()
    for pname, p in model.named_parameters():
        if "mix_logits" in pname or "mix_weights" in pname:
            assert p.grad is not None and p.grad.abs().sum() > 0, pname


# ---- Self-MM label generation ------------------------------------------------------------------


def test_self_mm_label_rule_by_hand():
    from emofuse.networks.self_mm import generate_unimodal_labels

    pos, neg = torch.tensor([0.0, 0.0]), torch.tensor([3.0, 0.0])
    fusion = (pos, neg)
    f_f = torch.tensor([[0.0, 1.0]])  # d_fp = 1, d_fn = sqrt(10)
    delta_f = math.sqrt(10) - 1
    y_m, prev = torch.tensor([1.0]), torch.tensor([1.0])
    # unimodal feature on the positive centre side: d_sp = 0.5, d_sn = 2.5 -> delta_s = 4 > delta_f
    near = generate_unimodal_labels(f_f, torch.tensor([[0.5, 0.0]]), fusion, fusion, y_m, prev, 2, 3.0)
    # nearer the negative centre: d_sp = 2.5, d_sn = 0.5 -> delta_s = -0.8
    far = generate_unimodal_labels(f_f, torch.tensor([[2.5, 0.0]]), fusion, fusion, y_m, prev, 2, 3.0)
    assert near.item() > 1.0 > far.item()
    for ds, got in ((4.0, near), (-0.8, far)):
        new = min(3.0, max(-3.0, 0.5 * ds / delta_f * 1.0 + 0.5 * (1.0 + ds - delta_f)))
        assert got.item() == pytest.approx(1 / 3 * 1.0 + 2 / 3 * new, rel=1e-5)
    # epoch 1 would keep nothing of the previous label; the bound clamps
    big = generate_unimodal_labels(f_f, torch.tensor([[0.01, 0.0]]), fusion, fusion, y_m, prev, 1, 3.0)
    assert big.item() == pytest.approx(3.0)


def test_self_mm_memory_moves_labels():
    from emofuse.networks.self_mm import SelfMMLabels

    mem = SelfMMLabels(4, ("a",), 2)
    y = torch.tensor([1.0, 1.0, -1.0, -1.0])
    idx = torch.arange(4)
    # off-centre features (a feature exactly on its centre makes the paper's ratio degenerate)
    f_f = torch.tensor([[1.0, 0.5], [1.0, -0.5], [-1.0, 0.5], [-1.0, -0.5]])
    # modality "a": sample 1 looks negative although its multimodal label is positive
    f_a = torch.tensor([[1.0, 0.5], [-0.8, -0.5], [-1.0, 0.5], [-1.0, -0.5]])
    present = {"a": torch.ones(4, dtype=torch.bool)}
    mem.step(idx, y, {"fusion": f_f, "a": f_a}, present, epoch=1)  # epoch 1: store, no generation
    torch.testing.assert_close(mem.label["a"], y)
    mem.step(idx, y, {"fusion": f_f, "a": f_a}, present, epoch=2)
    a = mem.label["a"]
    assert a[1] < 0.0 < a[0] < 1.0  # the negative-looking sample is pulled across to negative
    assert (a[2:] < 0).all()  # negative samples stay negative
    torch.testing.assert_close(mem.label["fusion"], y)


def test_self_mm_fixed_label_bound():
    from emofuse.networks.self_mm import SelfMMLabels

    y, idx = torch.tensor([0.5, -0.5]), torch.arange(2)
    feats, present = {"fusion": torch.randn(2, 2), "a": torch.randn(2, 2)}, {"a": torch.ones(2, dtype=torch.bool)}
    seen, fixed = SelfMMLabels(2, ("a",), 2), SelfMMLabels(2, ("a",), 2, bound=3.0)
    for mem in (seen, fixed):
        mem.step(idx, y, feats, present, epoch=1)
    assert seen.bound == 0.5 and fixed.bound == 3.0  # H from the data seen, or the paper's fixed H
    assert make("self_mm", label_bound=1.0).labels is None
    model = make("self_mm", label_bound=1.0)
    model.begin_training(3)
    assert model.labels.bound == 1.0
    with pytest.raises(ValueError, match="label_bound"):
        make("self_mm", label_bound=0.0)


def test_self_mm_training_uses_generated_labels():
    model = make("self_mm")
    with pytest.raises(RuntimeError, match="begin_training"):
        model.loss(model(batch(4)), targets(4), torch.arange(4))
    x, target = batch(8), targets(8)
    model.begin_training(8)
    for e in range(3):
        _, parts = model.loss(model(x), target, torch.arange(8))
        model.end_epoch(e)
    assert {"ce", "l1", "l1.voice", "ce.voice"} <= set(parts)
    assert not torch.equal(model.labels.label["voice"], target["valence"])  # generated, not copied
    assert "feature.fusion" not in model.state_dict() and not any("labels" in k for k in model.state_dict())


# ---- config ------------------------------------------------------------------------------------


def test_config_json_round_trip():
    cfg = FusionConfig(dims=DIMS, hidden=32, loss="focal", focal_gamma=1.5, heads=2, layers=2,
                       contrastive_weight=0.3, temperature=0.07, regression_weight=0.5)
    back = FusionConfig(**json.loads(json.dumps(dataclasses.asdict(cfg))))
    assert back == cfg and hash(back) == hash(cfg)


@pytest.mark.parametrize("bad", [
    {"loss": "mse"}, {"focal_gamma": -1.0}, {"regression_weight": float("nan")}, {"temperature": 0.0},
    {"heads": 0}, {"layers": 0}, {"contrastive_weight": -0.1},
])
def test_config_validation_new_fields(bad):
    with pytest.raises(ValueError):
        FusionConfig(dims=DIMS, **bad)


@pytest.mark.parametrize("name", ["transformer_gate", "talking_heads", "mult"])
def test_heads_must_divide_hidden(name):
    with pytest.raises(ValueError, match="multiple of heads"):
        make(name, hidden=10, heads=4)
