"""Anatomically sane augmentation of one clip (pure numpy).

    clip = augment_clip(clip, rng, hflip=False)    # uint8 [F, H, W] -> uint8 [F, H, W]

One random transform per clip, the same for every frame (the heart must not jump between
frames): a small rotation (±10°), scaling (±5%) and translation (±6% of the size), then an
intensity jitter (gamma 0.8–1.25, contrast ±10%, brightness ±5% of full scale).  No
left-right flip unless `hflip` (a flip mirrors the heart: the RV would sit on the wrong
side, an anatomy no scanner produces); no vertical flip ever.
"""
from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=8)
def _pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return yy.ravel(), xx.ravel()


def warp_taps(h: int, w: int, angle: float, scale: float, dy: float, dx: float):
    """The bilinear sampling of `warp` for an [H, W] frame: four (flat source index int64,
    weight float32) taps, one per corner; a corner outside the frame has index 0 and weight 0
    (zero fill).  Output pixel o samples the input at rot @ (o - centre - shift) + centre."""
    a = math.radians(angle)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) / scale
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    shift = np.array([dy * h, dx * w])
    yy, xx = _pixel_grid(h, w)
    rel = np.stack([yy - centre[0] - shift[0], xx - centre[1] - shift[1]])
    sy, sx = rot @ rel + centre[:, None]
    y0, x0 = np.floor(sy).astype(np.int64), np.floor(sx).astype(np.int64)
    wy, wx = (sy - y0).astype(np.float32), (sx - x0).astype(np.float32)
    inside_y = ((y0 >= 0) & (y0 < h), (y0 >= -1) & (y0 < h - 1))  # row y0 (+0, +1) in the frame
    inside_x = ((x0 >= 0) & (x0 < w), (x0 >= -1) & (x0 < w - 1))
    base = y0 * w + x0
    wy1, wx1 = 1 - wy, 1 - wx
    taps = []
    for oy, ox, wt in ((0, 0, wy1 * wx1), (0, 1, wy1 * wx), (1, 0, wy * wx1), (1, 1, wy * wx)):
        ok = inside_y[oy] & inside_x[ox]
        taps.append((np.where(ok, base + (oy * w + ox), 0), np.where(ok, wt, 0.0)))
    return taps


WARP_CHUNK = 2  # frames per pass: the float32 buffers stay in the core's cache (measured in bench/bench_input.py)


def warp(clip: np.ndarray, angle: float, scale: float, dy: float, dx: float,
         lut: np.ndarray | None = None) -> np.ndarray:
    """Rotate/scale about the centre and shift, every frame alike (bilinear, zero fill); then
    `lut` (a uint8 grey-level map), if given.

    The taps are computed once per clip and applied a few frames at a time: each tap is
    gathered from the uint8 frames and multiplied into reused float32 buffers small enough to
    stay in cache.  The float32 products and their order of summation are those of
    `warp_reference`, so the result is the same to the bit."""
    f, h, w = clip.shape
    taps = warp_taps(h, w, angle, scale, dy, dx)
    src = clip.reshape(f, h * w)
    res = np.empty((f, h * w), np.uint8)
    c = max(1, min(WARP_CHUNK, f))
    acc, tmp = np.empty((c, h * w), np.float32), np.empty((c, h * w), np.float32)
    gathered = np.empty((c, h * w), np.uint8)
    for s in range(0, f, c):
        n = min(c, f - s)
        o, t, g = acc[:n], tmp[:n], gathered[:n]
        for k, (idx, wt) in enumerate(taps):
            np.take(src[s:s + n], idx, axis=1, out=g)
            np.multiply(g, wt, out=o if k == 0 else t, dtype=np.float32)
            if k:
                o += t
        np.rint(o, out=o)
        np.clip(o, 0, 255, out=o)
        if lut is None:
            res[s:s + n] = o
        else:
            g[...] = o
            np.take(lut, g, out=res[s:s + n])
    return res.reshape(f, h, w)


def warp_reference(clip: np.ndarray, angle: float, scale: float, dy: float, dx: float) -> np.ndarray:
    """The first implementation of `warp` (float32 copy of the clip, fancy indexing), kept
    as the reference the faster one is tested and benchmarked against."""
    f, h, w = clip.shape
    src = clip.reshape(f, h * w).astype(np.float32)
    out = np.zeros((f, h * w), np.float32)
    for idx, wt in warp_taps(h, w, angle, scale, dy, dx):
        out += src[:, idx] * wt[None, :]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(f, h, w)


def jitter_params(rng: np.random.Generator) -> tuple[float, float, float]:
    """(gamma, contrast, brightness as a fraction of full scale)."""
    gamma = math.exp(rng.uniform(math.log(0.8), math.log(1.25)))
    contrast = rng.uniform(0.9, 1.1)
    bright = rng.uniform(-0.05, 0.05)
    return gamma, float(contrast), float(bright)


