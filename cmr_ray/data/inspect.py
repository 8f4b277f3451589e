"""`cmr-ray inspect`: what every series is, from headers only (no pixels, no Ray).

    rows, n_failed = inspect_dir("cohort/dicom")       # one dict per series
    print(table_text(rows)); write_rows(rows, "series.csv")   # or .parquet

Columns: study (salted key: CMR_RAY_SALT, else the salt of `store`, else a salt made for
this run only), series_uid, description, images, sequence, view, rule, evidence.
"""
from __future__ import annotations

import json

import pyarrow as pa

from cmr_ray.data import keys, storefs
from cmr_ray.data.index import index_local, list_input_files

COLUMNS = ("study", "series_uid", "description", "images", "sequence", "view", "rule", "evidence")


def _evidence(ev) -> str:
    if ev is None:
        return ""
    if isinstance(ev, str):
        return ev
    if isinstance(ev, dict):
        return "; ".join(f"{k}={v}" for k, v in ev.items())
    if isinstance(ev, (list, tuple)):
        return "; ".join(map(str, ev))
    return json.dumps(ev, default=str)


def inspect_dir(dicom_dir, store: str | None = None) -> tuple[list[dict], int]:
    from cmr_ray.dicom.classify import classify_study
    from cmr_ray.dicom.series import group_series
    from cmr_ray.dicom.stacks import merge_split_stacks

    if store:
        fs, root = storefs.open_store(store)
        salt = keys.load_salt(fs, root, create=False)
    else:
        salt = keys.load_salt()
    idx = index_local(dicom_dir, list_input_files(dicom_dir))
    headers = [r["header"] for r in idx if r["header"] is not None]
    by_study: dict[str, list] = {}
    for s in group_series(headers):
        by_study.setdefault(s.study_uid, []).append(s)
    rows = []
    for series_list in by_study.values():
        series_list, classes, _ = merge_split_stacks(series_list, classify_study(series_list))
        rows += [{"study": keys.study_key(salt, s.study_uid), "series_uid": s.series_uid,
                  "description": s.description, "images": s.n_images, "sequence": c.sequence,
                  "view": c.view, "rule": c.rule, "evidence": _evidence(c.evidence)}
                 for s, c in zip(series_list, classes)]
    rows.sort(key=lambda r: (r["study"], r["sequence"], r["view"], r["series_uid"]))
    return rows, len(idx) - len(headers)


def table_text(rows: list[dict], max_width: int = 48) -> str:
    def cell(v):
        v = str(v)
        return v if len(v) <= max_width else v[: max_width - 1] + "…"

    cols = COLUMNS
    cells = [[cell(r[c]) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def write_rows(rows: list[dict], out: str) -> None:
    table = pa.Table.from_pylist(rows, schema=pa.schema(
        [(c, pa.int64() if c == "images" else pa.string()) for c in COLUMNS]))
    if out.endswith(".csv"):
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, out)
    elif out.endswith(".parquet"):
        import pyarrow.parquet as pq

        pq.write_table(table, out)
    else:
        raise ValueError(f"--out {out}: expected a .csv or .parquet file name")
