"""Contrastive gradient accumulation (cached embeddings) gives the full-batch gradients."""
import pytest
import torch

from cmr_ray.model import ClipLoss, build_model, contrastive_step


def grads_of(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("accum", [2, 4])
def test_accumulation_equals_full_batch(tiny_cfg, accum):
    cfg = tiny_cfg.with_overrides({"model.freeze_text": False, "model.learn_temperature": True})
    torch.manual_seed(0)
    model = build_model(cfg)
    g = torch.Generator().manual_seed(1)
    video = torch.rand(8, 4, 32, 32, generator=g)
    texts = [f"impression number {i % 6}" for i in range(8)]  # two duplicated impressions
    ids = torch.tensor([i % 6 for i in range(8)])
    loss_fn = ClipLoss(mask_duplicates=True)

    model.zero_grad()
    full_loss = contrastive_step(model, loss_fn, [(video, texts, ids)])
    full = grads_of(model)

    model.zero_grad()
    b = 8 // accum
    micro = [(video[i:i + b], texts[i:i + b], ids[i:i + b]) for i in range(0, 8, b)]
    acc_loss = contrastive_step(model, loss_fn, micro)
    acc = grads_of(model)

    assert acc_loss == pytest.approx(full_loss, rel=1e-5)
    assert set(acc) == set(full) and "log_scale" in full and any(n.startswith("text.") for n in full)
    for name in full:
        assert torch.allclose(acc[name], full[name], atol=1e-5, rtol=1e-4), name


def test_naive_accumulation_would_differ(tiny_cfg):
    """Guard: summing per-micro-batch losses (each with its own negatives) is not the same."""
    torch.manual_seed(0)
    model = build_model(tiny_cfg)
    video = torch.rand(8, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    texts = [f"t{i}" for i in range(8)]
    loss_fn = ClipLoss()
    model.zero_grad()
    contrastive_step(model, loss_fn, [(video, texts, None)])
    full = model.video_proj.weight.grad.clone()
    model.zero_grad()
    for i in (0, 4):
        contrastive_step(model, loss_fn, [(video[i:i + 4], texts[i:i + 4], None)])
    assert not torch.allclose(model.video_proj.weight.grad / 2, full, atol=1e-5)


@pytest.mark.parametrize("precision,device,dtype", [
    ("auto", "cpu", None), ("auto", "cuda", torch.bfloat16), ("fp32", "cuda", None),
    ("fp32", "cpu", None), ("bf16", "cpu", torch.bfloat16), ("bf16", "cuda", torch.bfloat16)])
def test_train_precision_picks_the_autocast(precision, device, dtype):
    from cmr_ray.model.accum import autocast_dtype

    assert autocast_dtype(precision, device) is dtype


def test_an_unknown_precision_is_refused_by_name():
    from cmr_ray.model.accum import precision_autocast

    with pytest.raises(ValueError, match="train.precision.*'fp16'"):
        precision_autocast("fp16", "cpu")


def test_bf16_step_on_cpu_runs_the_tower_in_bf16_and_keeps_fp32_weights_and_loss(tiny_cfg):
    """train.precision=bf16 on a CPU: the video tower's matmuls are bf16 (checked on a layer's
    output), the loss and every gradient are fp32 and finite, and the loss stays near fp32's."""
    from cmr_ray.model import precision_autocast

    video = torch.rand(8, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    texts = [f"impression number {i}" for i in range(8)]
    losses, seen = {}, {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = build_model(tiny_cfg)
        hook = model.video_proj.register_forward_hook(lambda m, i, o, p=precision: seen.__setitem__(p, o.dtype))
        model.zero_grad()
        losses[precision] = contrastive_step(model, ClipLoss(), [(video, texts, None)],
                                             autocast=precision_autocast(precision, "cpu"))
        hook.remove()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
        assert all(p.dtype == torch.float32 for p in model.parameters())
    assert seen == {"fp32": torch.float32, "bf16": torch.bfloat16}
    assert losses["bf16"] == pytest.approx(losses["fp32"], abs=0.05)


def test_bf16_on_a_cpu_without_bf16_instructions_is_warned_in_one_line():
    from cmr_ray.model import precision_warning

    line = precision_warning("bf16", "cpu", native_bf16=False)
    assert "train.precision=bf16" in line and "train.precision=fp32" in line and "\n" not in line
    assert precision_warning("bf16", "cpu", native_bf16=True) is None
    assert precision_warning("fp32", "cpu", native_bf16=False) is None
    assert precision_warning("auto", "cpu", native_bf16=False) is None  # auto is fp32 on a CPU
    assert precision_warning("bf16", "cuda", native_bf16=False) is None
