"""`cmr-ray inspect`: what every series is, from headers only (no pixels, no Ray).

    rows, n_failed = inspect_dir("cohort/dicom")       # one dict per series
    res = scan_dir("cohort/dicom"); res.rows, res.unreadable, res.not_mr, res.notes()
    print(table_text(rows)); write_rows(rows, "series.csv")   # or .parquet

Columns: study (salted key: CMR_RAY_SALT, else the salt of `store`, else a salt made for
this run only), series_uid, description, images, sequence, view, rule, evidence.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import os
import re

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


@dataclasses.dataclass
class Inspection:
    rows: list                                   # one dict per series (COLUMNS)
    files: int = 0                               # files under the folder
    unreadable: dict = dataclasses.field(default_factory=dict)   # relpath -> reason
    not_mr: collections.Counter = dataclasses.field(default_factory=collections.Counter)  # modality -> files

    def notes(self) -> list[str]:
        """One line each for what the table leaves out (files that are not MR, unreadable)."""
        out = []
        if self.not_mr:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.not_mr.items(), key=lambda kv: (-kv[1], kv[0])))
            out.append(f"{sum(self.not_mr.values())} readable DICOM file(s) are not MR images ({kinds}): skipped")
        if self.unreadable:
            out.append(f"{len(self.unreadable)} file(s) could not be read as DICOM "
                       "(run `cmr-ray prepare` for the manifest with each file's reason)")
        return out


_NOT_MR = re.compile(r"modality (\S+) is not MR$|modality missing and SOP class (\S+) is not an MR image$")


def _not_mr(reason: str | None) -> str | None:
    """The modality (or SOP class name) of a readable DICOM file refused only for not being MR."""
    m = _NOT_MR.match(reason or "")
    if not m:
        return None
    if m.group(1):
        return m.group(1)
    from pydicom.uid import UID

    uid = UID(m.group(2))
    return uid.name if uid.is_valid and uid.name != str(uid) else "no modality"


def check_out(out: str) -> None:
    """Refuse a table name `write_rows` cannot write (ValueError), before any scan."""
    if not (out.endswith(".csv") or out.endswith(".parquet")):
        raise ValueError(f"--out {out}: expected a .csv or .parquet file name")
    if os.path.isdir(out):
        raise ValueError(f"--out {out} is a folder; give a .csv or .parquet file name")


def inspect_dir(dicom_dir, store: str | None = None) -> tuple[list[dict], int]:
    """(rows, number of files that could not be read as DICOM); see `scan_dir` for more."""
    res = scan_dir(dicom_dir, store)
    return res.rows, len(res.unreadable)


def scan_dir(dicom_dir, store: str | None = None) -> Inspection:
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
    res = Inspection(rows, files=len(idx))
    for r in idx:
        if r["header"] is None:
            kind = _not_mr(r["error"])
            if kind:
                res.not_mr[kind] += 1
            else:
                res.unreadable[r["path"]] = r["error"]
    return res


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
    """The table as .csv or .parquet; a missing folder on the way is made."""
    check_out(out)
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
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
