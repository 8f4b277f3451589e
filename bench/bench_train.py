"""Training throughput: the model alone vs the data pipeline that feeds it.

    .venv/bin/python bench/bench_train.py                         # experiments/base.yaml sizes
    .venv/bin/python bench/bench_train.py --store cmr_store/synthetic-small --set data.frames=16

Prints, in one run:
  model     training samples/s of the video+text model alone (forward, backward, AdamW step)
            on synthetic tensors of the experiment's shape [batch, frames, size, size], text
            tower frozen with its cache warm (as in training);
  pipeline  samples/s delivered by the Ray Data pipeline from the store (column pruning,
            frame sampling, augmentation; `iter_clip_batches` as the training loop uses it),
            after one warm-up epoch;
  ratio     pipeline / model (the target is >= 3).
Store: --store, else the config's data.store if it exists, else a small one made now with
`cmr_ray.synth` + `cmr_ray.data.prepare` (or, without them, a fake store of the same shape).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def model_step(cfg, autocast=None):
    """`step() -> loss`: one optimizer step (forward, backward, AdamW) of the experiment's model on
    one fixed random batch of its shape [batch, frames, size, size], text tower frozen, from
    seeded weights (the same start on every call); `autocast` as `contrastive_step` takes it.
    Also used by bench/bench_precision.py."""
    import torch

    from cmr_ray.model import ClipLoss, build_model, contrastive_step
    from cmr_ray.model.ids import impression_id
    from cmr_ray.train.loop import make_optimizer

    torch.manual_seed(0)
    model = build_model(cfg)
    opt = make_optimizer(model, cfg)
    b, f, s = cfg["train"]["batch_size"], cfg["data"]["frames"], cfg["data"]["image_size"]
    video = torch.rand(b, f, s, s, generator=torch.Generator().manual_seed(1))
    texts = [f"synthetic impression {i % 16}" for i in range(b)]
    ids = torch.tensor([impression_id(t) for t in texts])
    loss_fn = ClipLoss(mask_duplicates=True)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = contrastive_step(model, loss_fn, [(video, texts, ids)], autocast=autocast)
        opt.step()
        return loss

    return step


def model_rate(cfg, steps: int) -> float:
    step = model_step(cfg)
    step(), step()  # warm-up (and the text cache)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * cfg["train"]["batch_size"] / (time.perf_counter() - t0)


def pipeline_rate(cfg, epochs: int, batch: int) -> tuple[float, int]:
    from cmr_ray.runtime import init_ray
    from cmr_ray.train.data import EpochClock, clip_dataset, iter_clip_batches

    ray = init_ray()
    clock = EpochClock.remote()
    ds = clip_dataset(cfg, "train", clock)
    b = batch
    rate, n = 0.0, 0
    for epoch in range(epochs + 1):  # epoch 0 warms up the worker processes
        ray.get(clock.set.remote(epoch))
        t0, n = time.perf_counter(), 0
        for batch in iter_clip_batches(ds, b, train=True, seed=0, epoch=epoch):
            n += len(batch["texts"])
        if epoch:
            rate += n / (time.perf_counter() - t0) / epochs
    return rate, n


def make_store(cfg, studies: int, workdir: str) -> str:
    try:
        from cmr_ray.data.prepare import prepare
        from cmr_ray.synth.cohort import generate_cohort
    except ImportError:
        from tests.model.fakes import REALISTIC_SHAPES, write_fake_store

        print(f"(cmr_ray.synth/prepare unavailable: a fake store of {studies} studies)")
        return write_fake_store(Path(workdir) / "store", studies=studies, size=cfg["data"]["image_size"],
                                shapes=REALISTIC_SHAPES, shards=4)
    cohort = Path(workdir) / "cohort"
    print(f"making a synthetic store of {studies} studies in {workdir} ...", flush=True)
    generate_cohort(cohort, studies=studies, seed=0, progress=False)
    store = str(Path(workdir) / "store")
    prepare(cohort / "dicom", cohort / "reports.csv", store, labels=cohort / "labels.csv", cfg=cfg, progress=False)
    return store


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default=str(ROOT / "experiments" / "base.yaml"))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--store", default=None)
    p.add_argument("--studies", type=int, default=160, help="studies in a store made for the benchmark")
    p.add_argument("--steps", type=int, default=5, help="timed model steps")
    p.add_argument("--epochs", type=int, default=2, help="timed pipeline epochs (after one warm-up)")
    p.add_argument("--pipeline-batch", type=int, default=None, help="pipeline batch (default: train.batch_size)")
    a = p.parse_args(argv)

    from cmr_ray.config import load_config
    from cmr_ray.runtime import local_env

    local_env()
    cfg = load_config(a.config, a.overrides)
    workdir = tempfile.mkdtemp(prefix="cmr-bench-train-")
    store = a.store or (cfg["data"]["store"] if Path(cfg["data"]["store"], "store.json").exists() else None)
    cfg["data"]["store"] = store or make_store(cfg, a.studies, workdir)
    d, t = cfg["data"], cfg["train"]
    print(f"shape: batch {t['batch_size']} x {d['frames']} frames x {d['image_size']} px; views {d['views']}; "
          f"{os.cpu_count()} CPUs; store {d['store']}", flush=True)
    m = model_rate(cfg, a.steps)
    print(f"model     {m:8.1f} samples/s  (train step, {cfg['model']['video']} "
          f"{cfg['model']['hidden_size']}x{cfg['model']['layers']}, synthetic tensors)", flush=True)
    pr, n = pipeline_rate(cfg, a.epochs, a.pipeline_batch or t["batch_size"])
    print(f"pipeline  {pr:8.1f} samples/s  (Ray Data from the store, {n} train studies per epoch)")
    print(f"ratio     {pr / m:8.1f} x  (target >= 3)")


if __name__ == "__main__":
    main()
