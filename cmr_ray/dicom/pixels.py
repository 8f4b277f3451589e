"""Decode pixels once and make fixed-size uint8 frames.

    vol = load_grid(grid)                      # float32 [S, T, H, W], rescale applied
    vol = load_grid(grid, layouts)             # {path: header["pixel_layout"]}: no re-parse
    clip = to_uint8(vol, size=64)              # uint8 [S, T, 64, 64]
    frames = decode_file(path)                 # float32 [frames, H, W] of one file
    frames = decode_file(path, h["pixel_layout"])  # the same array, pixel bytes read directly

Decoding goes through pydicom's pixel handlers: native (implicit/explicit VR, big endian),
deflate, RLE, JPEG baseline/extended/lossless (pylibjpeg-libjpeg), JPEG-LS (pyjpegls) and
JPEG 2000 (pylibjpeg-openjpeg).  A file that does not decode raises DicomReadError with a
one-line reason naming the transfer syntax.  Rescale: RescaleSlope/Intercept, or per frame
the Enhanced MR PixelValueTransformationSequence.  Colour images become luminance.
With a `pixel_layout` from `read_header` (native little-endian monochrome files), the pixel
bytes are read from where the index found them and unpacked as pydicom would (dtype, unused
high bits shifted out, per-frame rescale), without parsing the header a second time; a file
whose size or mtime changed since it was indexed is read in full.

to_uint8: clip to the series' (low, high) intensity percentiles, scale to 0…255, resize
every frame with its aspect kept (area averaging when shrinking, bilinear when enlarging;
plain numpy) and pad with zeros to size x size, centred.
"""
from __future__ import annotations

import functools
import os

import numpy as np
import pydicom
import pydicom.dataset
import pydicom.uid

from cmr_ray.dicom.errors import DicomReadError
from cmr_ray.dicom.headers import rescale_params


def _rescaled(arr: np.ndarray, slopes, intercepts) -> np.ndarray:
    out = arr.astype(np.float32, copy=False)
    slope, inter = np.array(slopes, np.float32), np.array(intercepts, np.float32)
    if np.any(slope != 1) or np.any(inter != 0):
        out = out * slope[:, None, None] + inter[:, None, None]
    return out


def _read_native(path, layout: dict) -> np.ndarray | None:
    """The frames of a native file at the indexed `layout`; None when the file changed since."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        if (st.st_size, st.st_mtime_ns) != (layout["file_size"], layout["mtime_ns"]):
            return None
        f.seek(layout["offset"])
        buf = f.read(layout["nbytes"])
    if len(buf) != layout["nbytes"]:
        return None
    arr = np.frombuffer(buf, layout["dtype"]).reshape(layout["frames"], layout["rows"], layout["columns"])
    shift = layout["unused_bits"]
    if shift:  # as pydicom: the unused high bits do not count (sign-extended when signed)
        arr = np.right_shift(np.left_shift(arr, shift), shift)
    return _rescaled(arr, layout["slopes"], layout["intercepts"])


def decode_file(path, layout: dict | None = None) -> np.ndarray:
    """All frames of one file as float32 [frames, H, W], rescale applied.  With `layout`
    (read_header's "pixel_layout") the pixel bytes are read directly (module doc)."""
    if layout is not None:
        try:
            out = _read_native(path, layout)
        except OSError:
            out = None  # the full read below says what is wrong with the file
        if out is not None:
            return out
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
    return _rescaled(arr, *rescale_params(ds, n))


def load_grid(grid, layouts: dict | None = None) -> np.ndarray:
    """float32 [S, T, H, W] for a [slices][phases] grid of (path, frame_index); each file read
    once.  `layouts` {path: read_header's "pixel_layout"} lets native files skip the re-parse."""
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
                cache[path] = decode_file(path, layouts.get(path) if layouts else None)
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


@functools.lru_cache(maxsize=256)
def _weights(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] resampling matrix: area averaging (shrink) or bilinear (enlarge).
    Cached (a cohort has a few image sizes) and read-only."""
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
    out = (w / w.sum(axis=1, keepdims=True)).astype(np.float32)
    out.setflags(write=False)
    return out


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
