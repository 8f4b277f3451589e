"""`train.augment_on: device`: the torch transform matches the numpy one within rounding."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cmr_ray.train.augment import apply_params, augment_batch, augment_clip, augment_params  # noqa: E402


def clips(b=4, f=5, h=40, w=36, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (b, f, h, w), dtype=np.uint8)
    x[:, :, 10:30, 4:12] = 230  # structure, so the warp moves edges
    return x


def test_params_are_the_cpu_draws():
    clip = clips(1)[0]
    for seed in range(6):
        p = augment_params(np.random.default_rng(seed), hflip=True)
        assert np.array_equal(apply_params(clip, p), augment_clip(clip, np.random.default_rng(seed), hflip=True))


@pytest.mark.parametrize("as_float", [False, True])
def test_torch_batch_matches_numpy_within_rounding(as_float):
    x = clips()
    params = np.stack([augment_params(np.random.default_rng(s), hflip=True) for s in range(len(x))])
    params[0, :4] = [10.0, 0.95, 0.06, -0.06]  # the extremes of the ranges
    params[1, 7] = 1.0  # one flipped clip at least
    want = np.stack([apply_params(c, p) for c, p in zip(x, params)])
    v = torch.from_numpy(x)
    got = augment_batch(v.float() / 255.0 if as_float else v, params)
    got = (got * 255.0).round().to(torch.uint8) if as_float else got
    assert got.dtype == torch.uint8 and got.shape == v.shape
    diff = np.abs(got.numpy().astype(int) - want.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (diff.max(), (diff > 0).mean())


def test_identity_params_leave_the_batch_alone():
    x = clips(2)
    ident = np.array([[0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]] * 2)
    assert torch.equal(augment_batch(torch.from_numpy(x), ident), torch.from_numpy(x))
