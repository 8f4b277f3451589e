"""Findings and the external cohort in `cmr-ray report` (issue 20).

    from cmr_ray.tune.report_external import external_report
    print(external_report([zeroshot_run, simclr_run, *trial_rows], best_run_id))

`runs` are MLflow runs (or the report's seed rows: anything with `.data.metrics`,
`.data.params`, `.data.tags`, `.info.run_id`): the sweep's baselines and its trials.
- The findings table, for the best trial (`best_run_id`, the parent's `cmr.best_run_id`; else
  the row with the highest `test/rsum`): one row per finding (`cmr_ray.data.schema.FINDINGS`)
  with its zero-shot prompt AUC (`zeroshot_prompt/<finding>_auc`), linear-probe AUC
  (`probe/<finding>_auc`) and prototype few-shot AUC at the largest n logged
  (`fewshot_proto/<finding>_auc_k<n>`, mean ± std over the episodes), each on the internal
  test split and on the external cohort (`external/...`) side by side.
- The drop table: for every run that logged `external/test/rsum`, the main metrics as
  "internal → external (drop)": RSUM at one gallery size (the larger set averaged over random
  subsets of the smaller one's size: `test/rsum_at_external_n`, or
  `external/test/rsum_at_internal_n` when the external cohort is the larger;
  `cmr_ray.eval.external.equal_gallery_rsum`), with that size and its chance RSUM; the whole
  sets' RSUMs with each one's chance RSUM and no drop (Recall@K depends on the gallery size:
  `cmr_ray.eval.retrieval.chance_rsum`); 5-class probe accuracy and each diagnosis's probe AUC.
  Runs logged before the equal-gallery keys show "–" there.
Without external metrics the findings table shows the internal columns and a note says how
to get the rest (`eval.external`).
"""
from __future__ import annotations

import math
import re

from cmr_ray.data.schema import FINDINGS
from cmr_ray.eval.external import equal_gallery_rsum
from cmr_ray.eval.retrieval import chance_rsum
from cmr_ray.tune.report_transfer import run_label

EXT = "external/"
DASH = "–"
MAIN = (("5-class Acc", "probe/acdc_acc", 3), ("NICM AUC", "probe/nicm_auc", 3), ("ICM AUC", "probe/icm_auc", 3),
        ("AMYL AUC", "probe/amyl_auc", 3), ("HCM AUC", "probe/hcm_auc", 3))


