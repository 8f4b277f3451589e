"""Paper-style tables of a sweep, rendered as Markdown from MLflow alone, with the checks
that say whether the run reproduces the paper.

    from cmr_ray import tracking
    from cmr_ray.tune.report import render_report, report_checks
    print(render_report(tracking.client(), "views"))
    report_checks(tracking.client(), "views")   # {"spearman": 0.83, "n_rows": 10, ...}

Rows are the FINISHED child runs of the experiment's latest sweep (or the given parent run):
trials (children without a `cmr.baseline` tag) in trial order, and the sweep's baselines
(children tagged `cmr.baseline` = `zeroshot` | `simclr`; none is fine).

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
whether each beats the next by at least 0.05.

τ and seed columns appear when they differ between rows.  A missing value prints as "–".
"""
from __future__ import annotations

import math
from typing import NamedTuple

from cmr_ray import paper, tracking
from cmr_ray.train.collapse import LEARNED_MAX_RATIO as MAX_LOSS_RATIO
from cmr_ray.views import FULL_COMBO, paper_name, parse_combo

RETRIEVAL = [("T2V R@5", "test/t2v_r5"), ("T2V R@10", "test/t2v_r10"), ("T2V R@50", "test/t2v_r50"),
             ("V2T R@5", "test/v2t_r5"), ("V2T R@10", "test/v2t_r10"), ("V2T R@50", "test/v2t_r50"),
             ("RSUM", "test/rsum")]
PROBES = [("NICM", "nicm"), ("ICM", "icm"), ("AMYL", "amyl"), ("HCM", "hcm"), ("5-class", "acdc")]
PROBE_STATS = [("Acc", "acc"), ("AUC", "auc"), ("F1", "f1")]
BASELINES = {"zeroshot": paper.ZEROSHOT, "simclr": paper.SIMCLR}   # tag value -> row name
LOSS_RATIO = "train/loss_ratio"
MIN_ACC_GAP = 0.05           # trained > SimCLR > Zero-shot, each by at least this (5-class accuracy)
COLLAPSED = " ⚠ collapsed"


class SweepRuns(NamedTuple):
    parent: object
    trials: list            # FINISHED trial runs, in trial order
    baselines: dict         # "zeroshot" | "simclr" -> FINISHED run (absent when not logged)


def _fmt(v, pct: bool = False, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{100 * v:.{digits}f}" if pct else f"{v:.{digits}f}"


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


def _row_keys(runs, mark_collapsed: bool = False) -> tuple[list[str], list[list[str]]]:
    """Identity columns: Views, Frames, plus τ / seed when they vary."""
    p = [r.data.params for r in runs]
    head = ["Views", "Frames"]
    rows = [[row_name(r) + (COLLAPSED if mark_collapsed and _collapsed(r) else ""), q.get("data.frames", "–")]
            for r, q in zip(runs, p)]
    for label, key in (("τ", "model.temperature"), ("Seed", "train.seed")):
        if len({q.get(key) for q in p}) > 1:
            head.append(label)
            for row, q in zip(rows, p):
                row.append(q.get(key, "–"))
    return head, rows


def _paper_rsum(run) -> float | None:
    return paper.rsum(row_name(run), _frames(run)) if _frames(run) is not None else None


def table4(trials, baselines: dict | None = None) -> str:
    runs = ([baselines["zeroshot"]] if baselines and "zeroshot" in baselines else []) + list(trials)
    head, ids = _row_keys(runs, mark_collapsed=True)
    rows = [i + [_fmt(r.data.metrics.get(k)) for _, k in RETRIEVAL]
            + [_fmt(_paper_rsum(r)), _fmt(r.data.metrics.get(LOSS_RATIO), digits=2)]
            for i, r in zip(ids, runs)]
    return _table(head + [h for h, _ in RETRIEVAL] + ["Paper RSUM", "Loss/ln B"], rows)


def table5(trials, baselines: dict | None = None) -> str:
    runs = [baselines[b] for b in BASELINES if baselines and b in baselines] + list(trials)
    head, ids = _row_keys(runs)
    cols = [(f"{name} {s}", f"probe/{lab}_{sk}") for name, lab in PROBES for s, sk in PROBE_STATS]
    rows = [i + [_fmt(r.data.metrics.get(k), pct=True) for _, k in cols] for i, r in zip(ids, runs)]
    return _table(head + [h for h, _ in cols], rows)


def sweep_runs(c, experiment: str, parent_id: str | None = None) -> SweepRuns:
    """(parent run, FINISHED trials in trial order, {baseline: latest FINISHED run}) of the
    experiment's latest sweep, or of `parent_id`."""
    exp = c.get_experiment_by_name(experiment)
    if exp is None:
        raise LookupError(f"MLflow has no experiment '{experiment}' at {c.tracking_uri}")
    parent = c.get_run(parent_id) if parent_id else tracking.latest_parent(c, exp.experiment_id)
    if parent is None:
        raise LookupError(f"experiment '{experiment}' has no sweep runs at {c.tracking_uri}")
    # every child, newest first (not child_runs' dict: one run per cmr.trial_key, which hand-made runs may lack)
    done = [r for r in tracking.children(c, exp.experiment_id, parent.info.run_id) if r.info.status == "FINISHED"]
    trials = [r for r in done if not _baseline(r)]
    trials.sort(key=lambda r: int(r.data.tags.get("cmr.trial_index", 0)))
    baselines: dict = {}
    for r in done:                       # newest first: the first seen of each kind wins
        if _baseline(r):
            baselines.setdefault(_baseline(r), r)
    return SweepRuns(parent, trials, baselines)


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
    """The paper-reproduction checks over a sweep's runs (see `report_checks`)."""
    baselines = baselines or {}
    pairs = [(r.data.metrics["test/rsum"], _paper_rsum(r)) for r in trials
             if r.data.metrics.get("test/rsum") is not None and _paper_rsum(r) is not None]
    rsums = [r.data.metrics["test/rsum"] for r in trials if r.data.metrics.get("test/rsum") is not None]
    zs = baselines.get("zeroshot")
    zs_rsum = zs.data.metrics.get("test/rsum") if zs is not None else None
    ratios = [r.data.metrics[LOSS_RATIO] for r in trials if r.data.metrics.get(LOSS_RATIO) is not None]

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
        "n_trials": len(trials),
        "collapsed": [_label(r) for r in trials if _collapsed(r)],
        "max_loss_ratio": max_ratio,
        "loss_ratio_ok": (max_ratio <= MAX_LOSS_RATIO) if max_ratio is not None and len(ratios) == len(trials) else None,
        "acc": acc,
        "acc_order_ok": order_ok,
    }


