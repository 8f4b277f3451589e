"""Paper-style tables of a sweep, rendered as Markdown from MLflow alone, with the checks
that say whether the run reproduces the paper.

    from cmr_ray import tracking
    from cmr_ray.tune.report import render_report, report_checks
    print(render_report(tracking.client(), "views"))
    report_checks(tracking.client(), "views")   # {"spearman": 0.83, "n_rows": 10, ...}
    print(render_compare(tracking.client(), "views", run_a, run_b))   # paired A − B, every test metric

Rows are the FINISHED child runs of the experiment's latest sweep (or the given parent run):
trials (children without a `cmr.baseline` tag) in trial order, and the sweep's baselines
(children tagged `cmr.baseline` = `zeroshot` | `simclr`; none is fine).  Several parent runs
(`--run A --run B`) are read as one sweep: seeds run later on the same store join the rows of
the first (`sweep_runs`).

Table 4 (retrieval): Views (paper name) | Frames | T2V R@5 R@10 R@50 | V2T R@5 R@10 R@50 |
RSUM | Paper RSUM | Loss/ln B, from `test/t2v_r5` … `test/rsum` and `train/loss_ratio`
(final train loss / ln(global batch)); the Zero-shot baseline is the first row.  "Paper RSUM"
is the paper's figure for the same name and frames (`cmr_ray/paper_results.yaml`).  A run
tagged `cmr.collapsed=1` (it learned nothing) gets " ⚠ collapsed" after its name.  Under the
table: Spearman's ρ between our RSUM and the paper's over the trained rows that have a paper
figure, whether Zero-shot is the lowest row, the collapsed trials and the largest Loss/ln B.

Table 5 (probes on frozen video embeddings): Views | Frames | NICM, ICM, AMYL, HCM Acc/AUC/F1
| 5-class (ACDC) Acc/AUC/F1, from `probe/<label>_acc|_auc|_f1`; Zero-shot and SimCLR first.
Under it: 5-class accuracy of the full combo at 64 frames vs SimCLR vs Zero-shot, and
whether each beats the next by at least 0.05; then SimCLR's final NT-Xent loss / ln(2B - 1)
(`simclr/loss_ratio`), so that a SimCLR row that never learned is not read as a finding.

τ and seed columns appear when they differ between rows.  A missing value prints as "–".

After the transfer table (`report_transfer`), issue 20's tables (`report_external`): the
findings table of the best trial (zero-shot prompt, probe and prototype few-shot AUC per
finding, internal test split and external cohort side by side) and, for every row with
`external/` metrics, the drop internal → external of RSUM, 5-class accuracy and each
diagnosis's AUC.

Uncertainty (issue 19).  RSUM and the 5-class accuracy print with the run's own 95%
bootstrap interval, "222.0 [201.3, 240.1]" (`<key>_lo`, `<key>_hi`).  Every row keeps its
test studies' ranks and probe predictions as `eval/per_study.npz`; from those the report
resamples the test studies once (`RESAMPLES`, seed 0) and, with that one draw, gives
- Table 4's column "ΔRSUM vs best": each row's RSUM minus the best row's (highest RSUM),
  with its paired 95% interval; "≈" marks a row whose interval contains 0 (not
  distinguishable from the best).  The column appears when a row has per_study.npz;
- Spearman's ρ against the paper with its interval (each resample: every row's RSUM, then ρ);
- a figure, RSUM against frame count (full-combo rows) and against view combination with the
  intervals as error bars, logged to the parent run as `report/rsum_intervals.png`.
Rows without per_study.npz (evaluated before it was kept) or on other test studies than the
best row get "–" and a note.  `render_compare` prints the paired difference of every test and
probe metric of two runs (`cmr-ray report EXPERIMENT --compare RUN_A RUN_B`).

Seed repeats (issue 19, `sweep.seeds`).  Trials whose params differ only in `train.seed` are
one row (`seed_rows`: a `SeedRow` stands for them in every table, check and the figure).  A
row of several seeds shows the mean over its seeds of every metric (R@K, RSUM, probes,
Loss/ln B), the column "Seeds" (which seeds), and in Table 4 the column "RSUM SD": the
sample standard deviation (n − 1) of the seeds' RSUM, the spread between seeds.  Its RSUM
(and 5-class Acc) interval is the 95% bootstrap interval of the pooled evaluation: every
test study's hit indicators (rank ≤ K in each direction; for the probe, whether it was
classified right) are averaged over the seeds, then the test studies are resampled, the
same draw for every row.  It measures the test-set uncertainty of the seed-averaged row;
the spread between seeds is the SD column.  ΔRSUM vs best, "best" itself and Spearman's ρ
(and its interval) use these pooled rows.
"""
from __future__ import annotations

import contextlib
import math
import os
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from cmr_ray import paper, tracking
from cmr_ray.eval import bootstrap
from cmr_ray.train.collapse import LEARNED_MAX_RATIO as MAX_LOSS_RATIO
from cmr_ray.views import FULL_COMBO, paper_name, parse_combo

RETRIEVAL = [("T2V R@5", "test/t2v_r5"), ("T2V R@10", "test/t2v_r10"), ("T2V R@50", "test/t2v_r50"),
             ("V2T R@5", "test/v2t_r5"), ("V2T R@10", "test/v2t_r10"), ("V2T R@50", "test/v2t_r50"),
             ("RSUM", "test/rsum")]
