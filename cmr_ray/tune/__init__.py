"""Sweeps on Ray Tune with MLflow tracking.

    from cmr_ray.tune import run_sweep, expand_trials, render_report
    run_sweep("experiments/views.yaml")                 # cmr-ray sweep experiments/views.yaml
    run_sweep("experiments/views.yaml", resume=True)    # finish an interrupted sweep

`grid` (pure: trials from the `sweep` section), `trainable` (one trial: TorchTrainer,
then evaluation), `callback` (driver-side MLflow logging), `sweep` (the runner),
`report` (Markdown tables from MLflow).  Importing this package does not import Ray.
"""
from __future__ import annotations

from cmr_ray.tune.grid import Trial, expand_trials, max_concurrent, sweep_key

__all__ = ["Trial", "expand_trials", "max_concurrent", "sweep_key", "run_sweep", "render_report"]


def __getattr__(name):  # lazy: the runner and report pull in Ray / MLflow
    if name == "run_sweep":
        from cmr_ray.tune.sweep import run_sweep

        return run_sweep
    if name == "render_report":
        from cmr_ray.tune.report import render_report

        return render_report
    raise AttributeError(name)
