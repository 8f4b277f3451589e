"""A montage of one study: every recognised cine/LGE series, labelled with sequence/view.

    from cmr_ray.viz.montage import show_study
    n = show_study("cohort/dicom/study-0003", "study.png", size=128, phases=12)

One row per series (cine first, then LGE, each in sax, 2ch, 3ch, 4ch order): cine as a
strip of phases of the middle slice, LGE as its slices.  Series the classifier calls
`other` are listed under the picture, not drawn.  Decoding uses the same functions as
`prepare` (`order_series`, `load_grid`, `to_uint8`), so what you see is what is stored.
"""
from __future__ import annotations

import numpy as np

from cmr_ray.views import SEQUENCES, VIEWS


def _strip(vol: np.ndarray, seq: str, n: int) -> np.ndarray:
    """[S, T, H, W] uint8 -> [H, k*W]: cine phases of the middle slice, or LGE slices."""
    frames = vol[vol.shape[0] // 2] if seq == "cine" else vol[:, 0]
    if len(frames) > n:
        frames = frames[np.linspace(0, len(frames) - 1, n).round().astype(int)]
    return np.concatenate(list(frames), axis=1)


def study_strips(study_dir, size: int = 128, phases: int = 12):
    """([(label, strip)], [skipped labels]) for a study folder."""
    from cmr_ray.data.index import index_local, list_input_files
    from cmr_ray.dicom.classify import classify_study
    from cmr_ray.dicom.order import order_series
    from cmr_ray.dicom.pixels import load_grid, to_uint8
    from cmr_ray.dicom.series import group_series
    from cmr_ray.dicom.stacks import merge_split_stacks

    idx = index_local(study_dir, list_input_files(study_dir))
    series = group_series([r["header"] for r in idx if r["header"] is not None])
    series, classes, _ = merge_split_stacks(series, classify_study(series))
    shown, skipped = [], []
    for s, c in zip(series, classes):
        label = f"{c.sequence}/{c.view}  {s.description or '(no description)'}  #{s.series_number}"
        if c.sequence not in SEQUENCES or c.view not in VIEWS:
            skipped.append(f"{label}: {c.rule}")
            continue
        try:
            vol = to_uint8(load_grid(order_series(s)), size, (1.0, 99.0))
        except Exception as e:  # show what can be shown; say why the rest is missing
            skipped.append(f"{label}: {getattr(e, 'reason', e)}")
            continue
        rank = (SEQUENCES.index(c.sequence), VIEWS.index(c.view), s.series_number or 0)
        what = "phases of the middle slice" if c.sequence == "cine" else "slices"
        shown.append((rank, f"{label}  [{vol.shape[0]} slices x {vol.shape[1]} phases; showing {what}]",
                      _strip(vol, c.sequence, phases)))
    shown.sort(key=lambda t: t[0])
    return [(label, strip) for _, label, strip in shown], skipped


def show_study(study_dir, out, size: int = 128, phases: int = 12) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strips, skipped = study_strips(study_dir, size, phases)
    if not strips:
        return 0
    width = max(s.shape[1] for _, s in strips)
    inch = 1.6  # per tile
    fig, axes = plt.subplots(len(strips), 1, squeeze=False,
                             figsize=(inch * width / size, inch * 1.22 * len(strips) + 0.25 * len(skipped) + 0.4))
    for ax, (label, strip) in zip(axes[:, 0], strips):
        canvas = np.full((strip.shape[0], width), np.nan, np.float32)  # unfilled: background
        canvas[:, : strip.shape[1]] = strip
        cmap = plt.get_cmap("gray").with_extremes(bad="white")
        ax.imshow(canvas, cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(label, loc="left", fontsize=9)
        ax.set_axis_off()
    if skipped:
        fig.text(0.01, 0.005, "not shown:\n" + "\n".join(skipped[:12]), fontsize=7, va="bottom", family="monospace")
    fig.tight_layout(rect=(0, 0.25 * len(skipped[:12]) / fig.get_size_inches()[1] if skipped else 0, 1, 1))
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return len(strips)
