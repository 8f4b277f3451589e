"""Start the video tower from image-pretrained (ViT) or video-pretrained (TimeSformer) weights.

    from cmr_ray.model.vit_init import load_video_init
    copied = load_video_init(tower, "google/vit-base-patch16-224")   # or a local directory
    # tower: a TimesformerTower or FrameMeanTower; copied: the tower's parameter names filled

`model.video_init` names a Hugging Face checkpoint (looked up in the local cache only) or a
local directory.  Nothing is downloaded at run time (`local_files_only=True`,
HF_HUB_OFFLINE=1): a checkpoint that is not on this machine, of another kind, or of other
sizes than the tower is one `VideoInitError` line saying which and why.

What comes from a ViT (`model_type: vit`, e.g. ViTModel or ViTForImageClassification):
- patch embedding: its 3-channel kernel summed over the channels.  Our clips are greyscale
  (one channel); a grey image copied to three channels gives exactly the summed kernel's
  response, which is what the authors' code does (grey copied to RGB).  Their ImageNet
  per-channel normalisation is replaced by our per-clip standardisation
  (`model.input_norm`), which gives the kernel inputs of the same (unit) scale;
- CLS token, and the position embeddings with the patch grid resized bicubically to ours
  (e.g. a 224 px checkpoint on 256 px clips);
- every layer's spatial attention (query, key and value fused into `qkv`), its output
  projection, both layer norms and the MLP; the final layer norm.

What starts so that the pretrained image model is unchanged at step 0 (TimeSformer's and
Frozen-in-Time's recipe):
- temporal attention is the identity: its output projection `temporal_dense` is zero
  (weight and bias), so the temporal branch adds nothing and the residual passes every
  token through untouched.  Its attention weights and layer norm are copies of the
  spatial ones, so once `temporal_dense` moves away from zero (it gets gradients from the
  first step: its input is non-zero) the branch starts from a sensible attention rather
  than noise;
- temporal position embeddings are zero (no frame is told apart at step 0; they learn).

From a TimeSformer (`model_type: timesformer`) every weight is copied; its patch embedding is
summed over channels when it has three, its spatial position embeddings are resized to our
grid and its temporal ones linearly to our `max_frames`.

Widths, depth, heads, MLP size and patch size must equal the tower's (the paper's tower,
`model.size: vit_b16`, is ViT-B/16: hidden 768, 12 layers, 12 heads, patch 16, MLP 3072).  The layer norms
take the checkpoint's epsilon.  The pooler and classifier of the checkpoint are not used.
"""
from __future__ import annotations

import os

import torch
from torch.nn import functional as F


class VideoInitError(RuntimeError):
    """The configured video_init checkpoint cannot be used (one line: which, why, what to do)."""


def _say(name: str, why: str) -> VideoInitError:
    return VideoInitError(f"model.video_init {name!r}: {why}")


def _quiet_hf():
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    def restore():
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()

    return restore


def _not_here(name: str, e: Exception) -> VideoInitError:
    why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return _say(name, f"not available on this machine ({why[:200]}); nothing is downloaded at run time: "
                      "give a local checkpoint directory, or fill the Hugging Face cache first on a machine "
                      f"with hub access (hf download {name})")


