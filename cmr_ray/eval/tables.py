"""The paper's tables from a flat metrics dict, as Markdown and CSV.

    from cmr_ray.eval.tables import build_tables, write_tables
    tables = build_tables(metrics, methods=["zeroshot", "simclr", "ours"], few_shot=[1, 4])
    markdown = write_tables(tables, "eval_out")     # eval_out/<name>.md and .csv, tables.md

Table 4 (retrieval, percentages): Method | T2V R@5 R@10 R@50 | V2T R@5 R@10 R@50 | RSUM.
Table 5 (binary probes, fractions): Method | NICM Acc AUC F1 | ICM | AMYL | HCM; the 5-class
probe, zero-shot prompts and few-shot probes follow the same style; few-shot by class prototypes
(`fewshot_proto/...`) prints mean ± std over its episodes for every task and finding present.  Metric keys are those
of `cmr_ray.eval.evaluate` (module `evaluation`): `test/...`, `probe/...` for ours, `baseline/<name>/...` for a
baseline.  A missing or NaN value prints as 'n/a'.
"""
from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

from cmr_ray.data.schema import BINARY_LABELS, FINDINGS

TASKS = (*BINARY_LABELS, "acdc", *FINDINGS)
METHOD_NAMES = {"zeroshot": "Zero-shot", "simclr": "SimCLR", "ours": "CMR-CLIP (ours)"}


def prefix(method: str) -> str:
    return "" if method == "ours" else f"baseline/{method}/"


def _fmt(v, digits) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.{digits}f}"


def _table(title, header, rows) -> dict:
    return {"title": title, "header": header, "rows": rows}


def _proto_layout(metrics: dict, shots=()) -> tuple[list[int], list[str]]:
    """(shots, tasks) of the prototype few-shot keys in `metrics` (any method's prefix)."""
    found = [re.match(r"^(?:baseline/[^/]+/)?fewshot_proto/(.+)_acc_k(\d+)$", k) for k in metrics]
    found = [m for m in found if m]
    shots = list(shots) or sorted({int(m.group(2)) for m in found})
    seen = {m.group(1) for m in found}
    return shots, [t for t in TASKS if t in seen]


def _mean_std(mean, std) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    return f"{mean:.3f} ± {_fmt(std, 3)}"


def build_tables(metrics: dict, methods: list[str], few_shot=(), tasks=None, proto_shots=()) -> dict:
    """{name: {'title', 'header', 'rows'}} with formatted cells.  The prototype few-shot table
    (`fewshot_proto/...`) covers every task and finding the metrics hold, at `proto_shots`
    (default: the sizes the metrics hold)."""
    tasks = list(tasks or (*BINARY_LABELS, "acdc"))
    binary = [t for t in BINARY_LABELS if t in tasks]
    get = lambda m, key: metrics.get(prefix(m) + key)  # noqa: E731
    out = {}
    hdr = ["Method", "T2V R@5", "T2V R@10", "T2V R@50", "V2T R@5", "V2T R@10", "V2T R@50", "RSUM"]
    rows = [[METHOD_NAMES.get(m, m)] + [_fmt(get(m, f"test/{d}_r{k}"), 1) for d in ("t2v", "v2t") for k in (5, 10, 50)]
            + [_fmt(get(m, "test/rsum"), 1)] for m in methods]
    out["retrieval"] = _table("Table 4: retrieval on the test split (%)", hdr, rows)
    if binary:
        hdr = ["Method"] + [f"{t.upper()} {s}" for t in binary for s in ("Acc", "AUC", "F1")]
        rows = [[METHOD_NAMES.get(m, m)] + [_fmt(get(m, f"probe/{t}_{s}"), 3) for t in binary for s in ("acc", "auc", "f1")]
                for m in methods]
        out["probe_binary"] = _table("Table 5: linear probes, binary labels (test split)", hdr, rows)
    if "acdc" in tasks:
        hdr = ["Method", "Acc", "macro AUC (OvR)", "macro F1"]
        rows = [[METHOD_NAMES.get(m, m)] + [_fmt(get(m, f"probe/acdc_{s}"), 3) for s in ("acc", "auc", "f1")]
                for m in methods]
        out["probe_acdc"] = _table("Linear probe, 5-class label (NOR/MINF/DCM/HCM/RV, test split)", hdr, rows)
    if any(k.startswith("zeroshot_prompt/") for k in metrics):
        hdr = ["Label", "Acc", "AUC", "F1"]
        rows = [[t.upper()] + [_fmt(metrics.get(f"zeroshot_prompt/{t}_{s}"), 3) for s in ("acc", "auc", "f1")]
                for t in tasks]
        out["zeroshot_prompts"] = _table("Zero-shot classification by text prompts, CMR-CLIP (ours), test split", hdr, rows)
    if few_shot:
        hdr = ["Method", "Probe"] + [f"k={k}" for k in few_shot] + ["all"]
        rows = []
        for m in methods:
            for t in tasks:
                s = "acc" if t == "acdc" else "auc"
                rows.append([METHOD_NAMES.get(m, m), f"{t.upper()} {s.upper()}"]
                            + [_fmt(get(m, f"fewshot/{t}_{s}_k{k}"), 3) for k in few_shot]
                            + [_fmt(get(m, f"probe/{t}_{s}"), 3)])
        out["fewshot"] = _table("Few-shot linear probes (k examples per class, mean over seeds; test split)", hdr, rows)
    shots, proto_tasks = _proto_layout(metrics, proto_shots)
    if shots and proto_tasks:
        hdr = ["Method", "Task"] + [f"n={n}" for n in shots]
        rows = []
        for m in methods:
            for t in proto_tasks:
                s = "acc" if t == "acdc" else "auc"
                rows.append([METHOD_NAMES.get(m, m), f"{t.upper()} {s.upper()}"]
                            + [_mean_std(get(m, f"fewshot_proto/{t}_{s}_k{n}"), get(m, f"fewshot_proto/{t}_{s}_k{n}_std"))
                               for n in shots])
        out["fewshot_proto"] = _table("Few-shot by class prototypes (n studies per class, nearest prototype by cosine; "
                                      "mean ± std over episodes; test split)", hdr, rows)
    return out


def markdown(table: dict) -> str:
    lines = [f"### {table['title']}", "", "| " + " | ".join(table["header"]) + " |",
             "|" + "|".join(" --- " for _ in table["header"]) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in table["rows"]]
    return "\n".join(lines) + "\n"


def to_csv(table: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(table["header"])
    w.writerows(table["rows"])
    return buf.getvalue()


def write_tables(tables: dict, out_dir, notes=()) -> str:
    """Write <name>.md and <name>.csv per table and tables.md with all; returns that Markdown."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = []
    for name, table in tables.items():
        md = markdown(table)
        (out_dir / f"{name}.md").write_text(md)
        (out_dir / f"{name}.csv").write_text(to_csv(table))
        parts.append(md)
    if notes:
        parts.append("Notes:\n\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    text = "\n".join(parts)
    (out_dir / "tables.md").write_text(text)
    return text
