"""Bootstrap intervals for every test metric: resample test studies, keep the per-study facts.

    from cmr_ray.eval.bootstrap import draw_weights, retrieval_intervals, probe_intervals
    w = draw_weights(n_test, resamples=1000, seed=0)          # [B, n] multiplicities
    iv = retrieval_intervals(t2v_ranks, v2t_ranks, w)         # {"rsum": (lo, hi), "t2v_r5": ...}
    iv, notes = probe_intervals(outcome, w[:, known_idx], seed=0)

A resample draws test studies with replacement; it is stored as how often each study was
drawn (`draw_weights`), so every metric of a resample is a weighted sum over studies and
all resamples are one matrix product: nothing is re-ranked or re-fitted.
- Retrieval: each study's rank in each direction is computed once on the fixed gallery;
  a resample averages its studies' hit indicators (R@k) and takes the weighted median of
  their ranks (MedR).  One resample draws the same studies for both directions, so RSUM's
  interval is that of the sum.
- Probes: from the fixed test predictions of a probe fitted once (`probe.ProbeOutcome`):
  accuracy and F1 from weighted confusion counts, AUC as the weighted Mann-Whitney
  statistic (ties count one half; one-vs-rest and macro-averaged for the 5-class task).
  A resample that lacks a class the test split has cannot give an AUC: it is redrawn (with
  the same generator, until it has every class) and the number of redraws is noted.

Intervals are percentile intervals (`LEVEL` = 95%: the 2.5th and 97.5th percentiles).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

LEVEL = 0.95
MAX_REDRAWS = 100  # rounds; each round redraws only the resamples still missing a class


def draw_weights(n: int, resamples: int, seed: int) -> np.ndarray:
    """[resamples, n] float32: how often each of n studies is drawn in each resample."""
    if n < 1 or resamples < 1:
        raise ValueError(f"bootstrap: need studies and resamples >= 1, got {n} and {resamples}")
    return _draw(np.random.default_rng([int(seed), 0xB007]), n, resamples)


def _draw(rng: np.random.Generator, n: int, resamples: int) -> np.ndarray:
    """[resamples, n] float32 multiplicities of `resamples` draws of n studies with replacement."""
    idx = rng.integers(0, n, size=(resamples, n))
    flat = (idx + np.arange(resamples)[:, None] * n).ravel()
    return np.bincount(flat, minlength=resamples * n).reshape(resamples, n).astype(np.float32)


def percentile_interval(values: np.ndarray) -> tuple[float, float]:
    """(lo, hi) of the finite values (NaN if there are none)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan")
    a = (1.0 - LEVEL) / 2.0
    lo, hi = np.quantile(v, [a, 1.0 - a])
    return float(lo), float(hi)


def weighted_median(values: np.ndarray, w: np.ndarray) -> np.ndarray:
    """np.median of each resample (rows of w: multiplicities summing to n) without expanding it."""
    order = np.argsort(values, kind="stable")
    sv = np.asarray(values, dtype=np.float64)[order]
    cum = np.cumsum(w[:, order], axis=1)
    n = cum[:, -1]
    lo_pos = np.floor((n + 1) / 2)  # 1-based positions of the middle value(s)
    hi_pos = np.floor(n / 2) + 1
    lo = sv[np.minimum(_first_at_least(cum, lo_pos), len(sv) - 1)]
    hi = sv[np.minimum(_first_at_least(cum, hi_pos), len(sv) - 1)]
    return (lo + hi) / 2.0


def _first_at_least(cum: np.ndarray, pos: np.ndarray) -> np.ndarray:
    return (cum < pos[:, None]).sum(axis=1)