PROBES = [("NICM", "nicm"), ("ICM", "icm"), ("AMYL", "amyl"), ("HCM", "hcm"), ("5-class", "acdc")]
PROBE_STATS = [("Acc", "acc"), ("AUC", "auc"), ("F1", "f1")]
BASELINES = {"zeroshot": paper.ZEROSHOT, "simclr": paper.SIMCLR}   # tag value -> row name
LOSS_RATIO = "train/loss_ratio"
SIMCLR_LOSS_RATIO = "simclr/loss_ratio"   # cmr_ray.tune.baselines.LOSS_RATIO
MIN_ACC_GAP = 0.05           # trained > SimCLR > Zero-shot, each by at least this (5-class accuracy)
COLLAPSED = " ⚠ collapsed"
PER_STUDY = "eval/per_study.npz"
RESAMPLES = 1000             # resamples of the report's paired intervals
SEED = 0
PLOT = "report/rsum_intervals.png"
INTERVAL_COLUMNS = ("probe/acdc_acc",)   # Table 5's columns printed with their interval (Table 4: RSUM)
SAME = " ≈"                  # the paired interval of ΔRSUM vs the best row contains 0
SEED_PARAM = "train.seed"    # runs whose params differ only here are one row (seed repeats)
SPREAD = "RSUM SD"           # Table 4's column: sample standard deviation of a row's seeds' RSUM
POOLED = ("test/rsum", "probe/acdc_acc")   # a seed row's metrics given the pooled interval


class SweepRuns(NamedTuple):
    parent: object
    trials: list            # FINISHED trial runs, in trial order
    baselines: dict         # "zeroshot" | "simclr" -> FINISHED run (absent when not logged)
    parents: tuple = ()     # every parent run read (several: `--run A --run B`); parent is the first


