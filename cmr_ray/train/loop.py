"""What each Ray Train worker runs: build, restore, train an epoch, validate, report.

`train_loop_per_worker(config)` is handed to `TorchTrainer` by `cmr_ray.train.trainer`;
`config` holds the resolved experiment `cfg`, `n_train` (rows of the train split) and the
run's `EpochClock`.  Per step: AdamW on the contrastive loss with global negatives
(`ClipLoss` gathers embeddings across workers) and exact gradient accumulation
(`contrastive_step`), learning rate by linear warm-up then cosine decay.  Per epoch,
rank 0 embeds the whole validation split, reports `val/loss` and the retrieval metrics
(`val/rsum`, `val/t2v_r5`, ...) and a checkpoint; the other workers report their metrics
without one.  Learning is checked (`cmr_ray.train.collapse`): every epoch also reports
`train/loss_ratio` = train/loss / ln(global batch) (about 1: every pair scores alike, the
run learned nothing) and rank 0 `val/video_spread`, the spread of the validation video
embeddings (0: they all collapsed to one point).  On start, `ray.train.get_checkpoint()`
(set by Ray after a worker failure, or when a run is started again with the same name and
storage) restores model, optimizer, scheduler and the epoch counter.  `train.precision`
sets the forward's autocast (`precision_autocast`): 'auto' is bf16 on a GPU, fp32 on a CPU.
"""
from __future__ import annotations

import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist

from cmr_ray.model import ClipLoss, build_model, contrastive_step, precision_autocast, precision_warning
from cmr_ray.train import collapse
from cmr_ray.train.augment import augment_batch
from cmr_ray.train.budget import plan_steps
from cmr_ray.train.checkpoint import MODEL_FILE, save_checkpoint
from cmr_ray.train.data import iter_clip_batches, to_unit


