"""Clip assembly and frame sampling (pure numpy).

Assembly follows the paper's Figure 4: cine views contribute the phases of their middle
slice (cine over time), LGE SAX contributes its slices (over depth), a single LGE long-axis
slice is repeated to the LGE SAX depth; views are concatenated along the frame axis in the
combo's order.  Sampling follows shared/DESIGN.md: split the clip into `frames` equal
segments; a random frame per segment when training, the segment midpoint when evaluating.
"""
from __future__ import annotations

import numpy as np

from cmr_ray.data.schema import decode_view
from cmr_ray.views import parse_combo


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


def make_clip(row: dict, combo: str, frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
    clip = assemble(row, combo)
    return clip[sample_indices(len(clip), frames, rng)]
