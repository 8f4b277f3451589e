"""The paper's figures (Qiu, Huang et al., CMRformer / CMR-CLIP, arXiv:2304.07675), read from
the one data file that holds them, `cmr_ray/paper_results.yaml`.

    from cmr_ray import paper
    paper.rsum("CINE_sax", 8)             # 126.2; None where the paper has no such row
    paper.table4_rows()                   # [("Zero-shot", 16, 4.6), ("CINE_sax", 8, 126.2), ...]
    paper.trained_rows()                  # Table 4's ten trained rows: [("CINE_sax", 8), ...]
    paper.probe("acdc", "simclr")         # {"views": "CINE_sax", "frames": 8, "acc": 0.42, ...}

Row names are `cmr_ray.views.PAPER_NAMES` keys, plus "Zero-shot" for the untrained tower.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import yaml

ZEROSHOT = "Zero-shot"
SIMCLR = "SimCLR"


@lru_cache(maxsize=1)
def load() -> dict:
    """The whole data file (cached; treat it as read-only)."""
    text = resources.files("cmr_ray").joinpath("paper_results.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def citation() -> str:
    return load()["citation"]


def table4_rows() -> list[tuple[str, int, float]]:
    """Table 4 as (name, frames, RSUM), in the paper's row order, Zero-shot first."""
    return [(r["views"], int(r["frames"]), float(r["rsum"])) for r in load()["table4"]]


def trained_rows() -> list[tuple[str, int]]:
    """Table 4's trained rows (all but Zero-shot) as (name, frames), in the paper's order."""
    return [(n, f) for n, f, _ in table4_rows() if n != ZEROSHOT]


def rsum(name: str, frames: int | str) -> float | None:
    """The paper's Table 4 RSUM for a row name and frame count, or None."""
    try:
        frames = int(frames)
    except (TypeError, ValueError):
        return None
    for n, f, v in table4_rows():
        if n == name and f == frames:
            return v
    return None


def probe(label: str, method: str) -> dict | None:
    """Table 5's figures for a label (nicm, icm, amyl, hcm, acdc) and a method (zeroshot,
    simclr, trained), or None where the paper gives none."""
    return load()["table5"].get(label, {}).get(method)
