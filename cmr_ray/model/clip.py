"""The CLIP-style model: video tower + text tower, projected to one L2-normalised space.

    model = build_model(cfg)                       # cfg from cmr_ray.config.load_config
    v = model.encode_video(x)                      # x float [B, F, H, W] in [0, 1] -> [B, D]
    t = model.encode_text(["Normal study.", ...])  # -> [B, D]
    v, t, logit_scale = model(x, texts)            # what the training step calls (DDP-friendly)

Freezing a tower (`model.freeze_text`, `model.freeze_video`) stops its gradients and keeps
it in eval mode; its projection still trains.  A text tower that trains (`freeze_text`
false, the paper preset) is run on every batch and never touches the feature cache.  With a frozen text tower the pooled
features of each distinct impression are computed once and cached (reports repeat across
epochs; this saves most of the text cost), in memory and on disk
(`cmr_ray.model.textcache`: every trial of a sweep, evaluation and the baselines share
it).  The cache is not part of the state dict.

Projection heads (`model.head`): 'linear' is one bias-free Linear to `embed_dim`;
'relu_linear' is ReLU then Linear with bias, the authors' heads (Makiya11/CMRCLIP, after
Frozen-in-Time).  `model.video_init` starts the video tower from a ViT or TimeSformer
checkpoint (`cmr_ray.model.vit_init`).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from cmr_ray.model.loss import MAX_LOGIT_SCALE
from cmr_ray.model.sizes import video_sizes
from cmr_ray.model.text import TextTower
from cmr_ray.model.video import FrameMeanTower, TimesformerTower

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cmr_ray.config import Config


class CMRClip(nn.Module):
    def __init__(self, video: nn.Module, text: TextTower, embed_dim: int = 128, temperature: float = 0.05,
                 learn_temperature: bool = False, freeze_text: bool = True, freeze_video: bool = False,
                 head: str = "linear"):
        super().__init__()
        self.video = video
        self.text = text
        self.video_proj = projection_head(head, video.dim, embed_dim)
        self.text_proj = projection_head(head, text.dim, embed_dim)
        init = torch.tensor(math.log(1.0 / temperature), dtype=torch.float32)
        if learn_temperature:
            self.log_scale = nn.Parameter(init)
        else:
            self.register_buffer("log_scale", init)
        self.freeze_text, self.freeze_video = freeze_text, freeze_video
        for tower, frozen in ((self.text, freeze_text), (self.video, freeze_video)):
            for p in tower.parameters():
                p.requires_grad_(not frozen)
        self._text_cache: dict[str, torch.Tensor] = {}
        self._disk_cache = False  # opened on first use (hashing the encoder costs ~0.2 s)
        self.train()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_text:
            self.text.eval()
        if self.freeze_video:
            self.video.eval()
        return self

    def logit_scale(self) -> torch.Tensor:
        return self.log_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    @torch.no_grad()
    def clamp_logit_scale_(self) -> None:
        """After an optimizer step: keep the learnable scale at or below 100 (as open_clip does)."""
        self.log_scale.clamp_(max=math.log(MAX_LOGIT_SCALE))

    def video_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.freeze_video:
            with torch.no_grad():
                return self.video(x)
        return self.video(x)

    def text_features(self, texts: list[str]) -> torch.Tensor:
        if not self.freeze_text:
            return self.text(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self._text_cache))
        if missing and self._disk_cache is False:
            from cmr_ray.model.textcache import TextFeatureCache

            self._disk_cache = TextFeatureCache.for_tower(self.text)
        if missing and self._disk_cache is not None:
            self._text_cache.update(self._disk_cache.get(missing))
            missing = [t for t in missing if t not in self._text_cache]
        if missing:
            with torch.no_grad():
                for i in range(0, len(missing), 256):
                    chunk = missing[i:i + 256]
                    feats = self.text(chunk).float().cpu()
                    self._text_cache.update(zip(chunk, feats))
                    if self._disk_cache is not None:
                        self._disk_cache.put(dict(zip(chunk, feats)))
        return torch.stack([self._text_cache[t] for t in texts]).to(self.log_scale.device)

    def encode_video(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.video_proj(self.video_features(x)), dim=-1)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        feats = self.text_features(texts)
        return F.normalize(self.text_proj(feats.to(self.log_scale.dtype)), dim=-1)

    def forward(self, video: torch.Tensor, texts: list[str]):
        return self.encode_video(video), self.encode_text(texts), self.logit_scale()

    def trainable_state_dict(self) -> dict:
        """The state dict without a frozen text encoder's weights (rebuilt from model.text_model)."""
        sd = self.state_dict()
        if self.freeze_text:
            sd = {k: v for k, v in sd.items() if not k.startswith("text.")}
        return sd

    def load_trainable_state_dict(self, sd: dict) -> None:
        missing, unexpected = self.load_state_dict(sd, strict=False)
        missing = [k for k in missing if not (self.freeze_text and k.startswith("text."))]
        if missing or unexpected:
            raise ValueError(f"checkpoint does not match the model: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}")


HEADS = ("linear", "relu_linear")


def projection_head(kind: str, dim: int, embed_dim: int) -> nn.Module:
    """'linear': Linear without bias (state-dict key `weight`); 'relu_linear': ReLU then Linear
    with bias (keys `1.weight`, `1.bias`), as the authors' code."""
    if kind == "linear":
        return nn.Linear(dim, embed_dim, bias=False)
    if kind == "relu_linear":
        return nn.Sequential(nn.ReLU(), nn.Linear(dim, embed_dim, bias=True))
    raise ValueError(f"model.head: expected one of {HEADS}, got {kind!r}")


def build_video_tower(cfg: Config, init: bool = True) -> nn.Module:
    """The configured video tower; with `init` and `model.video_init` set, its weights come
    from that checkpoint (`init=False`: random, e.g. when a checkpoint of ours is loaded next)."""
    sizes = video_sizes(cfg)
    kind = cfg.model.video
    common = dict(image_size=sizes["image_size"], patch_size=sizes["patch_size"],
                  hidden_size=sizes["hidden_size"], layers=sizes["layers"], heads=sizes["heads"],
                  pool=cfg.model.pool, input_norm=cfg.model.input_norm, temporal_init=cfg.model.temporal_init,
                  grad_checkpointing=cfg.model.grad_checkpointing)
    if kind == "framemean":
        tower = FrameMeanTower(**common)
    elif kind == "timesformer":
        tower = TimesformerTower(max_frames=sizes["max_frames"], **common)
    else:
        raise ValueError(f"model.video: expected 'timesformer' or 'framemean', got {kind!r}")
    if init and cfg.model.video_init:
        from cmr_ray.model.vit_init import load_video_init

        load_video_init(tower, cfg.model.video_init)
    return tower


def build_model(cfg: Config, video_init: bool = True) -> CMRClip:
    """The model an experiment config describes (weights: video from `model.video_init` or
    random, text pretrained).  `video_init=False` skips reading the video checkpoint (for a
    model whose weights are loaded from one of our checkpoints right after)."""
    m = cfg.model
    text = TextTower(m.text_model, max_length=m.text_max_length)
    return CMRClip(build_video_tower(cfg, init=video_init), text, embed_dim=m.embed_dim,
                   temperature=m.temperature, learn_temperature=m.learn_temperature,
                   freeze_text=m.freeze_text, freeze_video=m.freeze_video,
                   head=m.head)
