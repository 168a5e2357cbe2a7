"""Losses of the fusion models against hand-computed cases."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from emofuse.networks.losses import (
    focal_loss,
    masked_l1,
    masked_mse,
    sentiment_bins,
    supcon_loss,
)


def test_focal_gamma0_is_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(9, 5, generator=g)
    target = torch.tensor([0, 1, 2, 3, 4, -100, 1, 2, -100])
    w = torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0])
    ce = torch.nn.functional.cross_entropy(logits, target, weight=w, ignore_index=-100)
    torch.testing.assert_close(focal_loss(logits, target, gamma=0.0, weight=w), ce)
    torch.testing.assert_close(focal_loss(logits, target, gamma=0.0),
                               torch.nn.functional.cross_entropy(logits, target))


def test_focal_by_hand():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]))
    target = torch.tensor([0, 1])
    want = -((0.5 ** 2) * math.log(0.5) + (0.2 ** 2) * math.log(0.8)) / 2
    assert focal_loss(logits, target, gamma=2.0).item() == pytest.approx(want, rel=1e-6)
    # focusing: the well-classified sample counts less than under cross-entropy
    assert focal_loss(logits, target, gamma=2.0) < focal_loss(logits, target, gamma=0.0)


def test_focal_all_ignored_is_zero_with_grad():
    logits = torch.randn(3, 4, requires_grad=True)
    loss = focal_loss(logits, torch.full((3,), -100))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(3, 4))


def test_supcon_four_samples_by_hand():
    z = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]])  # normalised inside
    groups = torch.tensor([0, 0, 1, 1])
    # cosine similarities: s01 = 1, s02 = 0, s03 = -1, s12 = 0, s13 = -1, s23 = 0; temperature 1
    e = math.e
    l0 = -(1 - math.log(e + 1 + 1 / e))  # anchor 0: positive 1, others {1, 2, 3}
    l2 = math.log(3)  # anchor 2: positive 3 (sim 0), others {0, 1, 3} all sim 0
    l3 = math.log(2 / e + 1)  # anchor 3: positive 2 (sim 0), others sims {-1, -1, 0}
    want = (2 * l0 + l2 + l3) / 4
    assert supcon_loss(z, groups, temperature=1.0).item() == pytest.approx(want, rel=1e-6)
    # temperature scales the similarities
    t = 0.5
    l0t = -(1 / t - math.log(math.exp(1 / t) + 1 + math.exp(-1 / t)))
    l2t = math.log(3)
    l3t = math.log(2 * math.exp(-1 / t) + 1)
    assert supcon_loss(z, groups, temperature=t).item() == pytest.approx((2 * l0t + l2t + l3t) / 4, rel=1e-6)


def test_supcon_skips_anchors_without_positives_and_ignored():
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.3, 0.7]])
    # sample 2 has no positive (skipped as an anchor, still in denominators); sample 3 is ignored
    got = supcon_loss(z, torch.tensor([0, 0, 1, -100]), temperature=1.0)
    want = -(1 - math.log(math.e + 1))  # anchors 0 and 1 alike: others {partner (1), sample 2 (0)}
    assert got.item() == pytest.approx(want, rel=1e-6)


def test_supcon_without_positive_pair_is_zero_with_grad():
    z = torch.randn(4, 3, requires_grad=True)
    loss = supcon_loss(z, torch.tensor([0, 1, 2, 3]))
    assert loss.item() == 0.0 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(z.grad).all()
    one = torch.randn(1, 3, requires_grad=True)
    supcon_loss(one, torch.tensor([0])).backward()


def test_supcon_pulls_positives_together():
    z = torch.tensor([[1.0, 0.2], [0.2, 1.0], [-1.0, 0.1], [0.1, -1.0]], requires_grad=True)
    groups = torch.tensor([0, 0, 1, 1])
    opt = torch.optim.SGD([z], lr=0.1)
    before = supcon_loss(z, groups).item()
    for _ in range(20):
        opt.zero_grad()
        supcon_loss(z, groups).backward()
        opt.step()
    assert supcon_loss(z, groups).item() < before


def test_sentiment_bins_and_masked_regression():
    v = torch.tensor([-2.5, 0.0, 0.3, float("nan")])
    assert sentiment_bins(v).tolist() == [0, 1, 2, -100]
    pred = torch.tensor([0.0, 1.0, 1.0, 5.0], requires_grad=True)
    assert masked_mse(pred, v).item() == pytest.approx((6.25 + 1 + 0.49) / 3)
    assert masked_l1(pred, v).item() == pytest.approx((2.5 + 1 + 0.7) / 3)
    w = torch.tensor([0.0, 1.0, 2.0, 1.0])
    assert masked_l1(pred, v, weight=w).item() == pytest.approx((0 + 1 + 1.4) / 3)
    none = masked_mse(pred, torch.full((4,), float("nan")))
    assert none.item() == 0.0
    none.backward()
