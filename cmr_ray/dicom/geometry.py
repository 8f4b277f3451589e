"""Frames and geometry of a series, from header dicts (see headers.read_header).

    frames = frames_of(header)      # one Frame per image frame in the file
    n = slice_normal(orientation6)  # unit normal of the image plane (row x column)
    stats = series_stats(headers)   # counts the classifier uses as evidence (timing, b-values)

A single-frame file is one frame; an Enhanced MR file gives one frame per item of its
per-frame functional groups; a classic multi-frame file (no per-frame geometry) is taken as
frames of one slice over time (TriggerTime + i * FrameTime when FrameTime is given).
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

POSITION_TOL_MM = 0.1     # two frames closer than this along the normal are one slice
PARALLEL_COS = 0.995      # normals with |cos| above this are parallel (about 5.7 degrees)
AXIS_ALIGNED_COS = 0.98   # a normal this close to a patient axis is axial/sagittal/coronal


@dataclasses.dataclass(frozen=True)
class Frame:
    path: str
    index: int                      # frame index inside the file
    position: tuple | None
    orientation: tuple | None
    trigger_time: float | None
    instance_number: int | None
    temporal_index: int | None = None


def slice_normal(orientation) -> np.ndarray | None:
    """Unit normal (row x column) of an ImageOrientationPatient, or None; read-only, shared
    between calls with the same orientation (a study has a handful, called per frame)."""
    if not orientation or len(orientation) != 6:
        return None
    return _normal(tuple(float(v) for v in orientation))


@functools.lru_cache(maxsize=4096)
def _normal(o: tuple) -> np.ndarray | None:
    n = np.array([o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]])
    norm = float(np.sqrt(n @ n))
    if norm < 1e-6:
        return None
    n /= norm
    n.setflags(write=False)
    return n


def frames_of(h: dict) -> list[Frame]:
    n = int(h.get("number_of_frames") or 1)
    inst = h.get("instance_number")
    if h.get("enhanced") and h.get("frame_positions") is not None:
        pos, ori = h["frame_positions"], h.get("frame_orientations") or [None] * n
        tt = h.get("frame_trigger_times") or [None] * n
        ti = h.get("frame_temporal_indices") or [None] * n
        top_o = h.get("image_orientation")
        return [Frame(h["path"], i, tuple(pos[i]) if pos[i] else None,
                      tuple(ori[i]) if ori[i] else (tuple(top_o) if top_o else None),
                      tt[i], inst, ti[i]) for i in range(min(n, len(pos)))]
    p = tuple(h["image_position"]) if h.get("image_position") else None
    o = tuple(h["image_orientation"]) if h.get("image_orientation") else None
    if n == 1:
        return [Frame(h["path"], 0, p, o, h.get("trigger_time"), inst)]
    t0, dt = h.get("trigger_time") or 0.0, h.get("frame_time")
    return [Frame(h["path"], i, p, o, (t0 + i * dt) if dt else None, inst, i) for i in range(n)]


def distinct_normals(frames) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    last = None
    for f in frames:
        n = slice_normal(f.orientation)
        if n is last:  # the same orientation as the frame before (the cache shares its array)
            continue
        last = n
        if n is not None and not any(abs(float(n @ m)) > PARALLEL_COS for m in out):
            out.append(n)
    return out


def cluster_positions(values, tol: float = POSITION_TOL_MM) -> list[float]:
    """Distinct slice positions (sorted) among distances along the normal."""
    out: list[float] = []
    for v in sorted(values):
        if not out or v - out[-1] > tol:
            out.append(v)
    return out


def angle_deg(n1, n2) -> float:
    """Angle between two planes' normals, 0 … 90 degrees (sign of a normal does not matter)."""
    c = min(1.0, abs(float(np.dot(n1, n2))))
    return float(np.degrees(np.arccos(c)))


def series_stats(headers: list[dict]) -> dict:
    """Counts over a series' frames: slices, phases, timing, orientation, inversion time."""
    frames = [f for h in headers for f in frames_of(h)]
    normals = distinct_normals(frames)
    n0 = normals[0] if normals else None
    positions = [float(np.dot(f.position, n0)) for f in frames if n0 is not None and f.position]
    slices = cluster_positions(positions) if positions else []
    times = sorted({round(f.trigger_time, 3) for f in frames if f.trigger_time is not None})
    cni = [h.get("cardiac_number_of_images") for h in headers if h.get("cardiac_number_of_images")]
    tis = [h.get("inversion_time") for h in headers if h.get("inversion_time")]
    bvals = sorted({round(float(b), 1) for h in headers
                    for b in ((h.get("frame_b_values") or []) + [h.get("b_value")]) if b is not None})
    rr = [h.get("nominal_interval") for h in headers if h.get("nominal_interval")]
    n_slices = max(len(slices), 1)
    phases_by_count = len(frames) // n_slices if frames else 0
    axis = None
    if n0 is not None:
        k = int(np.argmax(np.abs(n0)))
        if abs(n0[k]) > AXIS_ALIGNED_COS:
            axis = ("sagittal", "coronal", "axial")[k]
    return {
        "n_files": len(headers),
        "n_frames": len(frames),
        "n_slices": n_slices,
        "n_orientations": len(normals),
        "n_trigger_times": len(times),
        "trigger_spread_ms": (times[-1] - times[0]) if times else 0.0,
        "cardiac_number_of_images": max(cni) if cni else None,
        "inversion_time": float(np.median(tis)) if tis else None,
        "nominal_interval": float(np.median(rr)) if rr else None,
        "b_values": bvals,  # distinct diffusion b-values (s/mm2) of the series' files
        "phases": max(phases_by_count, 1),  # frames per slice; trigger times vary per slice
        "normal": [float(x) for x in n0] if n0 is not None else None,
        "axis_aligned": axis,
        "image_type": sorted({v.upper() for h in headers for v in (h.get("image_type") or [])}),
    }
