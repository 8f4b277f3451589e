"""ClipLoss: known values, symmetry, duplicate masking, logit-scale clamp (one process)."""
import math

import pytest
import torch
from torch.nn import functional as F

from cmr_ray.model.loss import MAX_LOGIT_SCALE, ClipLoss


def reference(v, t, scale):
    """The CLIP loss written out by hand, row by row."""
    n = len(v)
    total = 0.0
    for i in range(n):
        row = [scale * float(v[i] @ t[j]) for j in range(n)]
        col = [scale * float(t[i] @ v[j]) for j in range(n)]
        total += -row[i] + math.log(sum(math.exp(x) for x in row))
        total += -col[i] + math.log(sum(math.exp(x) for x in col))
    return total / (2 * n)


def test_known_value_orthogonal_pairs():
    v = torch.eye(3)
    loss = ClipLoss()(v, v.clone(), 2.0)
    expected = -2 + math.log(math.exp(2) + 2)  # each row: its own pair at 2, two others at 0
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_matches_hand_written_reference():
    g = torch.Generator().manual_seed(0)
    v = F.normalize(torch.randn(5, 8, generator=g), dim=-1)
    t = F.normalize(torch.randn(5, 8, generator=g), dim=-1)
    assert float(ClipLoss()(v, t, 7.5)) == pytest.approx(reference(v, t, 7.5), rel=1e-5)


def test_symmetric_in_video_and_text():
    g = torch.Generator().manual_seed(1)
    v = F.normalize(torch.randn(6, 4, generator=g), dim=-1)
    t = F.normalize(torch.randn(6, 4, generator=g), dim=-1)
    fn = ClipLoss()
    assert float(fn(v, t, 20.0)) == pytest.approx(float(fn(t, v, 20.0)), rel=1e-6)
    perm = torch.tensor([3, 1, 5, 0, 2, 4])  # reordering pairs together changes nothing
    assert float(fn(v[perm], t[perm], 20.0)) == pytest.approx(float(fn(v, t, 20.0)), rel=1e-6)


def test_perfect_alignment_beats_shuffled():
    v = torch.eye(4)
    fn = ClipLoss()
    assert float(fn(v, v, 20.0)) < float(fn(v, v[[1, 0, 3, 2]], 20.0))


def test_masking_identical_impressions():
    # pairs 0 and 1 share an impression; with masking neither is the other's negative
    v = F.normalize(torch.tensor([[1.0, 0.3, 0], [1.0, 0.0, 0.3], [0, 1.0, 0]]), dim=-1)
    t = v.clone()
    masked = ClipLoss(mask_duplicates=True)(v, t, 5.0, torch.tensor([7, 7, 9]))
    logits = 5.0 * v @ t.T
    logits[0, 1] = logits[1, 0] = float("-inf")
    labels = torch.arange(3)
    manual = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T.contiguous(), labels)) / 2
    assert float(masked) == pytest.approx(float(manual), rel=1e-6)
    assert float(masked) < float(ClipLoss()(v, t, 5.0)) - 0.1  # the near-duplicate negative is gone
    # distinct ids: masking changes nothing
    same = ClipLoss(mask_duplicates=True)(v, t, 5.0, torch.tensor([1, 2, 3]))
    assert float(same) == pytest.approx(float(ClipLoss()(v, t, 5.0)), rel=1e-6)


def test_masking_keeps_true_pair_when_all_identical():
    v = F.normalize(torch.randn(4, 8, generator=torch.Generator().manual_seed(2)), dim=-1)
    loss = ClipLoss(mask_duplicates=True)(v, v, 20.0, torch.zeros(4, dtype=torch.long))
    assert float(loss) == pytest.approx(0.0, abs=1e-6)  # only the true pair is left in every row


def test_masking_needs_ids():
    with pytest.raises(ValueError, match="impression_ids"):
        ClipLoss(mask_duplicates=True)(torch.eye(2), torch.eye(2), 1.0)


def test_shape_mismatch_is_one_clear_error():
    with pytest.raises(ValueError, match="one shape"):
        ClipLoss()(torch.eye(2), torch.eye(3), 1.0)


def test_logit_scale_clamped_at_100():
    v = F.normalize(torch.randn(4, 8, generator=torch.Generator().manual_seed(3)), dim=-1)
    t = F.normalize(torch.randn(4, 8, generator=torch.Generator().manual_seed(4)), dim=-1)
    fn = ClipLoss()
    assert float(fn(v, t, 1e4)) == pytest.approx(float(fn(v, t, MAX_LOGIT_SCALE)), rel=1e-6)
    assert float(fn(v, t, 50.0)) != pytest.approx(float(fn(v, t, MAX_LOGIT_SCALE)), rel=1e-3)


def test_gradient_reaches_learnable_scale():
    v = F.normalize(torch.randn(4, 8, generator=torch.Generator().manual_seed(5)), dim=-1)
    log_scale = torch.tensor(math.log(20.0), requires_grad=True)
    ClipLoss()(v, v.roll(1, 0), log_scale.exp()).backward()
    assert log_scale.grad is not None and float(log_scale.grad) != 0.0