def retrieval_resamples(t2v_ranks, v2t_ranks, w: np.ndarray) -> dict[str, np.ndarray]:
    """Each retrieval metric of `metrics_from_ranks` per resample: {key: [B]}."""
    from cmr_ray.eval.retrieval import KS, RSUM_KS

    out: dict[str, np.ndarray] = {}
    total = w.sum(axis=1)
    for name, ranks in (("t2v", t2v_ranks), ("v2t", v2t_ranks)):
        r = np.asarray(ranks, dtype=np.float64)
        if r.shape != (w.shape[1],):
            raise ValueError(f"bootstrap: {name} ranks have shape {r.shape}, the resamples {w.shape[1]} studies")
        hits = (r[:, None] <= np.asarray(KS)[None, :]).astype(np.float32)
        rec = 100.0 * (w @ hits) / total[:, None]
        for j, k in enumerate(KS):
            out[f"{name}_r{k}"] = rec[:, j]
        out[f"{name}_medr"] = weighted_median(r, w)
        out[f"{name}_meanr"] = (w @ r) / total
    out["rsum"] = sum(out[f"{p}_r{k}"] for p in ("t2v", "v2t") for k in RSUM_KS)
    return out


def retrieval_intervals(t2v_ranks, v2t_ranks, w: np.ndarray) -> dict[str, tuple[float, float]]:
    return {k: percentile_interval(v) for k, v in retrieval_resamples(t2v_ranks, v2t_ranks, w).items()}


def weighted_auc(score: np.ndarray, positive: np.ndarray, w: np.ndarray) -> np.ndarray:
    """ROC AUC of `score` for the boolean `positive` in each resample: the weighted share of
    (positive, negative) pairs ordered correctly, ties one half.  [B]; NaN where a resample
    has no positive or no negative."""
    s = np.asarray(score, dtype=np.float64)
    pos, neg = np.flatnonzero(positive), np.flatnonzero(~positive)
    if len(pos) == 0 or len(neg) == 0:
        return np.full(w.shape[0], np.nan)
    sp, sn = s[pos], s[neg]
    pair = (sp[:, None] > sn[None, :]).astype(np.float32) + 0.5 * (sp[:, None] == sn[None, :])
    wp, wn = w[:, pos], w[:, neg]
    num = ((wp @ pair) * wn).sum(axis=1)
    den = wp.sum(axis=1) * wn.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _f1(tp, fp, fn):
    den = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 2 * tp / den, np.nan)


def probe_resamples(outcome, w: np.ndarray) -> dict[str, np.ndarray]:
    """Acc, AUC and F1 of one probe per resample, as `probe.score_predictions` defines them."""
    y, pred = np.asarray(outcome.y_true), np.asarray(outcome.y_pred)
    total = w.sum(axis=1)
    acc = (w @ (y == pred).astype(np.float32)) / total
    if outcome.task != "acdc":
        pos = y == 1
        tp = w @ (pos & (pred == 1)).astype(np.float32)
        fp = w @ (~pos & (pred == 1)).astype(np.float32)
        fn = w @ (pos & (pred != 1)).astype(np.float32)
        return {"acc": acc, "auc": weighted_auc(outcome.score, pos, w), "f1": _f1(tp, fp, fn)}
    classes = list(outcome.classes)
    f1s, aucs = [], []
    for c in sorted(set(y.tolist()) | set(pred.tolist())):
        tp = w @ ((y == c) & (pred == c)).astype(np.float32)
        fp = w @ ((y != c) & (pred == c)).astype(np.float32)
        fn = w @ ((y == c) & (pred != c)).astype(np.float32)
        f1s.append(_f1(tp, fp, fn))
    for c in sorted(set(y.tolist())):
        if c in classes:
            aucs.append(weighted_auc(outcome.score[:, classes.index(c)], y == c, w))
    f1 = np.nanmean(np.stack(f1s), axis=0) if f1s else np.full(len(w), np.nan)
    all_in_fit = all(c in classes for c in set(y.tolist()))
    auc = np.mean(np.stack(aucs), axis=0) if aucs and all_in_fit else np.full(len(w), np.nan)
    return {"acc": acc, "auc": auc, "f1": f1}