def report_checks(c, experiment: str, parent_id: str | None = None) -> dict:
    """The checks of a sweep as a dict: `spearman` (ρ of our RSUM vs the paper's, None under
    3 rows), `n_rows` (rows in it), `zeroshot_rsum`, `zeroshot_lowest` (None without a
    Zero-shot run), `n_trials`, `collapsed` (row names), `max_loss_ratio`, `loss_ratio_ok`
    (every trial's Loss/ln B at most 0.85; None when some trial has none), `acc` (5-class
    accuracy of trained = full combo at 64 frames, simclr, zeroshot) and `acc_order_ok`
    (trained > SimCLR > Zero-shot, each by at least 0.05; None when one is missing)."""
    s = sweep_runs(c, experiment, parent_id)
    return checks(s.trials, s.baselines)


def _yes(v) -> str:
    return "–" if v is None else ("yes" if v else "NO")


def table4_notes(ck: dict) -> str:
    rho = "–" if ck["spearman"] is None else f"{ck['spearman']:.2f}"
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
    return (f"- 5-class accuracy: trained (full combo, 64 frames) {_fmt(a['trained'], pct=True)}, "
            f"SimCLR {_fmt(a['simclr'], pct=True)}, Zero-shot {_fmt(a['zeroshot'], pct=True)}; "
            f"trained > SimCLR > Zero-shot, each by ≥ {100 * MIN_ACC_GAP:.0f} points: {_yes(ck['acc_order_ok'])}.")


def render_report(c, experiment: str, parent_id: str | None = None) -> str:
    parent, trials, baselines = sweep_runs(c, experiment, parent_id)
    names = ", ".join(BASELINES.get(b, b) for b in sorted(baselines, key=list(BASELINES).index)
                      if b in BASELINES) or "none"
    head = (f"## Sweep '{experiment}' (parent run {parent.info.run_id}, {len(trials)} finished trial(s), "
            f"baselines: {names}, status {parent.info.status})\n")
    if not trials and not baselines:
        return head + "\nNo finished trials yet.\n"
    ck = checks(trials, baselines)
    return (head + "\n### Table 4: retrieval on the test split (R@K in %)\n\n" + table4(trials, baselines)
            + "\n\n" + table4_notes(ck)
            + "\n\n### Table 5: linear probes on frozen video embeddings (Acc, AUC, F1 in %)\n\n"
            + table5(trials, baselines) + "\n\n" + table5_notes(ck) + "\n")
