"""Video towers: a divided space-time attention transformer, and a frame-mean baseline.

    tower = TimesformerTower(image_size=64, patch_size=16, hidden_size=128, layers=2,
                             heads=4, max_frames=8)
    feats = tower(x)          # x: float [B, F, H, W] greyscale in [0, 1], any F in 1..64 -> [B, 128]
    base = FrameMeanTower(...)  # same ViT on each frame alone (space-only), frames averaged

Both are built from transformers' `TimesformerConfig`/`TimesformerModel` (Bertasius et al.
2021, "Is Space-Time Attention All You Need for Video Understanding?") with one input
channel.  The embedding step is our own so that any frame count and image size work:
transformers' `TimesformerEmbeddings` resizes the temporal embedding with *nearest*
interpolation and its layers read the frame count from the config, so a clip whose frame
count differs from the config would be mis-reshaped.  Here the temporal embedding is
linearly interpolated to the clip's F, the spatial one bicubically to its patch grid, and
the encoder layers are told the clip's F and width before each call.  With
`input_norm="clip"` (the config's default, `model.input_norm`) each clip is first
standardised (`standardise`): raw grey levels left the untrained embeddings nearly identical
and contrastive training on a plateau at ln(batch).  The frame-mean tower
follows EchoCLIP: each frame is encoded alone and the frame vectors are averaged.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint
from transformers import TimesformerConfig, TimesformerModel

MAX_FRAMES = 64
INPUT_NORMS = ("clip", "none")
TEMPORAL_INITS = ("random", "zero")


def standardise(x: torch.Tensor, norm: str = "clip") -> torch.Tensor:
    """Each clip of [B, F, H, W] to zero mean and unit variance over its frames and pixels.

    Why: a CMR frame in [0, 1] is mostly dark background, so at initialisation the patch
    embeddings are small beside the position embeddings and the CLS token, and every clip
    gets almost the same embedding (measured on the small preset: the spread of the
    untrained tower's L2-normalised embeddings was 0.08 raw against 0.28 standardised, and
    raw cine-only training sat at ln(batch) for 60 steps while standardised clips left it by
    step 30).  It also removes the scanner's global gain, which carries no diagnosis."""
    if norm == "none":
        return x
    if norm != "clip":
        raise ValueError(f"model.input_norm: expected one of {INPUT_NORMS}, got {norm!r}")
    dims = tuple(range(1, x.ndim))
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True)
    return (x - mean) / (std + 1e-3)