def redraw_single_class(y, w: np.ndarray, seed: int) -> tuple[np.ndarray, int]:
    """`w` with every resample that misses one of y's classes redrawn until it has them all.
    Returns (weights, how many of the resamples were redrawn)."""
    y = np.asarray(y)
    classes = sorted(set(y.tolist()))
    if len(classes) < 2:
        return w, 0
    member = np.stack([(y == c) for c in classes], axis=1).astype(np.float32)  # [n, C]
    rng = np.random.default_rng([int(seed), 0x5EED])
    w = w.copy()
    redrawn = np.zeros(len(w), bool)
    for _ in range(MAX_REDRAWS):
        bad = np.flatnonzero(((w @ member) == 0).any(axis=1))
        if len(bad) == 0:
            return w, int(redrawn.sum())
        redrawn[bad] = True
        w[bad] = _draw(rng, w.shape[1], len(bad))
    raise ValueError(f"bootstrap: resamples still miss a class after {MAX_REDRAWS} rounds of redrawing "
                     f"(class counts {[int((y == c).sum()) for c in classes]})")


def probe_intervals(outcome, w: np.ndarray, seed: int = 0) -> tuple[dict[str, tuple[float, float]], list[str]]:
    """({acc|auc|f1: (lo, hi)}, notes) of one probe; `w` covers the outcome's test studies."""
    if outcome.y_pred is None or outcome.y_true is None or len(outcome.y_true) == 0:
        return {}, []
    w, redraws = redraw_single_class(outcome.y_true, w, seed)
    notes = []
    if redraws:
        notes.append(f"{outcome.task}: {redraws} bootstrap resample(s) lacked a class of the test split and were redrawn")
    return {k: percentile_interval(v) for k, v in probe_resamples(outcome, w).items()}, notes


def interval_metrics(ranks, outcomes: dict, test_labels: dict, resamples: int, seed: int) -> tuple[dict, list[str]]:
    """`test/<metric>_lo|_hi` for every retrieval metric and `probe/<task>_<metric>_lo|_hi`
    for every probe, from one set of resamples of the test studies (each probe uses the
    rows of the studies with a known label).  Returns (metrics, notes)."""
    from cmr_ray.eval.probe import known

    w = draw_weights(len(ranks[0]), resamples, seed)
    out: dict[str, float] = {}
    for k, (lo, hi) in retrieval_intervals(*ranks, w).items():
        out[f"test/{k}_lo"], out[f"test/{k}_hi"] = lo, hi
    notes: list[str] = []
    for task, outcome in outcomes.items():
        idx, _ = known(test_labels, task)
        iv, more = probe_intervals(outcome, w[:, idx], seed)
        notes += more
        for k, (lo, hi) in iv.items():
            out[f"probe/{task}_{k}_lo"], out[f"probe/{task}_{k}_hi"] = lo, hi
    return out, notes


def per_study_record(study_keys, ranks, outcomes: dict, test_labels: dict) -> dict[str, np.ndarray]:
    """What a later paired comparison needs from one run, as arrays for `np.savez_compressed`:
    the test studies' keys, their ranks in both directions and every probe's predictions
    (`<task>_index`: the rows of the studies with a known label, in study_key order)."""
    from cmr_ray.eval.probe import known

    rec = {"study_key": np.asarray(study_keys, dtype=str),
           "t2v_rank": np.asarray(ranks[0], np.int32), "v2t_rank": np.asarray(ranks[1], np.int32)}
    for task, o in outcomes.items():
        if o.y_pred is None:
            continue
        rec[f"{task}_index"] = known(test_labels, task)[0].astype(np.int32)
        rec[f"{task}_true"] = np.asarray(o.y_true).astype(str)
        rec[f"{task}_pred"] = np.asarray(o.y_pred).astype(str)
        rec[f"{task}_score"] = np.asarray(o.score, np.float32)
        rec[f"{task}_classes"] = np.asarray(o.classes).astype(str)
    return rec


# ------------------------------------------------------------------ paired comparisons

