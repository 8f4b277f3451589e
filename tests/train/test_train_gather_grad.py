"""Global negatives on 2 Ray Train workers (gloo, CPU) give one process's full-batch gradients."""
import sys

import pytest
import torch

from tests.train.conftest import tiny_train_cfg

pytestmark = pytest.mark.integration

N, HALF = 8, 4


def full_batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    video = torch.rand(N, 4, 32, 32, generator=g)
    texts = [f"impression {i % 6}" for i in range(N)]  # 0/6 and 1/7 are duplicates
    ids = torch.tensor([i % 6 for i in range(N)])
    return video, texts, ids


def grads_of(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def gather_loop(config):
    """Each worker: its half of the batch, global-negative loss, DDP backward; rank 0 saves grads."""
    import ray.train
    import ray.train.torch
    import torch

    from cmr_ray.model import ClipLoss, build_model, contrastive_step
    from cmr_ray.train.loop import seed_everything

    rank = ray.train.get_context().get_world_rank()
    seed_everything(0)
    model = build_model(config["cfg"])
    ddp = ray.train.torch.prepare_model(model, parallel_strategy_kwargs={"broadcast_buffers": False})
    video, texts, ids = full_batch()
    sl = slice(rank * HALF, (rank + 1) * HALF)
    loss_fn = ClipLoss(mask_duplicates=True)
    out = {}
    for accum in (1, 2):
        ddp.zero_grad()
        b = HALF // accum
        micro = [(video[sl][i:i + b], texts[sl][i:i + b], ids[sl][i:i + b]) for i in range(0, HALF, b)]
        loss = contrastive_step(ddp, loss_fn, micro, no_sync=ddp.no_sync)
        out[accum] = {"grads": grads_of(ddp.module), "loss": loss}
    if rank == 0:
        torch.save(out, config["out"])
    ray.train.report({"done": 1})


def test_two_workers_match_one_process(ray_cluster, fake_store, tiny_text_model, tmp_path):
    from ray import cloudpickle
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from cmr_ray.model import ClipLoss, build_model, contrastive_step
    from cmr_ray.train.loop import seed_everything

    cfg = tiny_train_cfg(fake_store, tiny_text_model, **{"model.freeze_text": False,
                                                         "model.learn_temperature": True})
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    out = tmp_path / "grads.pt"
    result = TorchTrainer(
        gather_loop, train_loop_config={"cfg": cfg, "out": str(out)},
        scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
        run_config=RunConfig(name="gather", storage_path=str(tmp_path / "runs")),
    ).fit()
    assert result.error is None
    got = torch.load(out, weights_only=True)

    seed_everything(0)
    model = build_model(cfg)
    video, texts, ids = full_batch()
    model.zero_grad()
    ref_loss = contrastive_step(model, ClipLoss(mask_duplicates=True), [(video, texts, ids)])
    ref = grads_of(model)
    assert "log_scale" in ref and any(k.startswith("text.") for k in ref) and any(k.startswith("video.") for k in ref)
    for accum in (1, 2):
        g = got[accum]["grads"]
        assert set(g) == set(ref)
        for name, r in ref.items():
            assert torch.allclose(g[name], r, atol=1e-5, rtol=0), (accum, name, float((g[name] - r).abs().max()))
    # the workers' loss is the mean of their local rows; rank 0's half differs from the
    # full-batch mean, but the gradients above are the full batch's
    assert got[1]["loss"] == pytest.approx(got[2]["loss"], rel=1e-5)
    assert ref_loss > 0
