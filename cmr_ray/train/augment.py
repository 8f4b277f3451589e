"""Anatomically sane augmentation of one clip (pure numpy).

    clip = augment_clip(clip, rng, hflip=False)    # uint8 [F, H, W] -> uint8 [F, H, W]

One random transform per clip, the same for every frame (the heart must not jump between
frames): a small rotation (±10°), scaling (±5%) and translation (±6% of the size), then an
intensity jitter (gamma 0.8–1.25, contrast ±10%, brightness ±5% of full scale).  No
left-right flip unless `hflip` (a flip mirrors the heart: the RV would sit on the wrong
side, an anatomy no scanner produces); no vertical flip ever.
"""
from __future__ import annotations

import math

import numpy as np

MAX_ROTATION_DEG = 10.0
MAX_SCALE = 0.05
MAX_SHIFT = 0.06


def affine_params(rng: np.random.Generator) -> tuple[float, float, float, float]:
    """(angle in degrees, scale, shift y, shift x as fractions of the size)."""
    angle = rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG)
    scale = 1.0 + rng.uniform(-MAX_SCALE, MAX_SCALE)
    dy, dx = rng.uniform(-MAX_SHIFT, MAX_SHIFT, size=2)
    return angle, scale, float(dy), float(dx)


def warp(clip: np.ndarray, angle: float, scale: float, dy: float, dx: float) -> np.ndarray:
    """Rotate/scale about the centre and shift, every frame alike (bilinear, zero fill).

    The sampling grid and weights are computed once and applied to all frames together."""
    f, h, w = clip.shape
    a = math.radians(angle)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) / scale
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    shift = np.array([dy * h, dx * w])
    # output pixel o samples input at rot @ (o - centre - shift) + centre
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    rel = np.stack([yy.ravel() - centre[0] - shift[0], xx.ravel() - centre[1] - shift[1]])
    sy, sx = rot @ rel + centre[:, None]
    y0, x0 = np.floor(sy).astype(np.int64), np.floor(sx).astype(np.int64)
    wy, wx = (sy - y0).astype(np.float32), (sx - x0).astype(np.float32)
    src = clip.reshape(f, h * w).astype(np.float32)
    out = np.zeros((f, h * w), np.float32)
    for oy, ox, wt in ((0, 0, (1 - wy) * (1 - wx)), (0, 1, (1 - wy) * wx), (1, 0, wy * (1 - wx)), (1, 1, wy * wx)):
        yi, xi = y0 + oy, x0 + ox
        ok = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
        idx = np.where(ok, yi * w + xi, 0)
        out += src[:, idx] * np.where(ok, wt, 0.0)[None, :]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(f, h, w)


def jitter(clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gamma, contrast and brightness: one monotone map of the 256 grey levels (a lookup table)."""
    gamma = math.exp(rng.uniform(math.log(0.8), math.log(1.25)))
    contrast = rng.uniform(0.9, 1.1)
    bright = rng.uniform(-0.05, 0.05)
    x = (np.arange(256, dtype=np.float64) / 255.0) ** gamma
    x = (x - 0.5) * contrast + 0.5 + bright
    lut = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
    return lut[clip]


def augment_clip(clip: np.ndarray, rng: np.random.Generator, hflip: bool = False) -> np.ndarray:
    if clip.dtype != np.uint8 or clip.ndim != 3:
        raise ValueError(f"augment_clip: expected uint8 [F, H, W], got {clip.dtype} {clip.shape}")
    out = jitter(warp(clip, *affine_params(rng)), rng)
    if hflip and rng.random() < 0.5:
        out = out[:, :, ::-1].copy()
    return out
