"""Decode pixels once and make fixed-size uint8 frames.

    vol = load_grid(grid)                      # float32 [S, T, H, W], rescale applied
    clip = to_uint8(vol, size=64)              # uint8 [S, T, 64, 64]
    frames = decode_file(path)                 # float32 [frames, H, W] of one file

Decoding goes through pydicom's pixel handlers: native (implicit/explicit VR, big endian),
deflate, RLE, JPEG baseline/extended/lossless (pylibjpeg-libjpeg), JPEG-LS (pyjpegls) and
JPEG 2000 (pylibjpeg-openjpeg).  A file that does not decode raises DicomReadError with a
one-line reason naming the transfer syntax.  Rescale: RescaleSlope/Intercept, or per frame
the Enhanced MR PixelValueTransformationSequence.  Colour images become luminance.

to_uint8: clip to the series' (low, high) intensity percentiles, scale to 0…255, resize
every frame with its aspect kept (area averaging when shrinking, bilinear when enlarging;
plain numpy) and pad with zeros to size x size, centred.
"""
from __future__ import annotations

import numpy as np
import pydicom
import pydicom.dataset
import pydicom.uid

from cmr_ray.dicom.errors import DicomReadError


def _rescale_params(ds, n_frames: int):
    slope = np.full(n_frames, float(ds.get("RescaleSlope", 1.0) or 1.0), np.float32)
    inter = np.full(n_frames, float(ds.get("RescaleIntercept", 0.0) or 0.0), np.float32)
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    per = ds.get("PerFrameFunctionalGroupsSequence")
    for i in range(n_frames):
        for g in (per[i] if per and i < len(per) else None, shared):
            pvt = g.get("PixelValueTransformationSequence") if g is not None else None
            if pvt:
                slope[i] = float(pvt[0].get("RescaleSlope", 1.0) or 1.0)
                inter[i] = float(pvt[0].get("RescaleIntercept", 0.0) or 0.0)
                break
    return slope, inter


def decode_file(path) -> np.ndarray:
    """All frames of one file as float32 [frames, H, W], rescale applied."""
    try:
        ds = pydicom.dcmread(path, force=True)  # read_header already refused non-DICOM files
    except Exception as e:
        raise DicomReadError(f"unreadable DICOM ({type(e).__name__}: {str(e)[:160]})", path) from None
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is None:  # no file meta: the dataset's own encoding is native by necessity
        implicit, little = ds.original_encoding
        ts = pydicom.uid.ImplicitVRLittleEndian if implicit else (
            pydicom.uid.ExplicitVRLittleEndian if little else pydicom.uid.ExplicitVRBigEndian)
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ts
    name = getattr(ts, "name", None) or str(ts or "unknown transfer syntax")
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise DicomReadError("no pixel data (or the file ends before it)", path)
    try:
        arr = ds.pixel_array
    except Exception as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        raise DicomReadError(f"cannot decode pixel data ({name}): {msg[:240]}", path) from None
    n = int(ds.get("NumberOfFrames", 1) or 1)
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    arr = np.asarray(arr)
    if spp > 1:  # colour: [.., H, W, 3] -> luminance (pydicom converts YBR to RGB by default)
        arr = arr[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if n == 1 and arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] != n:
        raise DicomReadError(f"decoded pixel array has shape {arr.shape}, expected {n} frame(s)", path)
    out = arr.astype(np.float32, copy=False)
    slope, inter = _rescale_params(ds, n)
    if np.any(slope != 1) or np.any(inter != 0):
        out = out * slope[:, None, None] + inter[:, None, None]
    return out


def load_grid(grid) -> np.ndarray:
    """float32 [S, T, H, W] for a [slices][phases] grid of (path, frame_index); each file read once."""
    cells = list(grid)
    if not cells or not cells[0]:
        raise ValueError("load_grid needs a non-empty [slices][phases] grid")
    cache: dict = {}
    S, T = len(cells), len(cells[0])
    out = None
    for s, row in enumerate(cells):
        if len(row) != T:
            raise ValueError(f"grid is not rectangular: slice {s} has {len(row)} phases, slice 0 has {T}")
        for t, (path, idx) in enumerate(row):
            if path not in cache:
                cache[path] = decode_file(path)
            frames = cache[path]
            if idx >= len(frames):
                raise DicomReadError(f"frame {idx} requested but the file has {len(frames)}", path)
            img = frames[idx]
            if out is None:
                out = np.empty((S, T) + img.shape, np.float32)
            elif img.shape != out.shape[2:]:
                raise DicomReadError(f"Rows x Columns {img.shape[0]}x{img.shape[1]} differs from the series' "
                                     f"{out.shape[2]}x{out.shape[3]}", path)
            out[s, t] = img
    return out


def _weights(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] resampling matrix: area averaging (shrink) or bilinear (enlarge)."""
    scale = n_in / n_out
    w = np.zeros((n_out, n_in), np.float64)
    if scale >= 1:  # each output pixel averages the input interval it covers
        for o in range(n_out):
            a, b = o * scale, (o + 1) * scale
            for i in range(int(np.floor(a)), min(int(np.ceil(b)), n_in)):
                w[o, i] = min(b, i + 1) - max(a, i)
    else:  # bilinear, pixel centres aligned (half-pixel convention)
        for o in range(n_out):
            x = (o + 0.5) * scale - 0.5
            x0 = int(np.floor(x))
            f = x - x0
            for i, wt in ((x0, 1 - f), (x0 + 1, f)):
                w[o, min(max(i, 0), n_in - 1)] += wt
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def resize_keep_aspect(frames: np.ndarray, size: int) -> np.ndarray:
    """[..., H, W] float -> [..., size, size]: aspect kept, zero padding, centred."""
    H, W = frames.shape[-2:]
    scale = size / max(H, W)
    h, w = max(1, min(size, round(H * scale))), max(1, min(size, round(W * scale)))
    resized = np.einsum("oh,...hw,pw->...op", _weights(H, h), frames.astype(np.float32), _weights(W, w),
                        optimize=True)
    out = np.zeros(frames.shape[:-2] + (size, size), np.float32)
    top, left = (size - h) // 2, (size - w) // 2
    out[..., top:top + h, left:left + w] = resized
    return out


def to_uint8(volume: np.ndarray, size: int, percentiles=(1, 99)) -> np.ndarray:
    """uint8 [S, T, size, size]: percentile clip over the whole series, scale, resize, pad."""
    vol = np.asarray(volume, np.float32)
    if vol.ndim != 4:
        raise ValueError(f"expected a [S, T, H, W] volume, got shape {vol.shape}")
    lo, hi = (float(v) for v in np.percentile(vol, [float(percentiles[0]), float(percentiles[1])]))
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise ValueError("volume has non-finite intensities")
    scaled = np.zeros_like(vol) if hi <= lo else (np.clip(vol, lo, hi) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(resize_keep_aspect(scaled, int(size))), 0, 255).astype(np.uint8)
