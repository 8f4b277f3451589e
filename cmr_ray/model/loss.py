"""Symmetric InfoNCE with global negatives: the CLIP loss.

    loss_fn = ClipLoss(mask_duplicates=True)
    loss = loss_fn(video_emb, text_emb, logit_scale, impression_ids)   # embeddings L2-normalised

Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
Supervision" (CLIP), eq. in Fig. 3; van den Oord et al. 2018 (InfoNCE).  Shaped like
open_clip's `ClipLoss` with `local_loss=True, gather_with_grad=True`: under
torch.distributed each worker gathers every worker's embeddings *with gradients*
(`torch.distributed.nn.functional.all_gather`; plain `dist.all_gather` cuts the graph),
scores its own B rows against all N·B columns, and averages the video->text and
text->video cross-entropies.  With DDP averaging the gradients over the N workers, that is
exactly the gradient of the loss of one batch of N·B (tested against one process).

`gather=False` scores a process's batch alone (validation on one worker).
`mask_duplicates`: pairs whose impressions are identical after normalisation
(`cmr_ray.model.text.impression_id`) are not counted as negatives (their logits are set to
-inf); the true pair always stays.  The logit scale is 1/temperature, clamped at 100.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

MAX_LOGIT_SCALE = 100.0


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate `x` from every worker along dim 0, keeping gradients (identity alone)."""
    world, _ = _world()
    if world == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()), dim=0)


def gather_ids(ids: torch.Tensor) -> torch.Tensor:
    world, _ = _world()
    if world == 1:
        return ids
    out = [torch.empty_like(ids) for _ in range(world)]
    dist.all_gather(out, ids.contiguous())
    return torch.cat(out, dim=0)


class ClipLoss(nn.Module):
    def __init__(self, mask_duplicates: bool = False, gather: bool = True):
        super().__init__()
        self.mask_duplicates = mask_duplicates
        self.gather = gather  # False: this process's batch only, even under torch.distributed

    def forward(self, video: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor | float,
                impression_ids: torch.Tensor | None = None) -> torch.Tensor:
        if video.shape != text.shape or video.ndim != 2:
            raise ValueError(f"ClipLoss: expected video and text [B, D] of one shape, got "
                             f"{tuple(video.shape)} and {tuple(text.shape)}")
        video, text = video.float(), text.float()
        world, rank = _world() if self.gather else (1, 0)
        n = video.shape[0]
        if world > 1:
            all_video, all_text = gather_with_grad(video), gather_with_grad(text)
        else:
            all_video, all_text = video, text
        labels = torch.arange(n, device=video.device) + rank * n
        scale = torch.as_tensor(logit_scale, dtype=torch.float32, device=video.device).clamp(max=MAX_LOGIT_SCALE)
        logits_v = scale * video @ all_text.T  # [B, N*B]: video i against every text
        logits_t = scale * text @ all_video.T
        if self.mask_duplicates:
            if impression_ids is None:
                raise ValueError("ClipLoss(mask_duplicates=True) needs impression_ids")
            ids = impression_ids.to(video.device)
            all_ids = gather_ids(ids) if world > 1 else ids
            same = ids[:, None] == all_ids[None, :]
            same[torch.arange(n, device=video.device), labels] = False  # keep the true pair
            logits_v = logits_v.masked_fill(same, float("-inf"))
            logits_t = logits_t.masked_fill(same, float("-inf"))
        return (F.cross_entropy(logits_v, labels) + F.cross_entropy(logits_t, labels)) / 2