class Paired(NamedTuple):
    a: float      # run A's value on all its test studies
    b: float      # run B's value
    diff: float   # a - b
    lo: float     # percentile interval of (a - b) over resamples drawing the same studies for both
    hi: float

    @property
    def distinguishable(self) -> bool:
        """The interval excludes 0 (False where it is undefined)."""
        return bool(np.isfinite(self.lo) and np.isfinite(self.hi) and (self.lo > 0 or self.hi < 0))


def load_per_study(path, name: str | None = None) -> dict[str, np.ndarray]:
    """A run's `per_study.npz` (`per_study_record`) as a dict; one line naming it if it is not one."""
    name = name or str(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            rec = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise ValueError(f"{name}: not a readable per_study.npz ({type(e).__name__}: {e})") from None
    missing = [k for k in ("study_key", "t2v_rank", "v2t_rank") if k not in rec]
    if missing:
        raise ValueError(f"{name}: per_study.npz lacks {', '.join(missing)}")
    keys = rec["study_key"]
    if len(set(keys.tolist())) != len(keys):
        raise ValueError(f"{name}: per_study.npz lists a test study twice")
    return rec


def probe_tasks_of(rec: dict) -> list[str]:
    return sorted(k[: -len("_index")] for k in rec if k.endswith("_index"))


def _positions(rec: dict, keys: np.ndarray) -> np.ndarray:
    """Row of each of `keys` in rec (keys must be rec's study set)."""
    where = {k: i for i, k in enumerate(rec["study_key"].tolist())}
    return np.array([where[k] for k in keys.tolist()], dtype=np.int64)


def _probe_view(rec: dict, task: str, keys: np.ndarray):
    """(positions in `keys` of the task's studies in ascending order, an outcome of rec's rows in that order)."""
    from types import SimpleNamespace

    ref = {k: i for i, k in enumerate(keys.tolist())}
    idx = rec[f"{task}_index"].astype(np.int64)
    at = np.array([ref[k] for k in rec["study_key"][idx].tolist()], dtype=np.int64)
    rows = np.argsort(at, kind="stable")  # the task's arrays in ascending position in `keys`
    y, pred = rec[f"{task}_true"][rows], rec[f"{task}_pred"][rows]
    classes = rec[f"{task}_classes"].tolist()
    if task != "acdc":  # saved as text; binary probes score int 0/1 (probe.known)
        y, pred, classes = y.astype(np.int64), pred.astype(np.int64), [int(c) for c in classes]
    outcome = SimpleNamespace(task=task, y_true=y, y_pred=pred, score=rec[f"{task}_score"][rows], classes=classes)
    return at[rows], outcome


def same_studies(a: dict, b: dict, names=("A", "B")) -> None:
    """Raise one line unless the two records hold the same test studies."""
    ka, kb = set(a["study_key"].tolist()), set(b["study_key"].tolist())
    if ka != kb:
        raise ValueError(f"{names[0]} and {names[1]}: not the same test studies ({len(ka)} and {len(kb)}, "
                         f"{len(ka ^ kb)} in only one); a paired difference needs the same studies")


def record_resamples(rec: dict, w: np.ndarray, keys: np.ndarray, probes=None, redrawn: dict | None = None,
                     seed: int = 0) -> dict:
    """Every test metric of one run per resample, as logged (`test/<metric>`, `probe/<task>_<metric>`):
    {key: [B]}.  `w` [B, len(keys)] weighs the studies `keys` (rec's study set, any order);
    `probes`: the tasks to score (None: all in rec).  `redrawn` ({task: weights}) holds each
    probe's weights after redrawing single-class resamples, so a second run reuses the first's."""
    pos = _positions(rec, keys)
    out = {f"test/{k}": v for k, v in retrieval_resamples(rec["t2v_rank"][pos], rec["v2t_rank"][pos], w).items()}
    for task in (probe_tasks_of(rec) if probes is None else probes):
        at, outcome = _probe_view(rec, task, keys)
        if redrawn is not None and task in redrawn:
            wt = redrawn[task]
        else:
            wt, _ = redraw_single_class(outcome.y_true, w[:, at], seed)
            if redrawn is not None:
                redrawn[task] = wt
        out.update({f"probe/{task}_{k}": v for k, v in probe_resamples(outcome, wt).items()})
    return out


def paired_differences(a: dict, b: dict, resamples: int = 1000, seed: int = 0, names=("A", "B"),
                       probes: bool = True) -> tuple[dict[str, Paired], list[str]]:
    """The paired bootstrap of run A minus run B over their common test studies: ({key: Paired}, notes).

    `a`, `b`: per-study records (`per_study_record` / `load_per_study`) of two runs on the
    same test studies, matched by study key (ValueError, one line, if the sets differ).  Each
    resample draws the same studies for both runs and the difference of each test metric is
    taken within the resample; identical runs give [0, 0].  Probes: the tasks both runs have
    (probes=False: retrieval only); a task whose labels differ between the runs is refused."""
    same_studies(a, b, names)
    keys = a["study_key"]
    tasks = []
    notes: list[str] = []
    if probes:
        ta, tb = probe_tasks_of(a), probe_tasks_of(b)
        tasks = [t for t in ta if t in tb]
        for t in sorted(set(ta) ^ set(tb)):
            notes.append(f"probe {t}: only in {names[0] if t in ta else names[1]}; not compared")
        for t in tasks:
            (pa, oa), (pb, ob) = _probe_view(a, t, keys), _probe_view(b, t, keys)
            if not (np.array_equal(pa, pb) and np.array_equal(oa.y_true, ob.y_true)):
                raise ValueError(f"{names[0]} and {names[1]}: probe {t} has other test labels in each run; "
                                 "they were not evaluated on the same studies")
    w = draw_weights(len(keys), resamples, seed)
    ones = np.ones((1, len(keys)), np.float32)
    redrawn: dict = {}
    ra, rb = (record_resamples(r, w, keys, tasks, redrawn, seed) for r in (a, b))
    va, vb = record_resamples(a, ones, keys, tasks), record_resamples(b, ones, keys, tasks)
    out = {}
    for k in ra:
        with np.errstate(invalid="ignore"):
            lo, hi = percentile_interval(ra[k] - rb[k])
        x, y = float(va[k][0]), float(vb[k][0])
        out[k] = Paired(x, y, x - y, lo, hi)
    return out, notes


def spearman_resamples(values: np.ndarray, reference) -> np.ndarray:
    """Spearman's ρ of each resample's row values against fixed reference values: values [B, R]
    (R rows), reference [R] -> [B] (NaN where a resample's values are all tied)."""
    from scipy.stats import rankdata

    rv = rankdata(np.asarray(values, np.float64), axis=1)
    rr = rankdata(np.asarray(reference, np.float64))
    rv = rv - rv.mean(axis=1, keepdims=True)
    rr = rr - rr.mean()
    den = np.sqrt((rv ** 2).sum(axis=1) * (rr ** 2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rv @ rr) / den, np.nan)


def spearman_interval(records: list[dict], reference, resamples: int = 1000, seed: int = 0,
                      names=None) -> tuple[float, float]:
    """95% interval of Spearman's ρ between the rows' RSUM and `reference` (e.g. the paper's),
    resampling the test studies the rows share (the same draw for every row) and recomputing
    each row's RSUM, then ρ, in each resample."""
    names = names or [f"row {i + 1}" for i in range(len(records))]
    for r, n in zip(records[1:], names[1:]):
        same_studies(records[0], r, (names[0], n))
    keys = records[0]["study_key"]
    w = draw_weights(len(keys), resamples, seed)
    rsum = np.stack([record_resamples(r, w, keys, probes=[])["test/rsum"] for r in records], axis=1)
    return percentile_interval(spearman_resamples(rsum, reference))
