"""SimCLR baseline: the video tower pretrained image-only, same budget as CMR-CLIP.

    from cmr_ray.eval.simclr import train_simclr, nt_xent
    model = train_simclr(cfg, "store")          # a CMRClip whose video tower learnt SimCLR
    emb = embed_split(model, "store", cfg, "test")

Two views of each training clip — each with its own random frame per segment (training
sampling) and its own `cmr_ray.train.augment.augment_clip` transform (the augmentation
CMR-CLIP trains with; no left-right flip unless train.hflip) — are pulled together by the
NT-Xent loss (Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual
Representations"): each view's positive is the other view of its clip, the other 2B - 2
views of the batch are negatives.  The loss is on a projection head over `encode_video`
(`projection_head`: Linear-BN-ReLU-Linear, embed_dim wide, both views in one batch), which is
trained with the tower and then discarded, as Chen et al. (2020, section 4.2) do: in their
measurements the layer NT-Xent is computed on loses information a linear probe needs, and the
layer before the head keeps it.  Every method is probed on `encode_video`, so SimCLR's probe
reads the layer before its head.
The head's batch norm (`eval.simclr_head_bn`, as in Chen et al.'s code) is what lets it learn
here: without it, the 5a93339 `make run`'s SimCLR went 4.08, 4.03 and then sat at exactly
ln 63 from epoch 8, the fixed point of a head whose hidden ReLUs are all off (every view gets
the same output and no gradient flows; `tests/eval/test_tables_simclr.py`).  With it, on that
store and two others, the loss ended at 0.12-0.15 x ln 63 and the 5-class probe gained
+16.8 to +27.0 points over the untrained tower, against +7.7 (collapsed), +11.9 and -4.2
without it (README, "The SimCLR baseline").
Each view also gets its own Gaussian noise (`eval.simclr_noise` grey levels, 8 by default,
independent per pixel and frame), so the two views of a study share less that carries no
diagnosis (its own noise level and texture).  Measured before the batch norm (5-class probe,
minus the untrained tower's on the same split): without the head, noise 0 gave -7.4 to +14.8
on four stores and noise 8 +1.4 to +13.4 on five.  Stronger spatial augmentation (±20°,
±25% scale, ±12% shift) instead of the noise left the loss at ln(2B - 1).  What the head
without batch norm learned (README, "What the towers encode", `cmr_ray.eval.nuisance`): the
patient's subcutaneous fat above all, a constant that both views show and no augmentation
changes.  SimCLR's own remedy, the random resized crop (`eval.simclr_crop`, off by default),
learned at 0.7 on one store of three and sat at ln(2B - 1) on the other two within 300 steps,
also without the batch norm.
Same budget as the CLIP run: train.steps optimizer steps when that key is set and > 0,
else train.epochs passes over the train split; batch train.batch_size x train.workers,
AdamW at train.lr with linear warm-up and cosine decay over those steps.
A plain single-process torch loop (CPU, or the GPU when train.use_gpu and one exists).
"""
from __future__ import annotations

import math
import sys
import time

import numpy as np

from cmr_ray.config import Config
from cmr_ray.train.budget import budget_steps

DEFAULT_TEMPERATURE = 0.1


def nt_xent(z1, z2, temperature: float = DEFAULT_TEMPERATURE):
    """NT-Xent over two batches of views [B, D] (normalised here); mean over the 2B anchors."""
    import torch
    from torch.nn import functional as F

    z = F.normalize(torch.cat([z1, z2]), dim=-1)
    b = z1.shape[0]
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(logits, target)


def projection_head(dim: int, batch_norm: bool = False):
    """SimCLR's head g (Chen et al. 2020): Linear(dim, dim) - ReLU - Linear(dim, dim), used only in
    the loss and discarded after pretraining; `batch_norm` puts a BatchNorm1d before the ReLU."""
    from torch import nn

    norm = [nn.BatchNorm1d(dim)] if batch_norm else []
    return nn.Sequential(nn.Linear(dim, dim), *norm, nn.ReLU(), nn.Linear(dim, dim))


def add_noise(clip: np.ndarray, sd: float, rng: np.random.Generator) -> np.ndarray:
    """uint8 clip + Gaussian noise of `sd` grey levels, independent per pixel and frame (0: unchanged)."""
    if sd <= 0:
        return clip
    return np.clip(clip.astype(np.float32) + rng.normal(0.0, sd, clip.shape), 0, 255).astype(np.uint8)


def crop_params(rng: np.random.Generator, min_area: float) -> tuple[float, float, float]:
    """(zoom, centre y, centre x) of a square crop keeping an area fraction drawn from
    [min_area, 1], placed at random wholly inside the frame; the centre is a fraction of the size
    from the frame's centre."""
    zoom = 1.0 / math.sqrt(rng.uniform(min_area, 1.0))
    half = (1.0 - 1.0 / zoom) / 2
    cy, cx = rng.uniform(-half, half, size=2)
    return zoom, float(cy), float(cx)


def random_crop(clip: np.ndarray, min_area: float, rng: np.random.Generator) -> np.ndarray:
    """uint8 [F, H, W] -> the `crop_params` crop of every frame, resized back to [F, H, W]
    (bilinear, `cmr_ray.train.augment.warp`).  min_area >= 1: the clip itself, and no draw."""
    if min_area >= 1.0:
        return clip
    from cmr_ray.train.augment import warp

    zoom, cy, cx = crop_params(rng, min_area)
    return warp(clip, 0.0, zoom, -zoom * cy, -zoom * cx)  # warp samples at (o - centre - shift) / zoom + centre