def warmup_cosine(total_steps: int, warmup_fraction: float):
    warm = int(round(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(model, cfg):
    """AdamW; matrices decay, vectors (biases, norms, the logit scale) do not.  A text tower
    that trains (`model.freeze_text` false) gets groups of its own at `train.text_lr` (0: the
    same `train.lr`); the scheduler scales every group's rate alike.  Group 0 is the video
    tower's and the heads' matrices (its rate is what `train/lr` reports)."""
    tr = cfg.train
    lr = tr.lr
    text_lr = tr.text_lr or lr
    text_params = {id(p) for p in model.text.parameters()} if hasattr(model, "text") else set()
    buckets = {(False, True): [], (False, False): [], (True, True): [], (True, False): []}
    for p in model.parameters():
        if p.requires_grad:
            buckets[(id(p) in text_params, p.ndim >= 2)].append(p)
    wd = tr.weight_decay
    groups = [{"params": buckets[(False, True)], "weight_decay": wd},
              {"params": buckets[(False, False)], "weight_decay": 0.0}]
    if buckets[(True, True)] or buckets[(True, False)]:
        groups += [{"params": buckets[(True, True)], "weight_decay": wd, "lr": text_lr},
                   {"params": buckets[(True, False)], "weight_decay": 0.0, "lr": text_lr}]
    return torch.optim.AdamW(groups, lr=lr)


def _mean_over_workers(value: float, device) -> float:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        t = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return float(t.item()) / dist.get_world_size()
    return value


def load_val(shard, batch_size: int) -> list[dict]:
    """The validation clips, read once (midpoint frames, no augmentation: the same every epoch)."""
    batches = list(iter_clip_batches(shard, batch_size, train=False))
    if not batches:
        raise ValueError("validation split is empty")
    return batches


@torch.no_grad()
def validate(model, val_batches: list[dict], cfg, global_batch: int, device, autocast) -> dict:
    """Embeds the whole split; loss over consecutive batches of the training batch size."""
    from cmr_ray.eval import retrieval_metrics

    model.eval()
    vids, txts, ids = [], [], []
    for batch in val_batches:
        with autocast():
            v, t, _ = model(to_unit(batch["video"], device), batch["texts"])
        vids.append(v.float().cpu()), txts.append(t.float().cpu()), ids.append(batch["iid"])
    model.train()
    v, t, iid = torch.cat(vids), torch.cat(txts), torch.cat(ids)
    loss_fn = ClipLoss(mask_duplicates=cfg.train.mask_duplicate_impressions, gather=False)
    scale = model.logit_scale().float().cpu()
    losses = [float(loss_fn(v[i:i + global_batch], t[i:i + global_batch], scale, iid[i:i + global_batch]))
              for i in range(0, len(v), global_batch) if len(v[i:i + global_batch]) >= 2]
    out = {f"val/{k}": float(x) for k, x in retrieval_metrics((t @ v.T).numpy()).items()}
    out["val/loss"] = float(np.mean(losses)) if losses else float("nan")
    out["val/studies"] = len(v)
    out["val/video_spread"] = video_spread(v)
    return out


def video_spread(v: torch.Tensor) -> float:
    """Root of the total variance of L2-normalised embeddings [N, D] = sqrt(1 - |mean|²):
    0 when all N are one vector (collapse), 1 when their mean is zero."""
    v = torch.nn.functional.normalize(v.float(), dim=-1)
    return float(v.var(dim=0, unbiased=False).sum().clamp(min=0).sqrt()) if len(v) > 1 else float("nan")


def _fault_hook(hook: dict | None, epoch: int, rank: int) -> None:
    """Fault injection for tests: at the first step of `hook['epoch']`, once per run, write
    this worker's pid and wait to be killed."""
    if not hook or epoch != hook.get("epoch"):
        return
    d = Path(hook["dir"])
    marker = d / f"paused_{rank}"
    if marker.exists():
        return
    marker.write_text(str(os.getpid()))
    (d / f"pid_{rank}").write_text(str(os.getpid()))
    time.sleep(float(hook.get("wait_s", 120)))


def train_loop_per_worker(config: dict) -> None:
    cfg, n_train, clock = config["cfg"], int(config["n_train"]), config["clock"]
    tr = cfg.train
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    if tr.torch_threads:
        torch.set_num_threads(tr.torch_threads)
    seed_everything(tr.seed)
    device = ray.train.torch.get_device()
    autocast = precision_autocast(tr.precision, device.type)
    warning = precision_warning(tr.precision, device.type) if rank == 0 else None
    if warning:
        print(f"WARNING {warning}", file=sys.stderr, flush=True)

    model = build_model(cfg)
    ddp = ray.train.torch.prepare_model(model, parallel_strategy_kwargs={"broadcast_buffers": False})
    model = ddp.module if hasattr(ddp, "module") else ddp
    optimizer = make_optimizer(model, cfg)
    batch, accum = tr.batch_size, tr.accum_steps
    steps_per_epoch, epochs, total_steps = plan_steps(tr, n_train, world)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(total_steps, tr.warmup_fraction))
    loss_fn = ClipLoss(mask_duplicates=tr.mask_duplicate_impressions)

    start_epoch, history, last_metrics = 0, [], {}
    ckpt = ray.train.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            state = torch.load(Path(d) / MODEL_FILE, map_location="cpu", weights_only=True)
        model.load_trainable_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, history, last_metrics = int(state["epoch"]), list(state["history"]), dict(state["metrics"])
    hook = config.get("fault_hook")
    if hook:
        Path(hook["dir"], f"start_{rank}_{os.getpid()}").write_text(str(start_epoch))

    if start_epoch >= epochs:  # a finished run started again: nothing to train, say where it stands
        ray.train.report(last_metrics or {"epoch": start_epoch})
        return

    val_batches = None
    for epoch in range(start_epoch, epochs):
        ray.get(clock.set.remote(epoch))
        t0, losses, seen = time.perf_counter(), [], 0
        shard = ray.train.get_dataset_shard("train")
        batches = iter_clip_batches(shard, batch * accum, train=True, seed=tr.seed, epoch=epoch)
        budget = total_steps - epoch * steps_per_epoch  # the last epoch of a step budget is partial
        for step, b in enumerate(batches):
            if step == 0:
                _fault_hook(hook, epoch, rank)
            if step >= budget:  # drain the shard (every worker ends the epoch alike), no more steps
                continue
            video = b["video"].to(device, non_blocking=True)
            if "aug" in b:  # train.augment_on: device (the data tasks drew the transforms)
                video = augment_batch(video, b["aug"])
            video = to_unit(video, device)
            micro = [(video[i:i + batch], b["texts"][i:i + batch], b["iid"][i:i + batch].to(device))
                     for i in range(0, len(video), batch)]
            optimizer.zero_grad(set_to_none=True)
            losses.append(contrastive_step(ddp, loss_fn, micro, no_sync=getattr(ddp, "no_sync", None),
                                           autocast=autocast))
            optimizer.step()
            scheduler.step()
            model.clamp_logit_scale_()
            seen += len(video)
        train_time = time.perf_counter() - t0
        train_loss = _mean_over_workers(float(np.mean(losses)) if losses else float("nan"), device)
        metrics = {
            "epoch": epoch + 1,
            "train/loss": train_loss,
            # / ln(batch × accum × workers): the candidates per row; masked duplicate impressions
            # make it fewer, so this is approximate (a collapsed run can sit a little under 1)
            "train/loss_ratio": collapse.loss_ratio(train_loss, collapse.global_batch(cfg)),
            "train/lr": float(scheduler.get_last_lr()[0]),
            "train/logit_scale": float(model.logit_scale()),
            "train/samples_per_s": seen * world / max(train_time, 1e-9),
            "train/steps": len(losses),
        }
        if rank == 0:
            if val_batches is None:
                val_batches = load_val(ray.train.get_dataset_shard("val"), batch)
            metrics.update(validate(model, val_batches, cfg, batch * world, device, autocast))
            metrics["time/epoch_s"] = time.perf_counter() - t0
            history.append({k: metrics[k] for k in ("epoch", "train/loss", "train/loss_ratio", "val/loss", "val/rsum",
                                                    "val/video_spread")})
            with tempfile.TemporaryDirectory(prefix="cmr-ckpt-") as d:
                save_checkpoint(d, model, optimizer, scheduler, epoch + 1, cfg, metrics, history)
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))
        else:
            ray.train.report(metrics)