def _ok(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def _fmt(v, digits: int = 2) -> str:
    return f"{v:.{digits}f}" if _ok(v) else DASH


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def has_external(run) -> bool:
    return _ok(run.data.metrics.get(EXT + "test/rsum"))


def proto_shots(run) -> list[int]:
    """The n of every `fewshot_proto/<task>_auc_k<n>` the run logged, ascending."""
    found = (re.match(r"^fewshot_proto/.+_auc_k(\d+)$", k) for k in run.data.metrics)
    return sorted({int(m.group(1)) for m in found if m})


def pick_run(runs, best_run_id: str | None = None):
    """The best trial (its id, or a seed row holding it), else the trial with the highest test/rsum."""
    trials = [r for r in runs if not r.data.tags.get("cmr.baseline")]
    for r in trials:
        ids = {r.info.run_id} | {s.info.run_id for s in getattr(r, "seeds", [])}
        if best_run_id and best_run_id in ids:
            return r
    scored = [r for r in trials if _ok(r.data.metrics.get("test/rsum"))]
    return max(scored, key=lambda r: r.data.metrics["test/rsum"]) if scored else None


def _mean_std(m: dict, key: str) -> str:
    v, sd = m.get(key), m.get(key + "_std")
    return f"{_fmt(v)} ± {_fmt(sd)}" if _ok(v) and _ok(sd) else _fmt(v)


def findings_table(run) -> str:
    """The findings table of `run` (Markdown with its notes); '' when it logged no finding."""
    m = run.data.metrics
    found = [f for f in FINDINGS if any(f"{k}/{f}_auc" in m for k in ("probe", "zeroshot_prompt"))]
    if not found:
        return ""
    ext = has_external(run)
    shots = proto_shots(run)
    n = shots[-1] if shots else None
    cols = [("Zero-shot prompt AUC", "zeroshot_prompt/{f}_auc", False), ("Probe AUC", "probe/{f}_auc", False)]
    if n is not None:
        cols.append((f"Prototypes n={n} AUC", f"fewshot_proto/{{f}}_auc_k{n}", True))
    head = ["Finding"]
    for title, _, _ in cols:
        head += [title] + ([f"{title} (external)"] if ext else [])
    rows = []
    for f in found:
        row = [f]
        for _, pattern, spread in cols:
            key = pattern.format(f=f)
            for k in ([key, EXT + key] if ext else [key]):
                row.append(_mean_std(m, k) if spread else _fmt(m.get(k)))
        rows.append(row)
    title = (f"### Findings: zero-shot prompts, linear probe and prototype few-shot, {run_label(run)} "
             f"(AUC; internal test split{' | external cohort' if ext else ''})")
    notes = ["Prompt thresholds, probes and prototypes are fitted on the internal train + val split only"
             + ("; the external cohort is scored with them, nothing fitted there." if ext else ".")]
    if n is not None:
        notes.append(f"Prototypes: mean ± standard deviation over the episodes (eval.prototype_episodes), "
                     f"{n} studies per class (eval.prototype_shots).")
    if not ext:
        notes.append("No external metrics: set `eval.external: STORE` (or `synthetic` for the other-site "
                     "synthetic cohort) and evaluate again.")
    return title + "\n\n" + _table(head, rows) + "\n\n" + "\n".join(notes)


def _drop_cell(m: dict, key: str, digits: int) -> str:
    a, b = m.get(key), m.get(EXT + key)
    if not (_ok(a) and _ok(b)):
        return f"{_fmt(a, digits)} → {_fmt(b, digits)}"
    return f"{_fmt(a, digits)} → {_fmt(b, digits)} ({_fmt(a - b, digits)})"


def _count(m: dict, key: str) -> int | None:
    v = m.get(key)
    return int(v) if _ok(v) and v >= 1 else None


def _chance(n: int | None) -> str:
    return _fmt(chance_rsum(n), 1) if n else DASH


def _rsum_cells(m: dict) -> list[str]:
    """[studies, RSUM at equal gallery (drop), RSUM of the whole sets (no drop)] of one run."""
    n_int, n_ext = _count(m, "test/n_studies"), _count(m, EXT + "n_studies")
    studies = f"{n_int if n_int else DASH} → {n_ext if n_ext else DASH}"
    equal = equal_gallery_rsum(m)
    if equal is None:
        eq = DASH
    else:
        a, b, n = equal
        eq = f"{_fmt(a, 1)} → {_fmt(b, 1)} ({_fmt(a - b, 1)}); n = {n}, chance {_chance(n)}"
    whole = f"{_fmt(m.get('test/rsum'), 1)} → {_fmt(m.get(EXT + 'test/rsum'), 1)}"
    if n_int and n_ext:
        whole += f"; chance {_chance(n_int)} → {_chance(n_ext)}"
    return [studies, eq, whole]


def drop_table(runs) -> str:
    """Internal → external (drop) of the main metrics for every run with external metrics ('' when none)."""
    runs = [r for r in runs if has_external(r)]
    if not runs:
        return ""
    head = ["Model", "Studies", "RSUM, equal gallery", "RSUM, whole sets (not comparable)"] + [t for t, _, _ in MAIN]
    rows = [[run_label(r)] + _rsum_cells(r.data.metrics) + [_drop_cell(r.data.metrics, k, d) for _, k, d in MAIN]
            for r in runs]
    title = "### Internal test split → external cohort: the main metrics (internal → external (drop))"
    note = ("Drop = internal − external: positive where the model does worse on the other site. RSUM in %, "
            "accuracy and AUC as fractions. Studies: the internal test split's and the external cohort's (each "
            "set's retrieval ranks all its studies). RSUM depends on the gallery size n (chance RSUM = "
            "2 × 100 × (5 + 10 + 50) / n for n ≥ 50), so its drop is read at one size: the larger set scored at the "
            "smaller one's n, the mean over random subsets of that size (`test/rsum_at_external_n`, or "
            "`external/test/rsum_at_internal_n`). The whole sets' RSUMs are shown with each one's chance, "
            "without a drop.")
    return title + "\n\n" + _table(head, rows) + "\n\n" + note


def external_report(runs, best_run_id: str | None = None) -> str:
    """The findings table of the best trial and the drop table ('' when neither has anything)."""
    runs = list(runs)
    best = pick_run(runs, best_run_id)
    parts = [p for p in (findings_table(best) if best is not None else "", drop_table(runs)) if p]
    return "\n\n".join(parts) + ("\n" if parts else "")
