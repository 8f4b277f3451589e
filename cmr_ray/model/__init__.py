"""Model and loss: video tower (TimeSformer or frame-mean), text tower (HF encoder), CLIP loss.

    from cmr_ray.model import build_model, ClipLoss, contrastive_step
    model = build_model(cfg)
    v, t, scale = model(x, texts)               # x float [B, F, H, W] in [0, 1]
    loss = ClipLoss(mask_duplicates=True)(v, t, scale, impression_ids)

Imports torch and transformers (lazily: `cmr_ray.model.ids` stays pure Python for the
data tasks); knows nothing of Ray, MLflow or DICOM.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "contrastive_step": "accum", "cpu_has_bf16": "accum", "precision_autocast": "accum",
    "precision_warning": "accum",
    "CMRClip": "clip", "build_model": "clip", "build_video_tower": "clip",
    "MAX_LOGIT_SCALE": "loss", "ClipLoss": "loss",
    "PAPER_TEXT_MODEL": "sizes", "PAPER_VIDEO": "sizes", "video_sizes": "sizes",
    "TextModelError": "text", "TextTower": "text",
    "impression_id": "ids", "normalize_impression": "ids",
    "FrameMeanTower": "video", "TimesformerTower": "video",
    "VideoInitError": "vit_init", "load_video_init": "vit_init",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"cmr_ray.model.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'cmr_ray.model' has no attribute {name!r}")
