"""Clip assembly and frame sampling (pure numpy).

Assembly follows the paper's Figure 4: cine views contribute the phases of their middle
slice (cine over time), LGE SAX contributes its slices (over depth), a single LGE long-axis
slice is repeated to the LGE SAX depth; views are concatenated along the frame axis in the
combo's order.  Sampling follows shared/DESIGN.md: split the clip into `frames` equal
segments; a random frame per segment when training, the segment midpoint when evaluating.
That is the paper's rule (`sampling="uniform"`); a segment can then straddle two views, so
at training time one position of the clip shows one view or the next, while evaluation
always shows the same one.  `sampling="per_view"` gives each view a quota of the frames in
proportion to its length (`view_quota`) and applies the same segment rule inside each view;
where the views' boundaries fall on segment edges (e.g. the full combo at 32 or 64 frames,
a single view) both rules pick the same frames.
"""
from __future__ import annotations

import numpy as np

from cmr_ray.data.schema import decode_view
from cmr_ray.views import parse_combo


SAMPLINGS = ("uniform", "per_view")


class MissingViewError(KeyError):
    pass


def view_frames(seq: str, view: str, arr: np.ndarray, lge_depth: int) -> np.ndarray:
    """[S, T, H, W] -> [F, H, W] for one view, per Figure 4."""
    if seq == "cine":
        return arr[arr.shape[0] // 2]  # middle slice over time
    if view == "sax":
        return arr[:, 0]  # slices over depth
    return np.repeat(arr[:1, 0], max(lge_depth, 1), axis=0)  # one LAX slice, repeated


def assemble(row: dict, combo: str) -> np.ndarray:
    """Concatenate the combo's views of one store row into a clip [L, H, W] uint8."""
    views = {}
    for seq, view in parse_combo(combo):
        slot = f"{seq}_{view}"
        arr = decode_view(row.get(slot), row.get(f"{slot}_shape"))
        if arr is None:
            raise MissingViewError(f"study {row.get('study_key')} has no {slot}")
        views[(seq, view)] = arr
    lge_sax = row.get("lge_sax_shape")
    lge_depth = int(lge_sax[0]) if lge_sax is not None else 1
    parts = [view_frames(s, v, a, lge_depth) for (s, v), a in views.items()]
    return np.concatenate(parts, axis=0)


def sample_indices(length: int, frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """`frames` indices into a clip of `length`: random per segment (rng) or midpoints."""
    edges = np.linspace(0, length, frames + 1)
    lo, hi = edges[:-1], edges[1:]
    if rng is None:
        idx = (lo + hi) / 2
    else:
        idx = lo + rng.random(frames) * (hi - lo)
    return np.clip(np.floor(idx).astype(np.int64), 0, length - 1)


def view_quota(lengths: list[int], frames: int) -> list[int]:
    """Frames per view, in proportion to the views' lengths (largest remainder; ties go to the
    earlier view).  Fewer frames than views leave the later, shorter views out:

    >>> view_quota([12, 12, 10, 10, 10, 10], 8), view_quota([12, 12, 10, 10, 10, 10], 1)
    ([2, 2, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0])"""
    total = sum(lengths)
    if total <= 0:
        raise ValueError(f"view_quota: views of lengths {lengths} hold no frames")
    share = [frames * n / total for n in lengths]
    quota = [int(s) for s in share]
    for i in sorted(range(len(lengths)), key=lambda k: (quota[k] - share[k], k))[:frames - sum(quota)]:
        quota[i] += 1
    return quota


def clip_indices(lengths: list[int], frames: int, rng: np.random.Generator | None = None,
                 sampling: str = "uniform") -> np.ndarray:
    """`frames` indices into the concatenation of views of `lengths`, by `sampling` (SAMPLINGS)."""
    if sampling == "uniform":
        return sample_indices(sum(lengths), frames, rng)
    if sampling != "per_view":
        raise ValueError(f"data.sampling: expected one of {SAMPLINGS}, got {sampling!r}")
    starts = np.cumsum([0, *lengths[:-1]])
    return np.concatenate([start + sample_indices(n, k, rng)
                           for start, n, k in zip(starts, lengths, view_quota(lengths, frames)) if k])


def _view_parts(row: dict, combo: str) -> list[tuple[str, str, np.ndarray, int]]:
    """(seq, view, [S, T, H, W] array, frames it adds to the clip) per view of the combo, in order.

    The arrays are zero-copy views of the row's buffers (`decode_view`); nothing is copied."""
    parts = []
    for seq, view in parse_combo(combo):
        slot = f"{seq}_{view}"
        arr = decode_view(row.get(slot), row.get(f"{slot}_shape"))
        if arr is None:
            raise MissingViewError(f"study {row.get('study_key')} has no {slot}")
        parts.append([seq, view, arr])
    lge_sax = row.get("lge_sax_shape")
    lge_depth = max(int(lge_sax[0]) if lge_sax is not None else 1, 1)
    for p in parts:
        seq, view, arr = p
        p.append(arr.shape[1] if seq == "cine" else arr.shape[0] if view == "sax" else lge_depth)
    return [tuple(p) for p in parts]


def make_clip(row: dict, combo: str, frames: int, rng: np.random.Generator | None = None,
              sampling: str = "uniform") -> np.ndarray:
    """`assemble(row, combo)[clip_indices(...)]`, the same bytes, but only the sampled frames
    are copied out of the row's buffers (the full clip of a paper-size study is ~5 MB; 16
    sampled frames are 0.8 MB): the sampled clip indices are mapped onto (view, slice, phase)."""
    parts = _view_parts(row, combo)
    idx = clip_indices([p[3] for p in parts], frames, rng, sampling)
    h, w = parts[0][2].shape[2:]
    for seq, view, arr, _ in parts:
        if arr.shape[2:] != (h, w):
            raise ValueError(f"study {row.get('study_key')}: {seq}_{view} frames are {arr.shape[2:]}, not {(h, w)}")
    out = np.empty((frames, h, w), np.uint8)
    start = 0
    for seq, view, arr, n in parts:
        sel = (idx >= start) & (idx < start + n)
        if sel.any():
            loc = idx[sel] - start
            if seq == "cine":
                out[sel] = arr[arr.shape[0] // 2][loc]      # middle slice over time
            elif view == "sax":
                out[sel] = arr[loc, 0]                      # slices over depth
            else:
                out[sel] = arr[0, 0][None]                  # one LAX slice, repeated
        start += n
    return out


def make_clip_full(row: dict, combo: str, frames: int, rng: np.random.Generator | None = None,
                   sampling: str = "uniform") -> np.ndarray:
    """The reference path `make_clip` must equal: assemble the whole clip, then sample it."""
    clip = assemble(row, combo)
    return clip[clip_indices([p[3] for p in _view_parts(row, combo)], frames, rng, sampling)]