def _from_local(auto, name: str):
    """`auto.from_pretrained` (AutoConfig or AutoModel) from local files only, quietly; an
    absent or unreadable checkpoint is one VideoInitError."""
    restore = _quiet_hf()
    try:
        return auto.from_pretrained(os.path.expanduser(name), local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise _not_here(name, e) from None
    finally:
        restore()


def check_video_init(name: str):
    """The checkpoint's config (cheap: no weights read); raises VideoInitError if it is absent
    or not a ViT/TimeSformer.  What a driver calls before starting workers."""
    from transformers import AutoConfig

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    conf = _from_local(AutoConfig, name)
    if conf.model_type not in ("vit", "timesformer"):
        raise _say(name, f"is a {conf.model_type!r} checkpoint; expected a ViT ('vit') or TimeSformer ('timesformer')")
    return conf


def read_checkpoint(name: str) -> tuple[object, dict[str, torch.Tensor]]:
    """(config, state dict of the base model: ViTModel or TimesformerModel names) from the
    local cache or directory; never downloads."""
    from transformers import AutoModel

    conf = check_video_init(name)
    model = _from_local(AutoModel, name)
    return conf, {k: v.detach().float() for k, v in model.state_dict().items()}


def resize_grid(pos: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Position embeddings [1, 1 + g0*g0, D] (CLS first) to [1, 1 + gh*gw, D], bicubic."""
    cls, body = pos[:, :1], pos[:, 1:]
    g0 = int(round(body.shape[1] ** 0.5))
    if g0 * g0 != body.shape[1]:
        raise ValueError(f"position embeddings of {body.shape[1]} patches are not a square grid")
    if (g0, g0) != tuple(grid):
        img = body.reshape(1, g0, g0, -1).permute(0, 3, 1, 2)
        img = F.interpolate(img, size=tuple(grid), mode="bicubic", align_corners=False)
        body = img.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], -1)
    return torch.cat([cls, body], dim=1)


def _grey_kernel(w: torch.Tensor) -> torch.Tensor:
    """Conv kernel [D, C, p, p] -> [D, 1, p, p]: a grey image copied to C channels."""
    return w.sum(dim=1, keepdim=True)


def _check_sizes(name: str, conf, tcfg) -> None:
    want = {"hidden_size": tcfg.hidden_size, "num_hidden_layers": tcfg.num_hidden_layers,
            "num_attention_heads": tcfg.num_attention_heads, "intermediate_size": tcfg.intermediate_size,
            "patch_size": tcfg.patch_size}
    bad = [f"{k} {getattr(conf, k, None)} (the tower has {v})" for k, v in want.items()
           if getattr(conf, k, None) != v]
    if bad:
        raise _say(name, "does not fit the video tower: " + ", ".join(bad)
                   + "; set model.size/hidden_size/layers/heads/patch_size to the checkpoint's")


# A ViT's per-layer weights under the two namings transformers has used: 4.x (and the
# checkpoints on the hub) and 5.x (which renames them on load).
_VIT_NAMES = {
    "q": ("encoder.layer.{i}.attention.attention.query", "layers.{i}.attention.q_proj"),
    "k": ("encoder.layer.{i}.attention.attention.key", "layers.{i}.attention.k_proj"),
    "v": ("encoder.layer.{i}.attention.attention.value", "layers.{i}.attention.v_proj"),
    "attention.output.dense": ("encoder.layer.{i}.attention.output.dense", "layers.{i}.attention.o_proj"),
    "layernorm_before": ("encoder.layer.{i}.layernorm_before", "layers.{i}.layernorm_before"),
    "layernorm_after": ("encoder.layer.{i}.layernorm_after", "layers.{i}.layernorm_after"),
    "intermediate.dense": ("encoder.layer.{i}.intermediate.dense", "layers.{i}.mlp.fc1"),
    "output.dense": ("encoder.layer.{i}.output.dense", "layers.{i}.mlp.fc2"),
}


def vit_weight(sd: dict, i: int, part: str, p: str, default=None) -> torch.Tensor:
    """Layer i's `part` ('q', 'k', 'v' or a TimeSformer module name) `p` ('weight'/'bias')."""
    for pattern in _VIT_NAMES[part]:
        key = pattern.format(i=i) + "." + p
        if key in sd:
            return sd[key]
    if default is not None:
        return default
    raise KeyError(_VIT_NAMES[part][0].format(i=i) + "." + p)


def _from_vit(sd: dict, target: dict, grid, temporal: bool) -> dict:
    out = {"embeddings.cls_token": sd["embeddings.cls_token"],
           "embeddings.position_embeddings": resize_grid(sd["embeddings.position_embeddings"], grid),
           "embeddings.patch_embeddings.projection.weight":
               _grey_kernel(sd["embeddings.patch_embeddings.projection.weight"]),
           "embeddings.patch_embeddings.projection.bias": sd["embeddings.patch_embeddings.projection.bias"],
           "layernorm.weight": sd["layernorm.weight"], "layernorm.bias": sd["layernorm.bias"]}
    if "embeddings.time_embeddings" in target:
        out["embeddings.time_embeddings"] = torch.zeros_like(target["embeddings.time_embeddings"])
    layers = {int(k.split(".")[2]) for k in target if k.startswith("encoder.layer.")}
    for i in sorted(layers):
        dst = f"encoder.layer.{i}."
        d = target[dst + "attention.attention.qkv.weight"].shape[1]
        spatial = {"attention.attention.qkv.weight": torch.cat([vit_weight(sd, i, n, "weight") for n in "qkv"])}
        if dst + "attention.attention.qkv.bias" in target:  # a checkpoint without qkv bias: zeros
            spatial["attention.attention.qkv.bias"] = torch.cat(
                [vit_weight(sd, i, n, "bias", torch.zeros(d)) for n in "qkv"])
        for p in ("weight", "bias"):
            spatial[f"attention.output.dense.{p}"] = vit_weight(sd, i, "attention.output.dense", p)
        out.update({dst + k: v for k, v in spatial.items()})
        for k in ("layernorm_before", "layernorm_after", "intermediate.dense", "output.dense"):
            for p in ("weight", "bias"):
                out[f"{dst}{k}.{p}"] = vit_weight(sd, i, k, p)
        if temporal:
            # temporal attention: a copy of the spatial one ...
            out.update({dst + "temporal_" + k: v for k, v in spatial.items()})
            for p in ("weight", "bias"):
                out[f"{dst}temporal_layernorm.{p}"] = out[f"{dst}layernorm_before.{p}"]
                # ... whose output projection is zero: the branch adds nothing, the residual passes
                out[f"{dst}temporal_dense.{p}"] = torch.zeros_like(target[f"{dst}temporal_dense.{p}"])
    return out


def _from_timesformer(sd: dict, target: dict, grid) -> dict:
    out = {}
    for k, v in sd.items():
        if k not in target:
            continue  # e.g. temporal weights of a divided checkpoint into a space-only tower
        if k == "embeddings.patch_embeddings.projection.weight" and v.shape[1] != 1:
            v = _grey_kernel(v)
        elif k == "embeddings.position_embeddings":
            v = resize_grid(v, grid)
        elif k == "embeddings.time_embeddings" and v.shape[1] != target[k].shape[1]:
            v = F.interpolate(v.transpose(1, 2), size=target[k].shape[1], mode="linear",
                              align_corners=True).transpose(1, 2)
        out[k] = v
    return out


def load_video_init(tower, name: str) -> list[str]:
    """Copy a ViT or TimeSformer checkpoint into `tower` (in place); returns the names (in the
    backbone's state dict) that were filled.  Raises VideoInitError for a missing or
    mismatched checkpoint."""
    inner = getattr(tower, "frame", tower)  # FrameMeanTower wraps a space-only TimesformerTower
    backbone = inner.backbone
    tcfg = backbone.config
    conf, sd = read_checkpoint(name)
    _check_sizes(name, conf, tcfg)
    target = backbone.state_dict()
    n = target["embeddings.position_embeddings"].shape[1] - 1
    g = int(round(n ** 0.5))
    temporal = tcfg.attention_type == "divided_space_time"
    try:
        new = (_from_vit(sd, target, (g, g), temporal) if conf.model_type == "vit"
               else _from_timesformer(sd, target, (g, g)))
    except KeyError as e:
        raise _say(name, f"has no weight {e.args[0]!r}; is it a complete {conf.model_type} checkpoint?") from None
    for k, v in new.items():
        if k not in target:
            raise _say(name, f"maps to {k!r}, which the video tower does not have")
        if tuple(v.shape) != tuple(target[k].shape):
            raise _say(name, f"{k}: shape {tuple(v.shape)} does not fit the tower's {tuple(target[k].shape)}")
    missing = sorted(set(target) - set(new))
    if missing:
        raise _say(name, f"leaves {len(missing)} tower weights unset (first: {missing[0]})")
    backbone.load_state_dict({k: v.to(target[k].dtype) for k, v in new.items()}, strict=True)
    eps = float(getattr(conf, "layer_norm_eps", tcfg.layer_norm_eps))
    tcfg.layer_norm_eps = eps  # the norms as the checkpoint was trained with (ViT: 1e-12)
    for m in backbone.modules():
        if isinstance(m, torch.nn.LayerNorm):
            m.eps = eps
    return sorted(new)
