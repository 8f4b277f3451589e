"""to_uint8 / resize_keep_aspect: percentile clip, aspect kept, zero padding, numpy only."""
from __future__ import annotations

import numpy as np
import pytest

from cmr_ray.dicom import load_grid, order_series, group_series, read_header, resize_keep_aspect, to_uint8
from tests.dicom.faults import real_file


def test_shape_dtype_and_range():
    vol = np.random.default_rng(0).normal(100, 20, (3, 5, 40, 40)).astype(np.float32)
    out = to_uint8(vol, 16)
    assert out.shape == (3, 5, 16, 16) and out.dtype == np.uint8
    same = to_uint8(vol, 40)  # no resampling: the clip range maps onto 0 ... 255 exactly
    assert same.min() == 0 and same.max() == 255
    assert abs(float(np.mean(same > 254)) - 0.01) < 0.003  # 1% of voxels above the 99th percentile


def test_percentile_clip_ignores_outliers():
    vol = np.tile(np.linspace(0, 100, 32, dtype=np.float32), (1, 1, 32, 1))
    spiked = vol.copy()
    spiked[0, 0, 0, 0] = 1e6  # one hot pixel must not darken the rest
    a, b = to_uint8(vol, 32), to_uint8(spiked, 32)
    assert np.abs(a.astype(int) - b.astype(int))[0, 0, 1:].max() <= 3


def test_aspect_kept_and_padded_with_zeros():
    vol = np.ones((1, 1, 20, 10), np.float32)
    vol[..., 0, 0] = 0  # give the clip a range
    out = resize_keep_aspect(vol, 16)
    assert out.shape == (1, 1, 16, 16)
    assert np.all(out[..., :, :4] == 0) and np.all(out[..., :, 12:] == 0)  # 20x10 -> 16x8, centred
    assert np.all(out[..., 1:, 5:11] == 1)


def test_area_downscale_keeps_mean_and_upscale_is_smooth():
    img = np.random.default_rng(1).uniform(0, 1, (64, 64)).astype(np.float32)
    small = resize_keep_aspect(img, 16)
    assert abs(small.mean() - img.mean()) < 1e-4
    assert np.allclose(small[0, 0], img[:4, :4].mean(), atol=1e-5)
    ramp = np.tile(np.arange(8, dtype=np.float32), (8, 1))
    big = resize_keep_aspect(ramp, 32)
    assert np.all(np.diff(big[16]) >= -1e-6)  # monotone ramp stays monotone


def test_constant_volume_is_zero():
    assert to_uint8(np.full((1, 2, 8, 8), 7.0), 8).max() == 0


def test_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"\[S, T, H, W\]"):
        to_uint8(np.zeros((8, 8)), 8)


def test_real_multiframe_series_end_to_end():
    (s,) = group_series([read_header(real_file("emri_small.dcm"))])
    clip = to_uint8(load_grid(order_series(s)), 32, (1, 99))
    assert clip.shape == (1, 10, 32, 32) and clip.std() > 10
