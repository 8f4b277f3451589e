"""`sweep.search`: distributions over dotted keys, sampled into trials (pure: no Ray).

    sweep:
      search:
        model.temperature: {loguniform: [0.01, 0.2]}    # log-uniform in [0.01, 0.2)
        train.lr: {uniform: [5.0e-4, 2.0e-3]}           # uniform in [lo, hi)
        data.frames: {randint: [4, 17]}                  # a whole number in [lo, hi), as Tune's randint
        data.views: {choice: ["cine:sax", "cine:4ch+sax"]}
      num_samples: 6        # draws of the whole search space (each combined with every trial/grid row)
      search_seed: 0        # the draws' seed: the same file gives the same trials (so --resume finds them)

The names and their meaning are Ray Tune's (`tune.loguniform`, `tune.uniform`,
`tune.randint`, `tune.choice`); `cmr_ray.tune.grid.search_points` draws them with Tune's own
samplers.  This module only checks a spec against the key it samples, so that a bad range
is one line on load, like any other bad value.
"""
from __future__ import annotations

from typing import Any

DISTRIBUTIONS = ("loguniform", "uniform", "randint", "choice")
NUMERIC = {"loguniform": ("float",), "uniform": ("float",), "randint": ("int", "float")}


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def spec_problem(spec: Any, kind: str) -> str | None:
    """None when `spec` is a valid distribution for a key of `kind` (int, float, choice, ...),
    else what was expected (the caller names the file and key)."""
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        return "one distribution: {loguniform|uniform: [lo, hi]}, {randint: [lo, hi]} or {choice: [values]}"
    (name, args), = spec.items()
    if name == "choice":
        if not isinstance(args, list) or not args:
            return "choice: a non-empty list of values"
        return None
    if kind not in NUMERIC[name]:
        allowed = " or ".join(NUMERIC[name])
        instead = "randint or choice" if kind == "int" else "choice"
        return f"{name} only for a {allowed} key (this key is {kind}; use {instead})"
    if not (isinstance(args, list) and len(args) == 2 and all(_number(a) for a in args)):
        return f"{name}: [lo, hi], two numbers"
    lo, hi = args
    if not lo < hi:
        return f"{name}: [lo, hi] with lo < hi"
    if name == "loguniform" and lo <= 0:
        return "loguniform: [lo, hi] with lo > 0"
    if name == "randint" and not (float(lo).is_integer() and float(hi).is_integer()):
        return "randint: [lo, hi], whole numbers (hi excluded)"
    return None


def values_to_check(spec: dict) -> list:
    """The values of a valid spec that bound what it can draw (each is checked against the
    key's own rules on load): a choice's values, a range's ends (randint's last value)."""
    (name, args), = spec.items()
    if name == "choice":
        return list(args)
    if name == "randint":
        return [int(args[0]), int(args[1]) - 1]
    return [float(args[0]), float(args[1])]
