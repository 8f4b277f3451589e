"""Expanding an experiment's `sweep` section into trials (pure: no Ray, no MLflow).

    from cmr_ray.config import load_config
    from cmr_ray.tune.grid import expand_trials
    cfg = load_config("experiments/views.yaml")
    for t in expand_trials(cfg, src="experiments/views.yaml"):
        print(t.key, t.name, t.overrides)

`sweep.trials` is a list of explicit override dicts; `sweep.grid` maps dotted keys to
lists of values and is swept as a cartesian product.  Both together: every trial is
combined with every grid point.  Neither: one trial with the base config.
`sweep.search` maps dotted keys to Ray Tune distributions (`{loguniform: [0.01, 0.2]}`,
`uniform`, `randint`, `choice`: cmr_ray/config/search.py); it is drawn `sweep.num_samples`
times with Tune's own samplers, seeded by `sweep.search_seed`, and every draw is combined
with every trial and grid point.  The draws are made here, up front, so a sampled trial is a
trial like any other: a stable key, a child run in MLflow before it starts, and `--resume`
draws the same values again and runs only the unfinished ones.
`sweep.seeds` (a list of distinct training seeds, default []: the config's `train.seed`
only) repeats every such row once per seed with `train.seed` set to it: N rows × S seeds
trials, a row's seeds next to each other, on the same cohort and split (only the training
seed changes).  `Trial.row` says which row a trial repeats; `cmr-ray report` pools a row's
seeds (`cmr_ray.tune.report.seed_rows`).

Each trial carries its resolved, validated config, a display name built from the
paper's view name, frames, temperature and seed (`CINE_sax | 8 frames | τ=0.05 | seed 0`),
and a `key`: a short hash of the resolved config.  The key is what `--resume` matches
on, so it changes whenever anything that affects the trial changes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math

from cmr_ray.config import Config, ConfigError, apply_overrides, flatten
from cmr_ray.views import paper_name

NAME_KEYS = ("data.views", "data.frames", "model.temperature", "train.seed")


@dataclasses.dataclass(frozen=True)
class Trial:
    index: int          # position in the sweep, 0-based
    key: str            # hash of the resolved config; stable across runs of the same sweep
    name: str           # human name, e.g. "CINE_lax-sax + LGE_sax | 8 frames | τ=0.05 | seed 0"
    overrides: dict     # the dotted keys this trial sets over the experiment's config
    cfg: Config           # resolved, validated config
    row: int = -1       # the row (trial × grid point) this trial repeats with its seed; -1: unset


def config_key(cfg: Config) -> str:
    """A short stable hash of everything that shapes a trial (data, model, train, eval)."""
    blob = json.dumps(flatten(cfg), sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def trial_name(cfg: Config, extra: dict | None = None) -> str:
    """`<paper view name> | <frames> frames | τ=<temperature> | seed <seed>`, plus any other
    overridden keys so names stay unique within a sweep."""
    parts = [
        paper_name(cfg.data.views),
        f"{cfg.data.frames} frame{'s' if cfg.data.frames != 1 else ''}",
        f"τ={cfg.model.temperature:g}",
        f"seed {cfg.train.seed}",
    ]
    parts += [f"{k}={v}" for k, v in sorted((extra or {}).items()) if k not in NAME_KEYS]
    return " | ".join(parts)


def _grid_points(grid: dict) -> list[dict]:
    if not grid:
        return [{}]
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


SEED_KEY = "train.seed"


def seed_overrides(cfg: Config, src: str = "config") -> list[dict]:
    """[{train.seed: s} for each of `sweep.seeds`], or [{}] when it is empty (one run per row).
    A one-line ConfigError naming `sweep.seeds` when it is not a list of distinct whole
    numbers >= 0 (checked on load too), or when a trial or the grid also sets train.seed."""
    sweep = cfg.sweep
    seeds = sweep.seeds
    if not isinstance(seeds, list) or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ConfigError(f"{src}: key 'sweep.seeds' expected a list of whole numbers >= 0, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{src}: key 'sweep.seeds' expected distinct seeds, got {seeds!r}")
    if not seeds:
        return [{}]
    if SEED_KEY in sweep.grid or any(SEED_KEY in t for t in sweep.trials):
        raise ConfigError(f"{src}: key 'sweep.seeds' and a trial or 'sweep.grid' both set {SEED_KEY}; set it in one place")
    return [{SEED_KEY: s} for s in seeds]


def tune_domain(spec: dict):
    """The Ray Tune search space of one `sweep.search` spec: `{loguniform: [lo, hi]}` ->
    `tune.loguniform(lo, hi)`, and likewise uniform, randint, choice."""
    from ray import tune

    (name, args), = spec.items()
    if name == "choice":
        return tune.choice(list(args))
    if name == "randint":
        return tune.randint(int(args[0]), int(args[1]))
    return getattr(tune, name)(float(args[0]), float(args[1]))


def _plain(x):
    """A drawn value as the config holds it: Python numbers (floats to 4 significant digits,
    so names, MLflow params and keys read well), not numpy scalars."""
    import numpy as np

    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float):
        x = float(f"{x:.4g}")
    return x


def search_points(cfg: Config) -> list[dict]:
    """`sweep.num_samples` draws of `sweep.search` ({dotted key: value} each), by Tune's own
    samplers with a RandomState seeded by `sweep.search_seed`, keys in sorted order: the same
    file always draws the same values.  [{}] when there is no search."""
    search = cfg.sweep.search
    if not search:
        return [{}]
    import numpy as np

    rng = np.random.RandomState(cfg.sweep.search_seed)
    domains = {k: tune_domain(search[k]) for k in sorted(search)}
    return [{k: _plain(d.sample(random_state=rng)) for k, d in domains.items()} for _ in range(cfg.sweep.num_samples)]


def expand_trials(cfg: Config, src: str = "config") -> list[Trial]:
    """The sweep's trials, in order: each draw of `sweep.search` × each explicit trial × each
    grid point (a row) × each of `sweep.seeds` (a row's seeds next to each other)."""
    sweep = cfg.sweep
    explicit = sweep.trials or [{}]
    points = _grid_points(sweep.grid)
    seeds = seed_overrides(cfg, src)
    draws = search_points(cfg)
    trials: list[Trial] = []
    seen: dict[str, int] = {}
    row = 0
    for d, drawn in enumerate(draws):
        for i, base in enumerate(explicit):
            for point in points:
                for where, keys in ((f"sweep.trials[{i}]' and 'sweep.grid", set(base) & set(point)),
                                    (f"sweep.search' and 'sweep.trials[{i}]", set(drawn) & set(base)),
                                    ("sweep.search' and 'sweep.grid", set(drawn) & set(point))):
                    if keys:
                        raise ConfigError(f"{src}: key '{where}' both set {', '.join(sorted(keys))}; "
                                          "set it in one place")
                for seed in seeds:
                    overrides = {**drawn, **base, **point, **seed}
                    where = f"{src}: sweep trial {len(trials)} ({overrides})"
                    resolved = apply_overrides(cfg, overrides, src=where)
                    key = config_key(resolved)
                    if key in seen:
                        hint = (" (sweep.search drew the same values twice: fewer sweep.num_samples, or "
                                "sweep.grid for a few discrete values)" if len(draws) > 1 else "")
                        raise ConfigError(f"{src}: key 'sweep' gives the same trial twice "
                                          f"(trials {seen[key]} and {len(trials)}: {overrides}){hint}")
                    seen[key] = len(trials)
                    trials.append(Trial(len(trials), key, trial_name(resolved, overrides), overrides, resolved, row))
                row += 1
    return trials


def swept_keys(trials: list[Trial]) -> list[str]:
    """The dotted keys a sweep's trials set, the naming keys first (`data.views`,
    `data.frames`, `model.temperature`, `train.seed`, always there), then the others sorted:
    the hyperparameter columns Tune's `param_space` carries."""
    extra = sorted({k for t in trials for k in t.overrides} - set(NAME_KEYS))
    return [*NAME_KEYS, *extra]


def trial_values(trial: Trial, keys: list[str]) -> dict:
    """{dotted key: the trial's resolved value} for `keys` (plain Python values)."""
    from cmr_ray.config import thaw

    return {k: thaw(trial.cfg[k.partition(".")[0]][k.partition(".")[2]]) for k in keys}


class TrialValue:
    """`tune.sample_from(TrialValue(values, "data.frames"))`: in a Tune `param_space` whose
    `key` is a grid over trial keys, the value of one swept key for that trial.  (A class,
    not a lambda, so Tune can pickle the param space; it takes the config dict directly.)"""

    def __init__(self, values: dict, key: str):
        self.values, self.key = values, key

    def __call__(self, config) -> object:
        return self.values[config["key"]][self.key]


def sweep_key(trials: list[Trial]) -> str:
    """A hash of the whole sweep (its trials' keys, in order): what `--resume` matches."""
    return hashlib.sha1("|".join(t.key for t in trials).encode()).hexdigest()[:12]


def trial_resources(cfg: Config) -> dict:
    """What one trial holds while it runs: its driver function plus its Train workers."""
    train, sweep = cfg.train, cfg.sweep
    need = {"CPU": sweep.trial_cpus + train.workers * train.cpus_per_worker}
    if train.use_gpu:
        need["GPU"] = float(train.workers)
    return need


DATA_CPUS = 2.0  # CPUs per running trial left free for its Ray Data list/read/sample tasks (they run
                 # outside the trial's reservation; with one free CPU, a streaming list-files task
                 # holds it and the read waits forever)


def max_concurrent(cfg: Config, cluster: dict, n_trials: int) -> int:
    """`sweep.max_concurrent`, or (when 0) how many trials the cluster's CPUs/GPUs fit, at least 1.
    Each running trial also leaves `DATA_CPUS` free for the Ray Data tasks feeding it: a
    cluster whose CPUs are all held by trials starves their input pipelines (a local Ray
    started by the sweep adds that many logical CPUs: `local_cpus`)."""
    n = cfg.sweep.max_concurrent
    if n <= 0:
        need = trial_resources(cfg)
        need["CPU"] = need.get("CPU", 0.0) + DATA_CPUS
        fits = [math.floor(cluster.get(r, 0.0) / amount + 1e-9) for r, amount in need.items() if amount > 0]
        n = min(fits) if fits else n_trials
    return max(1, min(n, n_trials))


def local_cpus(physical: int | None = None) -> int:
    """Logical CPUs for a local Ray started by the sweep: the machine's cores for the trials,
    plus `DATA_CPUS` scheduling slots for Ray Data's (mostly I/O-bound) tasks."""
    import os

    return int(physical or os.cpu_count() or 1) + int(DATA_CPUS)
