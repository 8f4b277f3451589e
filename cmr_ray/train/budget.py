"""A run's step budget (pure Python): how many optimizer steps, in how many epochs.

    from cmr_ray.train.budget import plan_steps, budget_steps
    per_epoch, epochs, total = plan_steps(cfg.train, n_train, world=1)
    total = budget_steps(cfg.train, per_epoch)   # the same total; SimCLR's budget too

The CLIP training loop (`cmr_ray.train.loop`) and the SimCLR baseline (`cmr_ray.eval.simclr`)
both budget from here, so a baseline gets exactly a trial's steps.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cmr_ray.config import TrainConfig


def plan_steps(tr: TrainConfig, n_train: int, world: int = 1) -> tuple[int, int, int]:
    """(steps per epoch, epochs, total optimizer steps) of a run.

    `train.steps` > 0 budgets the run in optimizer steps: every trial of a sweep then takes
    the same number of steps whatever its clip length or split size, and the last epoch
    stops when the budget is spent.  `train.steps: 0` keeps `train.epochs` full epochs."""
    batch, accum = tr.batch_size, tr.accum_steps
    per_epoch = (int(n_train) // world) // (batch * accum)
    if per_epoch < 1:
        raise ValueError(f"train split has {n_train} studies: fewer than train.workers × train.batch_size × "
                         f"train.accum_steps = {world * batch * accum}; lower train.batch_size")
    total = budget_steps(tr, per_epoch)
    return per_epoch, -(-total // per_epoch), total


def budget_steps(tr: TrainConfig, steps_per_epoch: int) -> int:
    """A run's optimizer steps: `train.steps` when set and > 0, else train.epochs passes of
    `steps_per_epoch` (also the SimCLR baseline's budget, `cmr_ray.eval.simclr`)."""
    return tr.steps if tr.steps > 0 else tr.epochs * int(steps_per_epoch)
