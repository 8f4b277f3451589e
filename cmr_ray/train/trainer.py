"""Contrastive pretraining on Ray Train: `run_training(cfg) -> ray.train.Result`.

    from cmr_ray.config import load_config
    from cmr_ray.train import run_training
    result = run_training(load_config("experiments/base.yaml"), storage_path="ray_results", name="demo")
    result.checkpoint.path        # the latest checkpoint (model.pt + config.yaml)
    result.metrics["val/rsum"]

One `TorchTrainer` (Ray Train V2): `train.workers` workers with `train.cpus_per_worker`
CPUs (and a GPU each when `train.use_gpu`), the store's train and val splits as Ray
Datasets (train split across workers, val whole for rank 0), the best
`train.keep_checkpoints` checkpoints kept by `sweep.metric` in `config.sweep_mode`'s order
(`val/rsum`, highest, by default; `best_checkpoint` picks from them) and the latest one
always, `train.max_failures` worker failures survived by
restarting from the last checkpoint.  Starting a run again with the same name and storage
path continues from its latest checkpoint (Ray Train keeps a snapshot of the reported
checkpoints under STORAGE/NAME).  Joins a running Ray, or starts a loopback-only one.

Learning is checked: each epoch's console line shows train/loss as a fraction of
ln(global batch), and at the end a run whose verdict (`cmr_ray.train.collapse`) is
`collapsed` or `slow` gets a WARNING line naming it.
"""
from __future__ import annotations

import os
import time

from cmr_ray.config import Config, sweep_mode
from cmr_ray.runtime import init_ray
from cmr_ray.views import combo_slots


class TrainingSetupError(ValueError):
    pass


def _storage(path: str) -> str:
    return path if "://" in str(path) else os.path.abspath(os.path.expanduser(str(path)))


def _progress_callback(epochs: int):
    from ray.train import UserCallback

    class Progress(UserCallback):
        """Prints one line per epoch on the driver's console (runs in Train's controller)."""

        def __init__(self):
            self.t0 = time.time()

        def after_report(self, run_context, metrics, checkpoint):
            m = metrics[0] if metrics else {}
            if "val/rsum" not in m:
                return
            where = f" -> {checkpoint.path}" if checkpoint is not None else ""
            ratio = f" ({m['train/loss_ratio']:.2f} ln B)" if "train/loss_ratio" in m else ""
            print(f"[cmr-ray train] epoch {m['epoch']}/{epochs}  train/loss {m['train/loss']:.4f}{ratio}  "
                  f"val/loss {m['val/loss']:.4f}  val/rsum {m['val/rsum']:.1f}  "
                  f"{m['train/samples_per_s']:.0f} samples/s  {time.time() - self.t0:.0f}s{where}", flush=True)

    return Progress()


def _ingest_options():
    """Ray Train's default ingest options with the order kept (with the seeded shuffle: the
    same batches on every run).  Built here rather than by `DataConfig.default_ingest_options()`,
    which passes the deprecated `exclude_resources` (a RayDeprecationWarning in every trial's
    log; it is removed after January 2027)."""
    from ray.data import DataContext, ExecutionOptions

    ctx = DataContext.get_current().execution_options
    return ExecutionOptions(resource_limits=ctx.resource_limits, preserve_order=True,
                            verbose_progress=ctx.verbose_progress)


def check_inputs(cfg: Config) -> tuple[int, int]:
    """Rows of the train and val splits; one clear line when training cannot start."""
    from cmr_ray.data.reader import StoreError
    from cmr_ray.train.data import count_split

    store = cfg.data.store
    slots = combo_slots(cfg.data.views)
    try:
        n_train, n_val = count_split(store, "train", slots), count_split(store, "val", slots)
    except StoreError as e:
        raise TrainingSetupError(f"data.store: {e}") from None
    tr = cfg.train
    need = tr.workers * tr.batch_size * tr.accum_steps
    if n_train < need:
        raise TrainingSetupError(
            f"data.store {store}: the train split has {n_train} studies with views {cfg.data.views}, fewer than train.workers × "
            f"train.batch_size × train.accum_steps = {need}")
    if n_val < 2:
        raise TrainingSetupError(f"data.store {store}: the val split has {n_val} studies; validation "
                                 "needs at least 2 (raise data.val_fraction when preparing the store)")
    return n_train, n_val


