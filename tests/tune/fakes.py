"""Stand-ins for training, evaluation and checkpoint loading, so the sweep layer is tested on
real Ray Tune + Ray Train V2 + MLflow without the model.

`fake_train` runs a real `TorchTrainer` whose loop reports per-epoch metrics and a small
checkpoint each epoch; its quality depends on the trial's config (more frames and lower
temperature score higher), so trials differ and ASHA has something to cut.  It resumes
from `ray.train.get_checkpoint()` like the real loop.  `CMR_FAKE_EPOCH_S` slows epochs down;
`CMR_FAKE_PROBE_DIR` (absolute) makes every epoch append what the cluster looks like from the
trial's worker to DIR/q-<quality>.jsonl: its own placement group, every placement group's
state, the free and total CPUs (`probe`).
"""
from __future__ import annotations

import json
import os
import tempfile


def quality(cfg: dict) -> float:
    return cfg["data"]["frames"] / 8.0 + 0.05 / cfg["model"]["temperature"] + 0.5 * cfg["data"]["views"].count("+")


def _loop(config):
    import time

    import ray.train

    start = 0
    ckpt = ray.train.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            start = json.load(open(os.path.join(d, "state.json")))["epoch"]
    for epoch in range(start + 1, config["epochs"] + 1):
        time.sleep(config["epoch_s"])
        print(f"fake train worker: epoch {epoch}", flush=True)  # a Train worker's output
        if config.get("probe_dir"):
            probe(config["probe_dir"], config["q"], epoch)
        m = {"epoch": epoch, "train/loss": 4.0 / epoch, "val/loss": 4.5 / epoch,
             "val/rsum": 50.0 * config["q"] * epoch, "val/t2v_r5": 5.0 * config["q"] * epoch}
        with tempfile.TemporaryDirectory() as d:
            json.dump({"epoch": epoch, "q": config["q"]}, open(os.path.join(d, "state.json"), "w"))
            ray.train.report(m, checkpoint=ray.train.Checkpoint.from_directory(d))


def probe(out_dir: str, q: float, epoch: int) -> None:
    """One line of what this Train worker sees of the cluster now (GCS tables, no state API)."""
    import time

    import ray
    from ray.util import get_current_placement_group, placement_group_table

    pg = get_current_placement_group()
    line = {"q": q, "epoch": epoch, "t": time.time(), "pg": pg.id.hex() if pg else None,
            "pgs": {k: v["state"] for k, v in placement_group_table().items()},
            "free_cpu": ray.available_resources().get("CPU", 0.0), "total_cpu": ray.cluster_resources().get("CPU", 0.0)}
    with open(os.path.join(out_dir, f"q-{q:g}.jsonl"), "a") as f:
        f.write(json.dumps(line) + "\n")


def fake_train(cfg, storage_path=None, name=None, callbacks=None):
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    t = cfg["train"]
    trainer = TorchTrainer(
        _loop,
        train_loop_config={"epochs": t["epochs"], "q": quality(cfg),
                           "epoch_s": float(os.environ.get("CMR_FAKE_EPOCH_S", "0")),
                           "probe_dir": os.environ.get("CMR_FAKE_PROBE_DIR")},
        scaling_config=ScalingConfig(num_workers=t["workers"], resources_per_worker={"CPU": t["cpus_per_worker"]}),
        run_config=RunConfig(
            name=name, storage_path=storage_path, callbacks=callbacks,
            checkpoint_config=CheckpointConfig(num_to_keep=2, checkpoint_score_attribute="val/rsum",
                                               checkpoint_score_order="max"),
            failure_config=FailureConfig(max_failures=0),
        ),
    )
    return trainer.fit()


def fake_eval(checkpoint, store, out_dir, cfg=None):
    import sys
    import warnings

    state = json.load(open(os.path.join(checkpoint, "state.json")))
    q = state["q"]
    print(f"fake eval: scoring epoch {state['epoch']}", file=sys.stderr, flush=True)  # the trial's own output
    warnings.warn("fake eval: a library warning", UserWarning)
    m = {f"test/{d}_r{k}": min(100.0, q * k * 3.0) for d in ("t2v", "v2t") for k in (1, 5, 10, 50)}
    m["test/rsum"] = sum(m[f"test/{d}_r{k}"] for d in ("t2v", "v2t") for k in (5, 10, 50))
    for lab in ("nicm", "icm", "amyl", "hcm", "acdc"):
        m.update({f"probe/{lab}_acc": 0.5 + q / 20, f"probe/{lab}_auc": 0.55 + q / 20, f"probe/{lab}_f1": 0.4 + q / 20})
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "retrieval.csv"), "w") as f:
        f.write("metric,value\n" + "".join(f"{k},{v}\n" for k, v in sorted(m.items())))
    with open(os.path.join(out_dir, "plot.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
    if os.environ.get("CMR_FAKE_LEAK"):
        with open(os.path.join(out_dir, "leak.md"), "w") as f:
            f.write(os.environ["CMR_FAKE_LEAK"])
    return m


def fake_loader(path):
    import torch

    return torch.nn.Linear(2, 2), {}