def _fmt(v, pct: bool = False, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{100 * v:.{digits}f}" if pct else f"{v:.{digits}f}"


def _fmt_iv(run, key: str, pct: bool = False) -> str:
    """The value with the run's own bootstrap interval when it logged one: "222.0 [201.3, 240.1]"."""
    m = run.data.metrics
    v, lo, hi = m.get(key), m.get(key + "_lo"), m.get(key + "_hi")
    if v is None or lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return _fmt(v, pct)
    return f"{_fmt(v, pct)} [{_fmt(lo, pct)}, {_fmt(hi, pct)}]"


def _fmt_diff(p) -> str:
    if p is None or not math.isfinite(p.diff):
        return "–"
    return f"{p.diff:+.1f} [{p.lo:+.1f}, {p.hi:+.1f}]" + ("" if p.distinguishable else SAME)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _baseline(run) -> str | None:
    return run.data.tags.get("cmr.baseline")


def row_name(run) -> str:
    """The Views cell without marks: "Zero-shot" / "SimCLR" for a baseline, else the paper
    name of the run's combo (the combo itself when the paper has none)."""
    b = _baseline(run)
    if b:
        return BASELINES.get(b, b)
    views = run.data.params.get("data.views")
    return paper_name(views) if views else "?"


def _frames(run):
    f = run.data.params.get("data.frames")
    try:
        return int(f)
    except (TypeError, ValueError):
        return None


def _label(run) -> str:
    f = run.data.params.get("data.frames", "?")
    return f"{row_name(run)} ({f} frame{'' if f == '1' else 's'})"


def _collapsed(run) -> bool:
    return run.data.tags.get("cmr.collapsed") == "1"


def _collapsed_mark(run) -> str:
    if not _collapsed(run):
        return ""
    seeds = runs_of(run)
    n = sum(_collapsed(s) for s in seeds)
    return COLLAPSED + (f" ({n} of {len(seeds)} seeds)" if len(seeds) > 1 else "")


def _row_keys(runs, mark_collapsed: bool = False) -> tuple[list[str], list[list[str]]]:
    """Identity columns: Views, Frames, plus τ when it varies, and the seed when it varies
    ("Seed") or always when a row pools several seeds ("Seeds": the row's seeds)."""
    p = [r.data.params for r in runs]
    head = ["Views", "Frames"]
    rows = [[row_name(r) + (_collapsed_mark(r) if mark_collapsed else ""), q.get("data.frames", "–")]
            for r, q in zip(runs, p)]
    seeded = is_seeded(runs)
    for label, key in (("τ", "model.temperature"), ("Seeds" if seeded else "Seed", SEED_PARAM)):
        if len({q.get(key) for q in p}) > 1 or (seeded and key == SEED_PARAM):
            head.append(label)
            for row, q in zip(rows, p):
                row.append(q.get(key, "–"))
    return head, rows


def _paper_rsum(run) -> float | None:
    return paper.rsum(row_name(run), _frames(run)) if _frames(run) is not None else None


def table4_runs(trials, baselines: dict | None = None) -> list:
    """Table 4's rows: the Zero-shot baseline (when logged), then the trials."""
    return ([baselines["zeroshot"]] if baselines and "zeroshot" in baselines else []) + list(trials)


def table4(trials, baselines: dict | None = None, unc: "Uncertainty | None" = None) -> str:
    runs = table4_runs(trials, baselines)
    head, ids = _row_keys(runs, mark_collapsed=True)
    paired = unc is not None and unc.best is not None and bool(unc.vs_best)
    seeded = is_seeded(runs)
    rows = []
    for i, r in zip(ids, runs):
        row = i + [_fmt(r.data.metrics.get(k)) for _, k in RETRIEVAL[:-1]] + [_fmt_iv(r, "test/rsum")]
        if seeded:
            row.append(_fmt(r.spread.get("test/rsum")) if isinstance(r, SeedRow) else "–")
        if paired:
            best = r.info.run_id == unc.best.info.run_id
            row.append("best" if best else _fmt_diff(unc.vs_best.get(r.info.run_id)))
        rows.append(row + [_fmt(_paper_rsum(r)), _fmt(r.data.metrics.get(LOSS_RATIO), digits=2)])
    return _table(head + [h for h, _ in RETRIEVAL] + ([SPREAD] if seeded else []) + (["ΔRSUM vs best"] if paired else [])
                  + ["Paper RSUM", "Loss/ln B"], rows)


def table5(trials, baselines: dict | None = None) -> str:
    runs = [baselines[b] for b in BASELINES if baselines and b in baselines] + list(trials)
    head, ids = _row_keys(runs)
    cols = [(f"{name} {s}", f"probe/{lab}_{sk}") for name, lab in PROBES for s, sk in PROBE_STATS]
    rows = [i + [_fmt_iv(r, k, pct=True) if k in INTERVAL_COLUMNS else _fmt(r.data.metrics.get(k), pct=True)
                 for _, k in cols] for i, r in zip(ids, runs)]
    return _table(head + [h for h, _ in cols], rows)


def _get_run(c, run_id: str):
    """The MLflow run `run_id`; LookupError (one line) when there is no such run."""
    try:
        return c.get_run(run_id)
    except Exception:  # noqa: BLE001 - MlflowException: no such run
        raise LookupError(f"run {run_id}: no such run in MLflow at {c.tracking_uri}") from None


def _run_in(c, exp, run_id: str, elsewhere):
    """The MLflow run `run_id` of experiment `exp`; LookupError (one line) when there is no such
    run, or `elsewhere(run)` as the message when it belongs to another experiment."""
    run = _get_run(c, run_id)
    if run.info.experiment_id != exp.experiment_id:
        raise LookupError(elsewhere(run))
    return run


def _parent(c, exp, experiment: str, run_id: str):
    return _run_in(c, exp, run_id, lambda run: f"run {run_id}: not a sweep of experiment '{experiment}'")


def sweep_runs(c, experiment: str, parent_id=None) -> SweepRuns:
    """(parent run, FINISHED trials in trial order, {baseline: latest FINISHED run}) of the
    experiment's latest sweep, or of `parent_id`.  `parent_id` may name several sweeps (a
    list): their trials are read as one sweep's, the first sweep's in its trial order, then
    the next's, so that seeds run later (`--set sweep.seeds=[1,2]` on the same store) join
    the rows of the first; a baseline comes from the first sweep that has it.  Two trials of
    one row with the same seed in different sweeps are refused (ValueError naming both)."""
    exp = c.get_experiment_by_name(experiment)
    if exp is None:
        raise LookupError(f"MLflow has no experiment '{experiment}' at {c.tracking_uri}")
    ids = [parent_id] if isinstance(parent_id, str) else list(parent_id or ())
    parents = [_parent(c, exp, experiment, i) for i in ids] or [tracking.latest_parent(c, exp.experiment_id)]
    if parents[0] is None:
        raise LookupError(f"experiment '{experiment}' has no sweep runs at {c.tracking_uri}")
    trials: list = []
    baselines: dict = {}
    for parent in parents:
        # every child, newest first (not child_runs' dict: one run per cmr.trial_key, which hand-made runs may lack)
        done = [r for r in tracking.children(c, exp.experiment_id, parent.info.run_id) if r.info.status == "FINISHED"]
        trials += sorted((r for r in done if not _baseline(r)), key=lambda r: int(r.data.tags.get("cmr.trial_index", 0)))
        for r in done:                   # newest first: the first seen of each kind wins
            if _baseline(r):
                baselines.setdefault(_baseline(r), r)
    if len(parents) > 1:
        seen: dict = {}
        for r in trials:
            key = (row_key(r), r.data.params.get(SEED_PARAM))
            if key in seen:
                raise ValueError(f"runs {seen[key].info.run_id} and {r.info.run_id} are the same row "
                                 f"({_label(r)}) with the same seed ({key[1]}): the sweeps overlap")
            seen[key] = r
    return SweepRuns(parents[0], trials, baselines, tuple(parents))


class SeedRow:
    """One table row made of several runs that differ only in `train.seed` (`seed_rows`).  It
    reads like an MLflow run: `data.metrics` holds the mean over the seeds of every metric
    they all logged (not their own `_lo`/`_hi`: `uncertainty` sets the pooled interval),
    `data.params` the first seed's with `train.seed` = "0, 1, 2", `data.tags` the first's
    with `cmr.collapsed` = "1" when any seed collapsed, `info` the first seed's (so its
    run id names the row).  `seeds`: the runs, by seed; `spread`: {metric: sample standard
    deviation over the seeds (n − 1)}."""

    def __init__(self, runs):
        from types import SimpleNamespace

        self.seeds = sorted(runs, key=_seed_order)
        first = self.seeds[0]
        self.info = first.info
        common = set.intersection(*(set(r.data.metrics) for r in self.seeds))
        common = sorted(k for k in common if not k.endswith(("_lo", "_hi")))
        values = {k: np.array([r.data.metrics[k] for r in self.seeds], dtype=np.float64) for k in common}
        metrics = {k: float(v.mean()) for k, v in values.items()}
        self.spread = {k: float(v.std(ddof=1)) for k, v in values.items()}
        params = dict(first.data.params)
        params[SEED_PARAM] = ", ".join(r.data.params.get(SEED_PARAM, "?") for r in self.seeds)
        tags = dict(first.data.tags)
        tags["cmr.collapsed"] = "1" if any(_collapsed(r) for r in self.seeds) else "0"
        self.data = SimpleNamespace(metrics=metrics, params=params, tags=tags)


def _seed_order(run):
    s = run.data.params.get(SEED_PARAM)
    return (0, int(s), "") if s is not None and s.isdigit() else (1, 0, str(s))


def runs_of(row) -> list:
    """The MLflow runs behind a table row: a `SeedRow`'s seeds, or the run itself."""
    return list(row.seeds) if isinstance(row, SeedRow) else [row]


def is_seeded(rows) -> bool:
    return any(isinstance(r, SeedRow) for r in rows)


def row_key(run) -> tuple:
    """What makes a row: every param but `train.seed` (the swept keys and everything else)."""
    return tuple(sorted((k, v) for k, v in run.data.params.items() if k != SEED_PARAM))


def seed_rows(trials) -> list:
    """The table rows of a sweep's trial runs: runs with the same params but `train.seed` are
    one `SeedRow` (when there are several), in the order of their first trial; the others
    stay as they are."""
    groups: dict = {}
    for r in trials:
        groups.setdefault(row_key(r), []).append(r)
    return [g[0] if len(g) == 1 else SeedRow(g) for g in groups.values()]


def _spearman(x: list[float], y: list[float]) -> float | None:
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    from scipy.stats import spearmanr

    rho = float(spearmanr(x, y).statistic)
    return rho if math.isfinite(rho) else None


def _is_full(run, frames: int) -> bool:
    views = run.data.params.get("data.views")
    try:
        return (views is not None and sorted(parse_combo(views)) == sorted(parse_combo(FULL_COMBO))
                and _frames(run) == frames)
    except ValueError:
        return False


def checks(trials, baselines: dict | None = None) -> dict:
    """The paper-reproduction checks over a sweep's rows (see `report_checks`); `trials` may hold
    `SeedRow`s (their means count; collapse and Loss/ln B are checked per seed)."""
    baselines = baselines or {}
    runs = [(s, isinstance(r, SeedRow)) for r in trials for s in runs_of(r)]
    pairs = [(r.data.metrics["test/rsum"], _paper_rsum(r)) for r in trials
             if r.data.metrics.get("test/rsum") is not None and _paper_rsum(r) is not None]
    rsums = [r.data.metrics["test/rsum"] for r in trials if r.data.metrics.get("test/rsum") is not None]
    zs = baselines.get("zeroshot")
    zs_rsum = zs.data.metrics.get("test/rsum") if zs is not None else None
    ratios = [r.data.metrics[LOSS_RATIO] for r, _ in runs if r.data.metrics.get(LOSS_RATIO) is not None]

    full = [r.data.metrics.get("probe/acdc_acc") for r in trials if _is_full(r, 64)]
    full = [v for v in full if v is not None]
    acc = {"trained": sum(full) / len(full) if full else None,
           "simclr": baselines["simclr"].data.metrics.get("probe/acdc_acc") if "simclr" in baselines else None,
           "zeroshot": zs.data.metrics.get("probe/acdc_acc") if zs is not None else None}
    order_ok = None
    if None not in acc.values():
        order_ok = (acc["trained"] - acc["simclr"] >= MIN_ACC_GAP - 1e-9
                    and acc["simclr"] - acc["zeroshot"] >= MIN_ACC_GAP - 1e-9)
    max_ratio = max(ratios) if ratios else None
    return {
        "spearman": _spearman([a for a, _ in pairs], [b for _, b in pairs]),
        "n_rows": len(pairs),
        "zeroshot_rsum": zs_rsum,
        "zeroshot_lowest": (zs_rsum < min(rsums)) if zs_rsum is not None and rsums else None,
        "n_trials": len(runs),
        "collapsed": [_label(r) + (f" seed {r.data.params.get(SEED_PARAM, '?')}" if multi else "")
                      for r, multi in runs if _collapsed(r)],
        "max_loss_ratio": max_ratio,
        "loss_ratio_ok": (max_ratio <= MAX_LOSS_RATIO) if max_ratio is not None and len(ratios) == len(runs) else None,
        "acc": acc,
        "acc_order_ok": order_ok,
        "simclr_loss_ratio": (baselines["simclr"].data.metrics.get(SIMCLR_LOSS_RATIO) if "simclr" in baselines else None),
    }


def report_checks(c, experiment: str, parent_id=None) -> dict:
    """The checks of a sweep as a dict: `spearman` (ρ of our RSUM vs the paper's, None under
    3 rows), `n_rows` (rows in it), `zeroshot_rsum`, `zeroshot_lowest` (None without a
    Zero-shot run), `n_trials`, `collapsed` (row names), `max_loss_ratio`, `loss_ratio_ok`
    (every trial's Loss/ln B at most 0.85; None when some trial has none), `acc` (5-class
    accuracy of trained = full combo at 64 frames, simclr, zeroshot) and `acc_order_ok`
    (trained > SimCLR > Zero-shot, each by at least 0.05; None when one is missing).  The
    seeds of a row count as one row (`seed_rows`: their mean), except in `n_trials`,
    `collapsed` and the Loss/ln B checks, which look at every run."""
    s = sweep_runs(c, experiment, parent_id)
    return checks(seed_rows(s.trials), s.baselines)

# ------------------------------------------------------------------ paired intervals (issue 19)

class Uncertainty(NamedTuple):
    best: object | None       # the Table 4 row with the highest test/rsum (None: no row has one)
    vs_best: dict             # run id -> bootstrap.Paired of test/rsum, row − best (rows that could be paired)
    spearman: tuple | None    # (lo, hi) of ρ vs the paper, from the same resamples; None when not computable
    n_studies: int            # test studies of the best row (0: no per_study.npz)
    resamples: int
    notes: list
    labels: dict = {}         # run id -> row label, for the notes


def _run_label(run) -> str:
    return row_name(run) if _baseline(run) else _label(run)


def _labels(runs) -> dict:
    """run id -> row label; rows of the same label get their τ and seed added."""
    base = {r.info.run_id: _run_label(r) for r in runs}
    counts = {v: list(base.values()).count(v) for v in base.values()}
    for r in runs:
        if counts[base[r.info.run_id]] > 1:
            q = r.data.params
            base[r.info.run_id] += f" τ={q.get('model.temperature', '?')} seed {q.get('train.seed', '?')}"
    return base


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


@contextlib.contextmanager
def _quiet_downloads():
    """No MLflow download progress bar (one per row would bury the tables)."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    old = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def fetch_per_study(c, run, dst) -> dict:
    """The run's `eval/per_study.npz` (`bootstrap.load_per_study`); LookupError (one line) when
    it has none, ValueError when it cannot be read."""
    rid = run.info.run_id
    name = f"run {rid} ({_run_label(run)})"
    try:
        listed = {a.path for a in c.list_artifacts(rid, "eval")}
    except Exception as e:  # noqa: BLE001 - an unreachable artifact store is one line, not a traceback
        raise LookupError(f"{name}: cannot list its artifacts ({_first_line(e)})") from None
    if PER_STUDY not in listed:
        raise LookupError(f"{name}: no {PER_STUDY} artifact (evaluated before per-study records were kept)")
    try:
        with _quiet_downloads():
            path = c.download_artifacts(rid, PER_STUDY, str(dst))
    except Exception as e:  # noqa: BLE001
        raise LookupError(f"{name}: cannot download {PER_STUDY} ({type(e).__name__})") from None
    return bootstrap.load_per_study(path, f"{name} {PER_STUDY}")


def _records(c, runs) -> tuple[dict, list, list]:
    """({row's run id: [record of each of its seeds]}, labels of rows lacking one, notes for
    unreadable ones).  A row counts only when every seed has a record on the same studies."""
    recs, missing, notes = {}, [], []
    with tempfile.TemporaryDirectory(prefix="cmr-report-") as tmp:
        for r in runs:
            got = []
            for s in runs_of(r):
                try:
                    got.append(fetch_per_study(c, s, Path(tmp) / s.info.run_id))
                except LookupError:
                    missing.append(_run_label(r) + (f" seed {s.data.params.get(SEED_PARAM, '?')}"
                                                    if isinstance(r, SeedRow) else ""))
                except ValueError as e:
                    notes.append(str(e))
            if len(got) != len(runs_of(r)):
                continue
            try:
                for g in got[1:]:
                    bootstrap.same_studies(got[0], g, (_run_label(r), "its other seeds"))
            except ValueError:
                notes.append(f"The seeds of {_run_label(r)} were evaluated on other test studies each: not pooled.")
                continue
            recs[r.info.run_id] = got
    return recs, missing, notes


def _pooled_resamples(recs: list, w: np.ndarray, keys: np.ndarray, probes=()) -> dict:
    """{metric: [B]} of a row pooled over its seeds' records: the mean over the seeds of each
    resample's metric, with the same resampled studies for every seed.  For R@K, RSUM and
    accuracy this is the metric of the per-study hit (or correct) indicators averaged over
    the seeds.  A probe is pooled when every seed has it."""
    tasks = [t for t in probes if all(f"{t}_index" in r for r in recs)]
    redrawn: dict = {}
    try:
        per = [bootstrap.record_resamples(r, w, keys, tasks, redrawn) for r in recs]
    except (ValueError, KeyError, IndexError):  # a probe's rows differ between the seeds: retrieval only
        per = [bootstrap.record_resamples(r, w, keys, probes=[]) for r in recs]
    return {k: np.mean([p[k] for p in per], axis=0) for k in per[0]}


def _pool_interval(row, pooled: dict) -> None:
    """Set a `SeedRow`'s `<metric>_lo|_hi` (POOLED metrics) from its pooled resamples."""
    for k in POOLED:
        if k in pooled and k in row.data.metrics:
            row.data.metrics[k + "_lo"], row.data.metrics[k + "_hi"] = bootstrap.percentile_interval(pooled[k])


def uncertainty(c, trials, baselines: dict | None = None, resamples: int = RESAMPLES, seed: int = SEED) -> Uncertainty:
    """Paired RSUM differences of Table 4's rows from the best row and the interval of ρ vs the
    paper, all from one draw of the best row's test studies.  `trials`: the rows (`seed_rows`);
    a `SeedRow` is paired by its pooled evaluation (`_pooled_resamples`, the same draw) and
    gets the pooled 95% interval as its `test/rsum_lo|_hi` and `probe/acdc_acc_lo|_hi`."""
    runs = [r for r in table4_runs(trials, baselines) if r.data.metrics.get("test/rsum") is not None]
    if not runs:
        return Uncertainty(None, {}, None, 0, resamples, [])
    best = max(runs, key=lambda r: r.data.metrics["test/rsum"])
    labels = _labels(runs)
    recs, missing, notes = _records(c, runs)
    if missing:
        n_missing = len({m.split(" seed ")[0] for m in missing})
        notes.append(f"No {PER_STUDY} (evaluated before per-study records were kept), so no paired interval: "
                     f"{n_missing} of {len(runs)} row(s)" + (f": {', '.join(missing)}." if len(missing) <= 4 else "."))
    ref = recs.get(best.info.run_id)
    keys = ref[0]["study_key"] if ref is not None else None
    w = bootstrap.draw_weights(len(keys), resamples, seed) if keys is not None else None
    rsum, other = {}, []
    for r in runs:
        rl = recs.get(r.info.run_id)
        if rl is None:
            continue
        paired = ref is not None
        if paired:
            try:
                bootstrap.same_studies(ref[0], rl[0], (_run_label(best), _run_label(r)))
            except ValueError:
                other.append(_run_label(r))
                paired = False
        if paired:
            pooled = _pooled_resamples(rl, w, keys, ["acdc"] if isinstance(r, SeedRow) else [])
            rsum[r.info.run_id] = pooled["test/rsum"]
        elif isinstance(r, SeedRow):  # its own draw of its own studies, for its pooled interval only
            own = rl[0]["study_key"]
            pooled = _pooled_resamples(rl, bootstrap.draw_weights(len(own), resamples, seed), own, ["acdc"])
        if isinstance(r, SeedRow):
            _pool_interval(r, pooled)
    if ref is None:
        if recs:
            notes.append(f"The best row, {_run_label(best)}, has no readable {PER_STUDY}: no paired differences.")
        return Uncertainty(best, {}, None, 0, resamples, notes, labels)
    if other:
        notes.append(f"Evaluated on other test studies than the best row, so not paired with it: {', '.join(other)}.")
    b = rsum[best.info.run_id]
    vs_best = {}
    for r in runs:
        if r.info.run_id in rsum and r is not best:
            lo, hi = bootstrap.percentile_interval(rsum[r.info.run_id] - b)
            v, vb = r.data.metrics["test/rsum"], best.data.metrics["test/rsum"]
            vs_best[r.info.run_id] = bootstrap.Paired(v, vb, v - vb, lo, hi)
    rho_rows = [(r, _paper_rsum(r)) for r in trials
                if r.data.metrics.get("test/rsum") is not None and _paper_rsum(r) is not None]
    spearman = None
    if len(rho_rows) >= 3 and all(r.info.run_id in rsum for r, _ in rho_rows):
        values = np.stack([rsum[r.info.run_id] for r, _ in rho_rows], axis=1)
        spearman = bootstrap.percentile_interval(bootstrap.spearman_resamples(values, [p for _, p in rho_rows]))
    elif len(rho_rows) >= 3:
        notes.append("Spearman ρ: no interval (a row with a paper figure lacks a paired per_study.npz).")
    return Uncertainty(best, vs_best, spearman, len(keys), resamples, notes, labels)


def seed_notes(rows) -> str:
    """Under Table 4 when a row pools several seeds: what its numbers are."""
    multi = [r for r in rows if isinstance(r, SeedRow)]
    if not multi:
        return ""
    counts = sorted({len(r.seeds) for r in multi})
    return (f"- Seed repeats: {len(multi)} row(s) pool {' or '.join(map(str, counts))} training seeds each (column "
            f"Seeds; runs that differ only in {SEED_PARAM}). R@K, RSUM, Loss/ln B and Table 5's figures are the means "
            f"over the seeds; {SPREAD} is the sample standard deviation (n − 1) of the seeds' RSUM, the spread between "
            "seeds. The interval beside a pooled row's RSUM (and 5-class Acc) is the 95% bootstrap interval of the "
            "pooled evaluation: each test study's hit indicators (rank ≤ K, both directions; correct or not) are "
            "averaged over the seeds, then the test studies are resampled (one draw for every row), so it is the "
            "test-set uncertainty of the seed-averaged row, not the spread between seeds. ΔRSUM vs best and "
            "Spearman's ρ use the pooled rows.")


def uncertainty_notes(unc: Uncertainty) -> str:
    lines = []
    if unc.vs_best:
        close = [unc.labels[rid] for rid, p in unc.vs_best.items() if not p.distinguishable]
        lines.append(f"ΔRSUM vs best: each row's RSUM minus the best row's ({unc.labels[unc.best.info.run_id]}), "
                     f"with its 95% paired bootstrap interval over the {unc.n_studies} test studies "
                     f"({unc.resamples} resamples, one draw of the same studies for every row).")
        lines.append(f"Not distinguishable from the best (marked {SAME.strip()}: the interval contains 0): "
                     + (", ".join(close) + "." if close else "none."))
    lines += unc.notes
    return "\n".join(f"- {x}" for x in lines)


def _yes(v) -> str:
    return "–" if v is None else ("yes" if v else "NO")


def table4_notes(ck: dict) -> str:
    rho = "–" if ck["spearman"] is None else f"{ck['spearman']:.2f}"
    if ck["spearman"] is not None and ck.get("spearman_ci"):
        lo, hi = ck["spearman_ci"]
        if math.isfinite(lo) and math.isfinite(hi):
            rho += f" [{lo:.2f}, {hi:.2f}] (95% bootstrap over the test studies)"
    lines = [f"Paper RSUM: {paper.citation()}, Table 4.",
             f"Spearman ρ, this run's RSUM vs the paper's: {rho} over {ck['n_rows']} trained row(s) with a paper figure.",
             "Zero-shot row the lowest: " + ("– (no Zero-shot run)" if ck["zeroshot_rsum"] is None
                                             else _yes(ck["zeroshot_lowest"])) + ".",
             f"Collapsed (loss stayed near ln B): {len(ck['collapsed'])} of {ck['n_trials']} trial(s)"
             + (f": {', '.join(ck['collapsed'])}." if ck["collapsed"] else "."),
             f"Largest Loss/ln B: {_fmt(ck['max_loss_ratio'], digits=2)} (at most {MAX_LOSS_RATIO} wanted: "
             f"{_yes(ck['loss_ratio_ok'])})."]
    return "\n".join(f"- {x}" for x in lines)


def table5_notes(ck: dict) -> str:
    a = ck["acc"]
    line = (f"- 5-class accuracy: trained (full combo, 64 frames) {_fmt(a['trained'], pct=True)}, "
            f"SimCLR {_fmt(a['simclr'], pct=True)}, Zero-shot {_fmt(a['zeroshot'], pct=True)}; "
            f"trained > SimCLR > Zero-shot, each by ≥ {100 * MIN_ACC_GAP:.0f} points: {_yes(ck['acc_order_ok'])}.")
    ratio = ck.get("simclr_loss_ratio")
    if ratio is not None and math.isfinite(ratio):
        from cmr_ray.train.collapse import ratio_state, what_happened

        state = ratio_state(ratio)
        line += (f"\n- SimCLR's final NT-Xent loss: {ratio:.2f} × ln(2B - 1) "
                 + ("(it learned)." if state == "learned" else
                    f"({what_happened(state)}: its row says little about image-only pretraining)."))
    return line


def readout_table(trials, baselines: dict | None = None) -> str:
    """What each tower carries of the synthetic cohort's draws (`readout/<name>`,
    `cmr_ray.eval.nuisance`), with notes; "" when no run logged read-outs."""
    from cmr_ray.eval.nuisance import PARAMETERS, PREFIX, REPORTED

    runs = [baselines[b] for b in BASELINES if baselines and b in baselines] + list(trials)
    if not any(k.startswith(PREFIX) for r in runs for k in r.data.metrics):
        return ""
    head, ids = _row_keys(runs)
    kinds = lambda kind: ", ".join(v for k, v in REPORTED.items() if PARAMETERS[k][0] == kind)  # noqa: E731
    rows = [i + [_fmt(r.data.metrics.get(PREFIX + k), digits=2) for k in REPORTED] for i, r in zip(ids, runs)]
    majority = next((r.data.metrics[PREFIX + "acdc_majority"] for r in runs
                     if PREFIX + "acdc_majority" in r.data.metrics), None)
    notes = (f"- Nuisance ({kinds('nuisance')}): drawn per study, in no impression. Anatomy ({kinds('anatomy')}): "
             "what the findings are measured from.\n"
             "- R² of a ridge read-out fitted on train+val, scored on test (0: the test mean); the ACDC class is "
             f"the probe's accuracy (majority class {_fmt(majority, digits=2)}). The MR grade (0 none to 3 severe) "
             "shows only on cine long-axis views in systole: a tower without them reads it only through the "
             f"diseases that carry it. Every parameter is logged as `{PREFIX}<name>`.\n"
             "- Read against Zero-shot, the untrained tower on the same split: a tower that gains on the anatomy "
             "and not on the nuisance learned what the impressions describe.")
    return _table(head + list(REPORTED.values()), rows) + "\n\n" + notes


def figure_data(trials, baselines: dict | None = None) -> dict:
    """`plots.rsum_intervals`' arguments from the rows' logged RSUM and its interval: full-combo
    trials by frame count (with the paper's full-combo figures), the other trials and the
    full combo at their frame counts by view combination, the baselines as references."""
    def point(r):
        m = r.data.metrics
        return m["test/rsum"], m.get("test/rsum_lo"), m.get("test/rsum_hi")

    rows = [r for r in trials if r.data.metrics.get("test/rsum") is not None and _frames(r) is not None]
    full = [r for r in rows if _is_full(r, _frames(r))]
    rest = [r for r in rows if r not in full]
    rest_frames = {_frames(r) for r in rest}
    by_views = [(f"{row_name(r)} · {_frames(r)}", *point(r), _paper_rsum(r))
                for r in rest + [r for r in full if _frames(r) in rest_frames]]
    full_name = paper_name(FULL_COMBO)
    return {"by_frames": [(_frames(r), *point(r)) for r in full],
            "by_views": by_views if rest else [],
            "paper": [(f, v) for n, f, v in paper.table4_rows() if n == full_name],
            "references": {BASELINES.get(b, b): point(r) for b, r in (baselines or {}).items()
                           if r.data.metrics.get("test/rsum") is not None}}


def log_figure(c, parent, trials, baselines: dict | None = None, copy_to=None) -> str:
    """Draw the RSUM figure, log it to the parent run as `PLOT`, and say where it went (one line)."""
    import shutil

    from cmr_ray.eval import plots

    with tempfile.TemporaryDirectory(prefix="cmr-report-") as tmp:
        path = plots.rsum_intervals(**figure_data(trials, baselines), path=Path(tmp) / Path(PLOT).name)
        if path is None:
            return "Figure: no row has an RSUM yet."
        where = []
        if copy_to:
            shutil.copyfile(path, copy_to)
            where.append(str(copy_to))
        try:
            c.log_artifact(parent.info.run_id, path, artifact_path=str(Path(PLOT).parent))
            where.insert(0, f"artifact {PLOT} of parent run {parent.info.run_id}")
        except Exception as e:  # noqa: BLE001 - the tables are still worth printing
            where.insert(0, f"not logged to the parent run ({_first_line(e)})")
    return "Figure, RSUM against frame count and view combination with 95% intervals: " + "; ".join(where) + "."


def render_report(c, experiment: str, parent_id=None, intervals: bool = True, figure: bool = True,
                  plot_path=None, resamples: int = RESAMPLES) -> str:
    """The report as Markdown.  intervals: pair the rows by their per_study.npz (ΔRSUM vs best,
    ρ's interval); figure: log the RSUM figure to the parent run (and copy it to plot_path)."""
    parent, trials, baselines, parents = sweep_runs(c, experiment, parent_id)
    names = ", ".join(BASELINES.get(b, b) for b in sorted(baselines, key=list(BASELINES).index)
                      if b in BASELINES) or "none"
    which = (f"parent run {parent.info.run_id}" if len(parents) < 2 else
             "parent runs " + " + ".join(p.info.run_id for p in parents) + " read as one sweep")
    status = ", ".join(sorted({p.info.status for p in parents}))
    head = (f"## Sweep '{experiment}' ({which}, {len(trials)} finished trial(s), "
            f"baselines: {names}, status {status})\n")
    if not trials and not baselines:
        return head + "\nNo finished trials yet.\n"
    rows = seed_rows(trials)       # a row's seeds pooled (sweep.seeds); otherwise the trials themselves
    if len(rows) < len(trials):
        head += f"\n{len(trials)} trial runs make {len(rows)} row(s): the seeds of a row are pooled (see the notes).\n"
    ck = checks(rows, baselines)
    unc = uncertainty(c, rows, baselines, resamples) if intervals else None
    if unc is not None:
        ck["spearman_ci"] = unc.spearman
    notes4 = "\n".join(x for x in (table4_notes(ck), seed_notes(rows), uncertainty_notes(unc) if unc is not None else "") if x)
    text = (head + "\n### Table 4: retrieval on the test split (R@K in %)\n\n" + table4(rows, baselines, unc)
            + "\n\n" + notes4
            + "\n\n### Table 5: linear probes on frozen video embeddings (Acc, AUC, F1 in %)\n\n"
            + table5(rows, baselines) + "\n\n" + table5_notes(ck) + "\n")
    readouts = readout_table(rows, baselines)
    if readouts:
        text += ("\n### What the towers encode: the synthetic cohort's draws read out of the video embeddings\n\n"
                 + readouts + "\n")
    from cmr_ray.tune.report_transfer import transfer_table

    text += ("\n### Transfer: 5-class linear probe on another dataset's cine SAX (the paper's ACDC table)\n\n"
             + transfer_table([baselines[b] for b in BASELINES if b in baselines] + list(trials)))
    from cmr_ray.tune.report_external import external_report

    more = external_report([baselines[b] for b in BASELINES if b in baselines] + list(rows),
                           parent.data.tags.get("cmr.best_run_id"))
    text += ("\n" + more) if more else ""
    if figure:
        text += "\n" + log_figure(c, parent, rows, baselines, plot_path) + "\n"
    return text


# ------------------------------------------------------------------ cmr-ray report --compare

def _cmp_fmt(key: str, v: float, signed: bool = False) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    v = 100 * v if key.startswith("probe/") else v
    return f"{v:+.1f}" if signed else f"{v:.1f}"


def render_compare(c, experiment: str, run_a: str, run_b: str, resamples: int = RESAMPLES, seed: int = SEED) -> str:
    """The paired difference A − B of every test and probe metric of two runs, from their
    per_study.npz (the same resampled studies for both), as Markdown.  A run of another
    experiment of the same store (e.g. `views_meanpool`'s row against `views`' row on the same
    store) is named with its experiment.  LookupError / ValueError (one line naming the run)
    when a run is missing, lacks per_study.npz, or was evaluated on other test studies."""
    exp = c.get_experiment_by_name(experiment)
    if exp is None:
        raise LookupError(f"MLflow has no experiment '{experiment}' at {c.tracking_uri}")
    runs = [_get_run(c, r) for r in (run_a, run_b)]
    if runs[0].info.run_id == runs[1].info.run_id:
        labels = [_run_label(runs[0])] * 2
    elif runs[0].info.experiment_id == runs[1].info.experiment_id:
        labels = list(_labels(runs).values())
    else:
        labels = [_run_label(r) for r in runs]
    with tempfile.TemporaryDirectory(prefix="cmr-compare-") as tmp:
        recs = [fetch_per_study(c, r, Path(tmp) / str(i)) for i, r in enumerate(runs)]
    names = [f"run {r.info.run_id} ({lab})" + ("" if r.info.experiment_id == exp.experiment_id else
                                               f" of experiment '{c.get_experiment(r.info.experiment_id).name}'")
             for r, lab in zip(runs, labels)]
    res, notes = bootstrap.paired_differences(*recs, resamples=resamples, seed=seed, names=names)
    rows = [[k, _cmp_fmt(k, p.a), _cmp_fmt(k, p.b), _cmp_fmt(k, p.diff, True),
             f"[{_cmp_fmt(k, p.lo, True)}, {_cmp_fmt(k, p.hi, True)}]" if math.isfinite(p.lo) else "–",
             "yes" if p.distinguishable else "no"] for k, p in res.items()]
    head = (f"## Paired comparison in '{experiment}'\n\n- A: {names[0]}\n- B: {names[1]}\n"
            f"- {len(recs[0]['study_key'])} test studies, both runs; {resamples} resamples drawing the same "
            f"studies for both (seed {seed}); 95% percentile interval of A − B.  R@K, RSUM and MedR/MeanR as "
            f"logged; probe Acc, AUC and F1 in %.\n")
    table = _table(["Metric", "A", "B", "A − B", "95% interval", "Interval excludes 0"], rows)
    return head + "\n" + table + "\n" + "".join(f"\n- {n}" for n in notes) + ("\n" if notes else "")
