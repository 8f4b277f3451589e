"""Contrastive pretraining on Ray Train.

    from cmr_ray.train import run_training, load_checkpoint
    result = run_training(cfg, storage_path="ray_results", name="demo")   # resumes if it exists
    model, cfg = load_checkpoint(result.checkpoint.path)

Modules: `trainer` (the TorchTrainer), `loop` (what each worker runs), `data` (the Ray Data
pipeline: pruned columns, frame sampling, augmentation), `augment`, `checkpoint`.
"""
from cmr_ray.runtime import local_env

local_env()  # Ray Train V2, loopback-only, offline Hugging Face: before anything imports ray



def load_checkpoint(path):
    from cmr_ray.train.checkpoint import load_checkpoint as _load

    return _load(path)


load_checkpoint.__doc__ = "See cmr_ray.train.checkpoint.load_checkpoint: (path) -> (model, cfg)."


def run_training(*args, **kwargs):
    from cmr_ray.train.trainer import run_training as _run

    return _run(*args, **kwargs)


run_training.__doc__ = "See cmr_ray.train.trainer.run_training: (cfg, storage_path=None, name=None) -> ray.train.Result."

__all__ = ["load_checkpoint", "run_training"]