def jitter_lut(gamma: float, contrast: float, bright: float) -> np.ndarray:
    """The 256-entry uint8 lookup table of one intensity jitter."""
    x = (np.arange(256, dtype=np.float64) / 255.0) ** gamma
    x = (x - 0.5) * contrast + 0.5 + bright
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def jitter(clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gamma, contrast and brightness: one monotone map of the 256 grey levels (a lookup table)."""
    return np.take(jitter_lut(*jitter_params(rng)), clip)


# One clip's transform as numbers: what `augment_params` draws, `apply_params` (numpy, uint8)
# and `cmr_ray.train.augment_torch.augment_batch` (torch, on the model's device) apply.
PARAM_NAMES = ("angle", "scale", "dy", "dx", "gamma", "contrast", "bright", "flip")


def augment_params(rng: np.random.Generator, hflip: bool = False) -> np.ndarray:
    """float64 [8] (`PARAM_NAMES`), drawn from `rng` in the order `augment_clip` draws them."""
    affine = affine_params(rng)
    jit = jitter_params(rng)
    flip = float(bool(hflip) and rng.random() < 0.5)
    return np.array([*affine, *jit, flip], np.float64)


def apply_params(clip: np.ndarray, params) -> np.ndarray:
    """uint8 [F, H, W] -> uint8 [F, H, W]: warp, then the jitter's lookup table, then the flip."""
    if clip.dtype != np.uint8 or clip.ndim != 3:
        raise ValueError(f"augment_clip: expected uint8 [F, H, W], got {clip.dtype} {clip.shape}")
    angle, scale, dy, dx, gamma, contrast, bright, flip = (float(v) for v in params)
    out = warp(clip, angle, scale, dy, dx, lut=jitter_lut(gamma, contrast, bright))
    if flip:
        out = out[:, :, ::-1].copy()
    return out


def augment_clip(clip: np.ndarray, rng: np.random.Generator, hflip: bool = False) -> np.ndarray:
    if clip.dtype != np.uint8 or clip.ndim != 3:
        raise ValueError(f"augment_clip: expected uint8 [F, H, W], got {clip.dtype} {clip.shape}")
    return apply_params(clip, augment_params(rng, hflip))


def augment_clip_reference(clip: np.ndarray, rng: np.random.Generator, hflip: bool = False) -> np.ndarray:
    """The first implementation (`warp_reference`, fancy-indexed lookup): the bench's old path."""
    if clip.dtype != np.uint8 or clip.ndim != 3:
        raise ValueError(f"augment_clip: expected uint8 [F, H, W], got {clip.dtype} {clip.shape}")
    out = warp_reference(clip, *affine_params(rng))
    out = jitter_lut(*jitter_params(rng))[out]
    if hflip and rng.random() < 0.5:
        out = out[:, :, ::-1].copy()
    return out


def augment_batch(video, params):
    """The same transform in torch, for a whole batch on the model's device (`train.augment_on:
    device`): uint8 [B, F, H, W] or float in [0, 1] (grey levels x / 255) -> the same dtype.

    `params` is float64 [B, 8] (`augment_params` per clip, drawn on the CPU by the data tasks).
    The sampling grid and the lookup table are computed in float64 as `warp_taps` and
    `jitter_lut` compute them, the taps' products in float32 summed in the same order, each step
    rounded to grey levels where the numpy path rounds: the result equals `apply_params` but for
    a grey level of rounding where float results land on a .5 tie (tests/train/test_augment_device.py)."""
    import torch

    dev = video.device
    is_u8 = video.dtype == torch.uint8
    b, f, h, w = video.shape
    p = torch.as_tensor(params, dtype=torch.float64).to(dev).reshape(b, len(PARAM_NAMES))
    grey = video if is_u8 else torch.round(video.float() * 255.0).clamp_(0, 255).to(torch.uint8)
    src = grey.reshape(b, f, h * w)
    angle, scale, dy, dx, gamma, contrast, bright, flip = p.unbind(1)
    a = torch.deg2rad(angle)[:, None]
    cos, sin, scale = torch.cos(a), torch.sin(a), scale[:, None]
    yy, xx = torch.meshgrid(torch.arange(h, device=dev, dtype=torch.float64),
                            torch.arange(w, device=dev, dtype=torch.float64), indexing="ij")
    cy, cx = (h - 1) / 2, (w - 1) / 2
    ry = yy.reshape(1, -1) - cy - (dy * h)[:, None]
    rx = xx.reshape(1, -1) - cx - (dx * w)[:, None]
    sy = (cos / scale) * ry + (-sin / scale) * rx + cy
    sx = (sin / scale) * ry + (cos / scale) * rx + cx
    y0, x0 = torch.floor(sy), torch.floor(sx)
    wy, wx = (sy - y0).float(), (sx - x0).float()
    y0, x0 = y0.long(), x0.long()
    out = torch.zeros(b, f, h * w, device=dev, dtype=torch.float32)
    for oy, ox, wt in ((0, 0, (1 - wy) * (1 - wx)), (0, 1, (1 - wy) * wx), (1, 0, wy * (1 - wx)), (1, 1, wy * wx)):
        yi, xi = y0 + oy, x0 + ox
        ok = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
        idx = torch.where(ok, yi * w + xi, 0)
        tap = torch.gather(src, 2, idx[:, None, :].expand(b, f, h * w)).float()
        out += tap * torch.where(ok, wt, 0.0)[:, None, :]
    warped = torch.round(out).clamp_(0, 255).long()
    levels = torch.arange(256, device=dev, dtype=torch.float64)[None, :] / 255.0
    x = (levels ** gamma[:, None] - 0.5) * contrast[:, None] + 0.5 + bright[:, None]
    lut = torch.round(x * 255.0).clamp_(0, 255)                       # [B, 256]
    res = torch.gather(lut, 1, warped.reshape(b, -1)).reshape(b, f, h, w)
    res = torch.where(flip.bool()[:, None, None, None], res.flip(-1), res)
    return res.to(torch.uint8) if is_u8 else (res / 255.0).to(video.dtype)