def two_views(rows: list[dict], combo: str, frames: int, rng: np.random.Generator, hflip: bool = False,
              sampling: str = "uniform", noise: float = 0.0, crop: float = 1.0):
    """Two independently sampled and augmented clips per row: float32 [B, F, H, W] x 2 in [0, 1];
    each view is its own `random_crop(..., crop)`, then `augment_clip`, then `add_noise(..., noise)`."""
    from cmr_ray.data.clips import make_clip
    from cmr_ray.train.augment import augment_clip

    a, b = [], []
    for row in rows:
        for out in (a, b):
            clip = random_crop(make_clip(row, combo, frames, rng, sampling), crop, rng)
            out.append(add_noise(augment_clip(clip, rng, hflip=hflip), noise, rng))
    return np.stack(a).astype(np.float32) / 255.0, np.stack(b).astype(np.float32) / 255.0


def _schedule(total: int, warmup_fraction: float):
    warm = int(total * warmup_fraction)

    def f(step):
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
    return f


def candidates(batch: int) -> int:
    """Candidates per NT-Xent row for a batch of `batch` clips: the 2·batch views but the anchor.
    Views the model cannot tell apart score alike and give a loss of ln(2·batch - 1)."""
    return 2 * batch - 1


def simclr_verdict(history: list[dict]) -> dict:
    """`cmr_ray.train.collapse.collapse_verdict` of `train_simclr`'s per-epoch history, judged
    against ln(2B - 1), the loss of views that all score alike."""
    from cmr_ray.train.collapse import collapse_verdict

    return collapse_verdict(history, int(history[-1]["candidates"]))


def train_simclr(cfg: Config, store, model=None, temperature: float | None = None, progress: bool = True,
                 history: list | None = None):
    """Pretrain `model` (default: a fresh `build_model(cfg)` at train.seed) with SimCLR.

    `history`, when given, gets one dict per epoch: `epoch` (1-based), `train/loss` (the
    epoch's mean NT-Xent loss), `step` (optimizer steps so far) and `candidates`
    (`candidates(batch)`, the loss's ln-chance argument), so the caller can judge with
    `simclr_verdict(history)` whether it learned."""
    import torch

    from cmr_ray.data.clips import MissingViewError, assemble
    from cmr_ray.data.reader import load_table
    from cmr_ray.model import build_model, precision_autocast
    from cmr_ray.views import combo_slots

    d, t = cfg.data, cfg.train
    seed = t.seed
    temperature = float(temperature or cfg.eval.simclr_temperature)
    torch.manual_seed(seed)
    if model is None:
        model = build_model(cfg)
    device = "cuda" if t.use_gpu and torch.cuda.is_available() else "cpu"
    model.to(device).train()
    autocast = precision_autocast(t.precision, device)  # the video tower as a trial trains it
    table = load_table(store, combo_slots(d.views), "train")
    usable = []
    for i in range(table.num_rows):  # studies lacking a view of the combo cannot make a clip
        try:
            assemble(table.slice(i, 1).to_pylist()[0], d.views)
            usable.append(i)
        except MissingViewError:
            pass
    if len(usable) < 2:
        raise ValueError(f"{store}: SimCLR needs at least 2 training studies with {d.views}, found {len(usable)}")
    batch = max(2, min(t.batch_size * t.workers, len(usable)))
    steps_per_epoch = len(usable) // batch  # drop the last partial batch, as training does
    total_steps = budget_steps(t, steps_per_epoch)
    epochs = -(-total_steps // steps_per_epoch)  # passes over the train split (the last may be partial)
    with torch.random.fork_rng(devices=[]):  # the head's own seed; the tower's random stream is left as it was
        torch.manual_seed(seed + 1)
        head = projection_head(cfg.model.embed_dim, cfg.eval.simclr_head_bn).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(total_steps, t.warmup_fraction))
    rng = np.random.default_rng(seed)
    t0 = time.time()
    for epoch in range(epochs):
        order = rng.permutation(usable)
        total = 0.0
        n_steps = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)
        for s in range(n_steps):
            rows = table.take(order[s * batch:(s + 1) * batch]).to_pylist()
            v1, v2 = two_views(rows, d.views, d.frames, rng, t.hflip, d.sampling, cfg.eval.simclr_noise,
                               cfg.eval.simclr_crop)
            with autocast():
                z1 = model.encode_video(torch.from_numpy(v1).to(device))
                z2 = model.encode_video(torch.from_numpy(v2).to(device))
            g = head(torch.cat([z1, z2]).float())  # both views in one batch: the head's batch norm sees all 2B
            loss = nt_xent(g[:len(z1)], g[len(z1):], temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        mean = total / max(1, n_steps)
        if history is not None:
            history.append({"epoch": epoch + 1, "train/loss": mean, "step": epoch * steps_per_epoch + n_steps,
                            "candidates": candidates(batch)})
        if progress:
            print(f"simclr epoch {epoch + 1}/{epochs}: loss {mean:.4f} = {mean / math.log(candidates(batch)):.2f} "
                  f"× ln {candidates(batch)} (step {epoch * steps_per_epoch + n_steps}/{total_steps}, {time.time() - t0:.0f} s)",
                  file=sys.stderr)
    model.eval()
    return model
