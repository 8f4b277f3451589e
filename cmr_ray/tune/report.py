"""Paper-style tables of a sweep, rendered as Markdown from MLflow alone.

    from cmr_ray import tracking
    from cmr_ray.tune.report import render_report
    print(render_report(tracking.client(), "views"))

Table 4 (retrieval): Views (paper name) | Frames | T2V R@5 R@10 R@50 | V2T R@5 R@10 R@50 | RSUM,
from the child runs' `test/t2v_r5` … `test/rsum`.  Table 5 (probes on frozen video
embeddings): Views | Frames | NICM, ICM, AMYL, HCM Acc/AUC/F1 | 5-class (ACDC) Acc/AUC/F1,
from `probe/<label>_acc|_auc|_f1`.  Rows are the finished child runs of the experiment's
latest sweep (or the given parent run), in trial order.  τ and seed columns appear when
they differ between rows.  A missing value prints as "–".
"""
from __future__ import annotations

from cmr_ray import tracking
from cmr_ray.views import paper_name

RETRIEVAL = [("T2V R@5", "test/t2v_r5"), ("T2V R@10", "test/t2v_r10"), ("T2V R@50", "test/t2v_r50"),
             ("V2T R@5", "test/v2t_r5"), ("V2T R@10", "test/v2t_r10"), ("V2T R@50", "test/v2t_r50"),
             ("RSUM", "test/rsum")]
PROBES = [("NICM", "nicm"), ("ICM", "icm"), ("AMYL", "amyl"), ("HCM", "hcm"), ("5-class", "acdc")]
PROBE_STATS = [("Acc", "acc"), ("AUC", "auc"), ("F1", "f1")]


def _fmt(v, pct: bool = False) -> str:
    if v is None:
        return "–"
    return f"{v:.1f}" if not pct else f"{100 * v:.1f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _row_keys(runs) -> tuple[list[str], list[list[str]]]:
    """Identity columns: Views, Frames, plus τ / seed when they vary."""
    p = [r.data.params for r in runs]
    cols = [("Views", lambda q: paper_name(q.get("data.views", "?")) if q.get("data.views") else "?"),
            ("Frames", lambda q: q.get("data.frames", "–"))]
    for label, key in (("τ", "model.temperature"), ("Seed", "train.seed")):
        if len({q.get(key) for q in p}) > 1:
            cols.append((label, lambda q, key=key: q.get(key, "–")))
    return [c for c, _ in cols], [[f(q) for _, f in cols] for q in p]


def table4(runs) -> str:
    head, ids = _row_keys(runs)
    rows = [i + [_fmt(r.data.metrics.get(k)) for _, k in RETRIEVAL] for i, r in zip(ids, runs)]
    return _table(head + [h for h, _ in RETRIEVAL], rows)


def table5(runs) -> str:
    head, ids = _row_keys(runs)
    cols = [(f"{name} {s}", f"probe/{lab}_{sk}") for name, lab in PROBES for s, sk in PROBE_STATS]
    rows = [i + [_fmt(r.data.metrics.get(k), pct=True) for _, k in cols] for i, r in zip(ids, runs)]
    return _table(head + [h for h, _ in cols], rows)


def sweep_runs(c, experiment: str, parent_id: str | None = None):
    """(parent run, its FINISHED child runs in trial order) of the latest sweep."""
    exp = c.get_experiment_by_name(experiment)
    if exp is None:
        raise LookupError(f"MLflow has no experiment '{experiment}' at {c.tracking_uri}")
    parent = c.get_run(parent_id) if parent_id else tracking.latest_parent(c, exp.experiment_id)
    if parent is None:
        raise LookupError(f"experiment '{experiment}' has no sweep runs at {c.tracking_uri}")
    runs = [r for r in tracking.child_runs(c, exp.experiment_id, parent.info.run_id).values()
            if r.info.status == "FINISHED"]
    runs.sort(key=lambda r: int(r.data.tags.get("cmr.trial_index", 0)))
    return parent, runs


def render_report(c, experiment: str, parent_id: str | None = None) -> str:
    parent, runs = sweep_runs(c, experiment, parent_id)
    head = (f"## Sweep '{experiment}' (parent run {parent.info.run_id}, {len(runs)} finished trial(s), "
            f"status {parent.info.status})\n")
    if not runs:
        return head + "\nNo finished trials yet.\n"
    return (head + "\n### Table 4: retrieval on the test split (R@K in %)\n\n" + table4(runs)
            + "\n\n### Table 5: linear probes on frozen video embeddings (Acc, AUC, F1 in %)\n\n" + table5(runs) + "\n")
