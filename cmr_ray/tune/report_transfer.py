"""The paper's transfer table (ACDC, 5-class linear probe on frozen cine SAX embeddings) beside a sweep's rows.

    from cmr_ray.tune.report_transfer import transfer_table
    print(transfer_table([zeroshot_run, simclr_run, *trial_runs]))

`runs` are MLflow runs (anything with `.data.metrics`, `.data.params`, `.data.tags`): the
sweep's baselines (tag `cmr.baseline` = zeroshot | simclr) and its trials.  Every set a run
logged (`transfer/<set>/probe/acdc_acc|_auc|_f1`, `cmr_ray.eval.transfer`) gets a table:
Model | Acc | AUC | F1 (with the run's 95% bootstrap interval when it logged `_lo`/`_hi`) |
Paper Acc | Paper AUC | Paper F1.  For the set named `acdc` the paper's rows come first, in
its order (Zero-shot, SimCLR, CINE_sax (8)), each beside the run it corresponds to (the
baseline of that name; the trained row: a trial on `cine:sax` at 8 frames) or with "–" where
the sweep has none; the other runs follow.  With no run holding transfer metrics the paper's
ACDC table is still printed, with a note saying how to get ours (`eval.transfer`).

The paper's figures are Table 5's `acdc` entries of `cmr_ray/paper_results.yaml`; its
`transfer` key names the table's rows and the entry each row reads (one copy of each figure).
"""
from __future__ import annotations

import math

from cmr_ray import paper
from cmr_ray.views import paper_name

STATS = (("Acc", "acc"), ("AUC", "auc"), ("F1", "f1"))
BASELINE_NAMES = {"zeroshot": "Zero-shot", "simclr": "SimCLR"}
DASH = "–"


def paper_rows(name: str = "acdc") -> list[dict]:
    """The paper's transfer rows for set `name`: [{name, method, views, frames, acc, auc, f1}]
    ([] where the paper has no such set)."""
    doc = paper.load()
    spec = (doc.get("transfer") or {}).get(name)
    if not spec:
        return []
    figures = doc["table5"][spec["label"]]
    return [{"name": r["name"], "method": r["method"], **figures[r["method"]]} for r in spec["rows"]]


def _sets(runs) -> list[str]:
    found = {k.split("/")[1] for r in runs for k in r.data.metrics
             if k.startswith("transfer/") and k.endswith("/probe/acdc_acc")}
    return sorted(found, key=lambda s: (s != "acdc", s))


def _key(name: str, stat: str) -> str:
    return f"transfer/{name}/probe/acdc_{stat}"


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return DASH
    return f"{v:.2f}"


def _cell(run, k: str) -> str:
    if run is None:
        return DASH
    m = run.data.metrics
    v, lo, hi = m.get(k), m.get(k + "_lo"), m.get(k + "_hi")
    if v is None or lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return _fmt(v)
    return f"{_fmt(v)} [{_fmt(lo)}, {_fmt(hi)}]"


def _frames(run):
    try:
        return int(run.data.params.get("data.frames"))
    except (TypeError, ValueError):
        return None


def run_label(run) -> str:
    """"Zero-shot (16)", "SimCLR (16)" for baselines; else "<paper name of the views> (<frames>)"."""
    b = run.data.tags.get("cmr.baseline")
    views = run.data.params.get("data.views")
    name = BASELINE_NAMES.get(b, b) if b else (paper_name(views) if views else "?")
    f = _frames(run)
    return f"{name} ({f})" if f is not None else name


def _matches(run, row: dict) -> bool:
    b = run.data.tags.get("cmr.baseline")
    if row["method"] in BASELINE_NAMES:
        return b == row["method"]
    return not b and run.data.params.get("data.views") is not None and \
        paper_name(run.data.params["data.views"]) == row["views"] and _frames(run) == int(row["frames"])


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def set_table(runs, name: str = "acdc") -> str:
    """One set's table (Markdown) with the notes under it."""
    runs = [r for r in runs if _key(name, "acc") in r.data.metrics]
    paper = paper_rows(name)
    head = ["Model"] + [h for h, _ in STATS] + ([f"Paper {h}" for h, _ in STATS] if paper else [])
    rows, used, order = [], set(), {}
    for p in paper:
        run = next((r for r in runs if id(r) not in used and _matches(r, p)), None)
        if run is not None:
            used.add(id(run))
            order[p["method"]] = run
        label = p["name"] if run is None or run_label(run) == p["name"] else f"{run_label(run)} · paper: {p['name']}"
        rows.append([label] + [_cell(run, _key(name, s)) for _, s in STATS] + [_fmt(p.get(s)) for _, s in STATS])
    for r in runs:
        if id(r) not in used:
            rows.append([run_label(r)] + [_cell(r, _key(name, s)) for _, s in STATS] + ([DASH] * 3 if paper else []))
    title = (f"### Transfer to {name}: 5-class linear probe on frozen cine SAX embeddings "
             f"(Acc, AUC, F1; [95% interval])")
    notes = [f"Each model's video tower, frozen, embeds {name}'s cine short axis at its row's frame count; the "
             f"probe is fitted on {name}'s training studies and scored on its test studies."]
    if not runs:
        notes.append("No run of this sweep logged transfer metrics: set `eval.transfer: {acdc: STORE}` "
                     "(or `{acdc: synthetic}` for the offline stand-in) and evaluate again.")
    accs = {m: order[m].data.metrics.get(_key(name, "acc")) for m in order}
    if paper and all(accs.get(m) is not None for m in ("zeroshot", "simclr", "trained")):
        ok = accs["trained"] > accs["simclr"] > accs["zeroshot"]
        notes.append(f"Paper's order by accuracy, CINE_sax (8) > SimCLR > Zero-shot: {'yes' if ok else 'no'} "
                     f"({accs['trained']:.2f}, {accs['simclr']:.2f}, {accs['zeroshot']:.2f}).")
    return title + "\n\n" + _table(head, rows) + "\n\n" + "\n".join(notes)


def transfer_table(runs, sets=None) -> str:
    """Every transfer set's table (the paper's ACDC table even when no run has one)."""
    runs = list(runs)
    names = list(sets) if sets else (_sets(runs) or ["acdc"])
    return "\n\n".join(set_table(runs, n) for n in names) + "\n"