def best_checkpoint(result, metric: str, mode: str = "max"):
    """(checkpoint, its metrics) with the best `metric` (highest for mode 'max', lowest for
    'min': `config.sweep_mode`); the last checkpoint otherwise.  The one selection of the
    project: `cmr-ray train` prints it, a sweep's trial evaluates it."""
    ranked = [(c, m) for c, m in (getattr(result, "best_checkpoints", None) or []) if metric in m]
    if ranked:
        return (min if mode == "min" else max)(ranked, key=lambda cm: cm[1][metric])
    if result.checkpoint is None:
        raise RuntimeError("training produced no checkpoint to evaluate")
    return result.checkpoint, dict(result.metrics or {})


def evaluated_checkpoint(result, cfg: Config):
    """(checkpoint, its metrics) that a run's evaluation scores, as `eval.checkpoint` says:
    'last', the end of the training budget (Ray Train keeps the latest checkpoint whatever its
    score), or 'best', `best_checkpoint` by `sweep.metric` in `sweep_mode`'s order.  'last'
    is what a fixed step budget compares: the cosine schedule ends at zero, and picking the
    best epoch by a small validation split's RSUM picks its noise too (README, "Which
    checkpoint is scored")."""
    if cfg.eval.checkpoint == "best" or result.checkpoint is None:
        return best_checkpoint(result, cfg.sweep.metric, sweep_mode(cfg))
    return result.checkpoint, dict(result.metrics or {})


def run_training(cfg: Config, storage_path: str | None = None, name: str | None = None,
                 callbacks: list | None = None, progress: bool = True, address: str | None = None,
                 fault_hook: dict | None = None):
    """Train (or resume) the run STORAGE/NAME; returns Ray Train's `Result`.

    `callbacks`: extra Ray Train `UserCallback`s (e.g. Tune's `TuneReportCallback`);
    `progress`: print one line per epoch; `fault_hook`: fault injection for tests only
    (`{"dir", "epoch"}`: a worker writes its pid there at that epoch and waits to be killed).
    """
    cfg = cfg.replace("data.store", _storage(cfg.data.store))  # the saved config names it unambiguously
    n_train, _ = check_inputs(cfg)
    init_ray(address=address)
    import ray.data
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from cmr_ray.model.text import load_text_encoder
    from cmr_ray.train.data import EpochClock, clip_dataset
    from cmr_ray.train.loopback import torch_config
    from cmr_ray.train.budget import plan_steps
    from cmr_ray.train.loop import train_loop_per_worker

    load_text_encoder(cfg.model.text_model, config_only=True)  # fail here, in one line, if it is missing
    if cfg.model.video_init:
        from cmr_ray.model.vit_init import check_video_init

        check_video_init(cfg.model.video_init)  # the same for the video tower's starting weights
    tr = cfg.train
    clock = EpochClock.remote()
    datasets = {"train": clip_dataset(cfg, "train", clock), "val": clip_dataset(cfg, "val")}
    exec_opts = _ingest_options()
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"cfg": cfg, "n_train": n_train, "clock": clock, "fault_hook": fault_hook},
        torch_config=torch_config(),  # a loopback-only local Ray: the process group on 127.0.0.1 too
        scaling_config=ScalingConfig(num_workers=tr.workers, use_gpu=tr.use_gpu,
                                     resources_per_worker={"CPU": tr.cpus_per_worker}),
        run_config=RunConfig(
            name=name or tr.name,
            storage_path=_storage(storage_path or tr.storage_path),
            checkpoint_config=CheckpointConfig(num_to_keep=tr.keep_checkpoints,
                                               checkpoint_score_attribute=cfg.sweep.metric,
                                               checkpoint_score_order=sweep_mode(cfg)),
            failure_config=FailureConfig(max_failures=tr.max_failures),
            callbacks=([_progress_callback(plan_steps(tr, n_train, tr.workers)[1])] if progress else [])
            + list(callbacks or []),
        ),
        datasets=datasets,
        dataset_config=DataConfig(datasets_to_split=["train"], execution_options={"train": exec_opts}),
    )
    try:
        result = trainer.fit()
    finally:
        ray.kill(clock)
    _say_learning(result, cfg, name or tr.name, progress)
    return result


def _say_learning(result, cfg: Config, run: str, progress: bool) -> dict | None:
    """The end-of-run learning verdict: a WARNING line when collapsed or slow (always), the
    verdict itself with `progress`.  Judged on the final epoch's report."""
    from cmr_ray.train.collapse import collapse_verdict, global_batch, warning_line

    if getattr(result, "error", None) is not None:
        return None
    try:
        verdict = collapse_verdict([dict(result.metrics or {})], global_batch(cfg))
    except ValueError:  # no finite train/loss reported: nothing to judge
        return None
    line = warning_line(run, verdict)
    if line:
        print(f"[cmr-ray train] {line}", flush=True)
    elif progress:
        print(f"[cmr-ray train] run {run} learned: {verdict['reason']}", flush=True)
    return verdict
