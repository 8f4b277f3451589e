"""Order a series into a [slices][phases] grid of (path, frame_index); pick one of repeats.

    grid = order_series(series)        # raises SeriesError(reason) when no grid can be formed
    grid[s][t] -> (path, frame_index); len(grid) slices; grid.n_phases; grid.dropped
    best = choose_series(candidates)   # one series among repeats of the same view

Slices are ordered by position along the slice normal (ImagePositionPatient . normal,
ascending), never by SliceLocation (which vendors fill inconsistently).  Phases inside a
slice are ordered by TriggerTime, then TemporalPositionIndex, InstanceNumber, path, frame.
Two frames at the same position and the same TriggerTime are duplicates: the first in that
order is kept, the other goes to `grid.dropped` with its reason.
A grid must be rectangular: a slice with fewer phases than the others, or every slice with
fewer phases than CardiacNumberOfImages, is "a missing phase" (SeriesError).  Frames in more
than one plane orientation (a 3-plane localizer) cannot form a grid either.

Repeated acquisitions (`choose_series`), a deterministic rule:
  1. for LGE, phase-sensitive (PSIR) before magnitude (see classify.lge_variant);
  2. usable before broken (no series problems);
  3. more frames (a complete stack beats a partial repeat);
  4. higher SeriesNumber (the later repeat: usually redone because the first was poor);
  5. SeriesInstanceUID, lexicographically (only to make ties deterministic).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from cmr_ray.dicom.errors import SeriesError
from cmr_ray.dicom.geometry import POSITION_TOL_MM, distinct_normals, frames_of


@dataclasses.dataclass
class Grid:
    cells: list                       # [slices][phases] of (path, frame_index)
    slice_positions: list             # mm along `normal`, ascending (None when unknown)
    normal: list | None
    trigger_times: list               # per phase of the first slice (None when unknown)
    dropped: dict = dataclasses.field(default_factory=dict)   # path -> reason

    def __len__(self):
        return len(self.cells)

    def __iter__(self):
        return iter(self.cells)

    def __getitem__(self, i):
        return self.cells[i]

    @property
    def n_slices(self) -> int:
        return len(self.cells)

    @property
    def n_phases(self) -> int:
        return len(self.cells[0]) if self.cells else 0

    @property
    def shape(self) -> tuple:
        return (self.n_slices, self.n_phases)

    @property
    def paths(self) -> list:
        return sorted({p for row in self.cells for p, _ in row})


def _phase_key(f):
    big = math.inf
    return (f.trigger_time if f.trigger_time is not None else big,
            f.temporal_index if f.temporal_index is not None else big,
            f.instance_number if f.instance_number is not None else big, f.path, f.index)


def order_series(series) -> Grid:
    """Grid of a series (anything with `.headers`, optional `.file_problems`, `.series_uid`)."""
    uid = getattr(series, "series_uid", None)
    skip = getattr(series, "file_problems", {}) or {}
    headers = [h for h in series.headers if h["path"] not in skip]
    frames = [f for h in headers for f in frames_of(h)]
    if not frames:
        raise SeriesError("no usable images", uid)
    normals = distinct_normals(frames)
    if len(normals) > 1:
        raise SeriesError(f"frames lie in {len(normals)} different plane orientations (a localizer, or mixed series)", uid)
    normal = normals[0] if normals else None
    if normal is not None and any(f.position is None for f in frames):
        normal = None  # cannot place every frame: treat the series as one slice
    groups: list[tuple[float | None, list]] = []
    if normal is None:
        groups = [(None, list(frames))]
    else:
        for f in sorted(frames, key=lambda f: float(np.dot(f.position, normal))):
            d = float(np.dot(f.position, normal))
            if groups and d - groups[-1][0] <= POSITION_TOL_MM:
                groups[-1][1].append(f)
            else:
                groups.append((d, [f]))
    dropped: dict = {}
    cells, positions, kept_first = [], [], None
    for d, fs in groups:
        fs.sort(key=_phase_key)
        kept = []
        for f in fs:
            prev = kept[-1] if kept else None
            if prev is not None and f.trigger_time is not None and prev.trigger_time is not None \
                    and abs(f.trigger_time - prev.trigger_time) < 1e-3:
                where = f"frame {f.index} of " if f.index else ""
                dropped.setdefault(f.path, f"duplicate image: {where}same position and TriggerTime as {prev.path}")
                continue
            kept.append(f)
        cells.append([(f.path, f.index) for f in kept])
        kept_first = kept if kept_first is None else kept_first
        positions.append(None if d is None else round(d, 3))
    counts = [len(c) for c in cells]
    left_out = f" (after leaving out {len(skip)} file(s): {next(iter(skip.values()))})" if skip else ""
    if len(set(counts)) > 1:
        full = max(counts)
        short = [f"{p if p is not None else '?'} mm ({n})" for p, n in zip(positions, counts) if n < full]
        raise SeriesError(f"missing phase: {len(short)} of {len(cells)} slices have fewer than {full} phases: "
                          f"{', '.join(short[:3])}{left_out}", uid)
    cni = max((h.get("cardiac_number_of_images") or 0 for h in headers), default=0)
    if counts[0] > 1 and cni > counts[0]:
        raise SeriesError(f"missing phase: {counts[0]} phases but CardiacNumberOfImages={cni}{left_out}", uid)
    times = [f.trigger_time for f in kept_first]
    return Grid(cells, positions, None if normal is None else [float(x) for x in normal], times, dropped)


def choose_series(candidates: list):
    """One series among repeats of the same view (the rule is in the module docstring)."""
    if not candidates:
        raise ValueError("choose_series needs at least one candidate")
    from cmr_ray.dicom.classify import lge_variant

    def rank(s):
        variant = lge_variant(s.description, s.protocol, getattr(s, "image_type", None))
        return (variant == "psir", not s.problems, s.n_images, s.series_number or -1)

    best = max(rank(s) for s in candidates)
    tied = [s for s in candidates if rank(s) == best]
    return min(tied, key=lambda s: s.series_uid)