class TimesformerTower(nn.Module):
    """TimeSformer over greyscale clips, pooled to one vector (`pool`: 'cls' or 'mean')."""

    def __init__(self, image_size: int, patch_size: int, hidden_size: int, layers: int, heads: int,
                 max_frames: int = 8, pool: str = "cls", grad_checkpointing: bool = False,
                 attention_type: str = "divided_space_time", input_norm: str = "none",
                 temporal_init: str = "random"):
        super().__init__()
        if hidden_size % heads:
            raise ValueError(f"model.hidden_size {hidden_size} is not divisible by model.heads {heads}")
        if image_size % patch_size:
            raise ValueError(f"data.image_size {image_size} is not a multiple of model.patch_size {patch_size}")
        if pool not in ("cls", "mean"):
            raise ValueError(f"pool: expected 'cls' or 'mean', got {pool!r}")
        config = TimesformerConfig(
            image_size=image_size, patch_size=patch_size, num_channels=1, num_frames=max_frames,
            hidden_size=hidden_size, num_hidden_layers=layers, num_attention_heads=heads,
            intermediate_size=4 * hidden_size, attention_type=attention_type,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, drop_path_rate=0,
        )
        self.backbone = TimesformerModel(config)
        if attention_type != "space_only":  # transformers leaves it at zero
            nn.init.trunc_normal_(self.backbone.embeddings.time_embeddings, std=config.initializer_range)
        if temporal_init not in TEMPORAL_INITS:
            raise ValueError(f"model.temporal_init: expected one of {TEMPORAL_INITS}, got {temporal_init!r}")
        if temporal_init == "zero" and attention_type == "divided_space_time":
            for layer in self.backbone.encoder.layer:  # the temporal branch adds nothing at step 0
                nn.init.zeros_(layer.temporal_dense.weight)
                nn.init.zeros_(layer.temporal_dense.bias)
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"model.input_norm: expected one of {INPUT_NORMS}, got {input_norm!r}")
        self.input_norm = input_norm
        self.patch_size = patch_size
        self.pool = pool
        self.grad_checkpointing = grad_checkpointing
        self.dim = hidden_size

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        """[B, F, H, W] -> tokens [B, 1 + (h*w)*F, D], patch-major as the encoder layers expect."""
        emb = self.backbone.embeddings
        b, f, hgt, wid = x.shape
        tok = emb.patch_embeddings.projection(x.reshape(b * f, 1, hgt, wid))  # [B*F, D, h, w]
        gh, gw = tok.shape[-2:]
        tok = tok.flatten(2).transpose(1, 2)  # [B*F, h*w, D]
        pos = emb.position_embeddings
        cls_pos, grid_pos = pos[:, :1], pos[:, 1:]
        if grid_pos.shape[1] != gh * gw:  # another image size: resize the spatial grid
            g0 = int(round(grid_pos.shape[1] ** 0.5))
            grid = grid_pos.reshape(1, g0, g0, -1).permute(0, 3, 1, 2)
            grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
            grid_pos = grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)
        tok = emb.pos_drop(tok + grid_pos)
        cls = (emb.cls_token + cls_pos).expand(b, -1, -1)
        d = tok.shape[-1]
        tok = tok.reshape(b, f, gh * gw, d)
        if self.backbone.config.attention_type != "space_only":
            time = emb.time_embeddings  # [1, T0, D]
            if time.shape[1] != f:
                time = F.interpolate(time.transpose(1, 2), size=f, mode="linear", align_corners=True)
                time = time.transpose(1, 2)
            tok = emb.time_drop(tok + time[:, :, None, :])
        tok = tok.permute(0, 2, 1, 3).reshape(b, gh * gw * f, d)  # patch-major, frame-minor
        return torch.cat([cls, tok], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"video: expected [B, F, H, W], got shape {tuple(x.shape)}")
        b, f, hgt, wid = x.shape
        if not 1 <= f <= MAX_FRAMES:
            raise ValueError(f"video: expected 1..{MAX_FRAMES} frames, got {f}")
        if hgt % self.patch_size or wid % self.patch_size:
            raise ValueError(f"video: frame size {hgt}x{wid} is not a multiple of patch size {self.patch_size}")
        h = self._embed(standardise(x, self.input_norm))
        cfg = self.backbone.config  # the layers read frame count and width from it at call time
        cfg.num_frames, cfg.image_size = f, wid
        for layer in self.backbone.encoder.layer:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                h = checkpoint(_run_layer, layer, h, f, wid, use_reentrant=False)
            else:
                h = layer(h)[0]
        h = self.backbone.layernorm(h)
        return h[:, 0] if self.pool == "cls" else h[:, 1:].mean(dim=1)


def _run_layer(layer, h, frames, width):
    layer.config.num_frames, layer.config.image_size = frames, width  # also right on recompute
    return layer(h)[0]


class FrameMeanTower(nn.Module):
    """EchoCLIP-style baseline: a ViT on each frame alone, frame vectors averaged."""

    def __init__(self, image_size: int, patch_size: int, hidden_size: int, layers: int, heads: int,
                 pool: str = "cls", grad_checkpointing: bool = False, input_norm: str = "none", **_):
        super().__init__()
        self.frame = TimesformerTower(image_size, patch_size, hidden_size, layers, heads, max_frames=1,
                                      pool=pool, grad_checkpointing=grad_checkpointing,
                                      attention_type="space_only")
        self.input_norm = input_norm
        self.dim = hidden_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"video: expected [B, F, H, W], got shape {tuple(x.shape)}")
        b, f, hgt, wid = x.shape
        x = standardise(x, self.input_norm)  # per clip, as the TimeSformer does
        per_frame = self.frame(x.reshape(b * f, 1, hgt, wid))
        return per_frame.reshape(b, f, -1).mean(dim=1)
