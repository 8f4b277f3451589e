"""One optimisation step of the contrastive loss, with gradient accumulation that stays exact.

    loss = contrastive_step(model, loss_fn, micro_batches, no_sync=ddp_model.no_sync)
    optimizer.step()

`micro_batches` is a list of (video [b, F, H, W], texts list[str], impression_ids [b]).
With one micro-batch this is the plain forward/backward.  With several, plain gradient
accumulation would be wrong for a contrastive loss (each micro-batch would see only its own
negatives).  Instead, as open_clip does (`accum_freq`; Cui et al. / GradCache, Gao et al.
2021): first every micro-batch's embeddings are computed without gradients; then each
micro-batch is recomputed *with* gradients and the loss of the whole accumulated batch is
evaluated with that slice live and the others taken from the cache.  The summed gradients
equal those of one batch of all micro-batches (tested).  The logit scale enters the loss
directly, so it keeps its gradient in exactly one (the last) recomputation.  `no_sync`
(DDP's context manager) skips the gradient all-reduce for all but the last backward.

`precision_autocast(precision, device_type)` is the `autocast` argument for `train.precision`:
'auto' is bf16 on a GPU and fp32 on a CPU; 'bf16' is bf16 autocast on either (on a CPU with
bf16 instructions, AVX512-BF16 or AMX, a training step of the views sweep's tower runs
1.4-2.0x faster: `bench/bench_precision.py`); 'fp32' never casts.  Losses are computed in fp32.
"""
from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_bf16() -> bool:
    """Whether this CPU has native bf16 arithmetic (oneDNN's own check); False where unknown."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_dtype(precision: str, device_type: str):
    """torch.bfloat16 when `train.precision` casts on this device type, else None."""
    if precision not in PRECISIONS:
        raise ValueError(f"train.precision: expected one of {PRECISIONS}, got {precision!r}")
    if precision == "bf16" or (precision == "auto" and device_type == "cuda"):
        return torch.bfloat16
    return None


def precision_autocast(precision: str, device_type: str):
    """A zero-argument context factory: bf16 autocast on `device_type`, or no casting."""
    dtype = autocast_dtype(precision, device_type)
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type, dtype=dtype)


def precision_warning(precision: str, device_type: str, native_bf16: bool | None = None) -> str | None:
    """One line when `train.precision` asks for bf16 on a CPU that would emulate it, else None."""
    if autocast_dtype(precision, device_type) is None or device_type != "cpu":
        return None
    native = cpu_has_bf16() if native_bf16 is None else native_bf16
    if native:
        return None
    return (f"train.precision={precision}: this CPU has no bf16 instructions (AVX512-BF16 or AMX), so bf16 "
            "autocast is emulated and slower than fp32; set train.precision=fp32")


def contrastive_step(model, loss_fn, micro_batches, no_sync=None, autocast=None) -> float:
    """Forward + backward over the micro-batches; returns the loss of the whole batch."""
    autocast = autocast or contextlib.nullcontext
    if len(micro_batches) == 1:
        video, texts, ids = micro_batches[0]
        with autocast():
            v, t, scale = model(video, texts)
        loss = loss_fn(v, t, scale, ids)
        loss.backward()
        return float(loss.detach())
    with torch.no_grad():
        cached = []
        for video, texts, ids in micro_batches:
            with autocast():
                v, t, _ = model(video, texts)
            cached.append((v.float(), t.float()))
    all_ids = torch.cat([ids for _, _, ids in micro_batches]) if micro_batches[0][2] is not None else None
    last = len(micro_batches) - 1
    loss = None
    for j, (video, texts, _) in enumerate(micro_batches):
        ctx = no_sync() if (no_sync is not None and j < last) else contextlib.nullcontext()
        with ctx:
            with autocast():
                v, t, scale = model(video, texts)
            vs = [v.float() if i == j else c[0] for i, c in enumerate(cached)]
            ts = [t.float() if i == j else c[1] for i, c in enumerate(cached)]
            loss = loss_fn(torch.cat(vs), torch.cat(ts), scale if j == last else scale.detach(), all_ids)
            loss.backward()
    return float(loss.detach())
