"""The reports and labels tables that `prepare` joins to studies by accession number.

    reports = load_reports("reports.csv")   # {accession: [report_text, ...]} (two = a conflict)
    labels = load_labels("labels.csv")     # {accession: {"label_nicm": 1, ..., "label_acdc": "DCM"}}

Labels: the diagnoses (`BINARY_LABELS`, `acdc`) and any of the binary findings
(`FINDINGS`, columns named as the finding: `lv_dilation`, ...); a finding column the
table lacks is left out of its rows (null in the store).

Report text may be in any common encoding; each field is decoded on its own by
`cmr_ray.text.report.decode_report_bytes`, so one cp1252 report does not spoil the file.
A table without the needed columns raises `TableError` naming the file and the column.
"""
from __future__ import annotations

import csv
import io
import os

from cmr_ray.data.schema import ACDC_CLASSES, BINARY_LABELS, FINDINGS


class TableError(ValueError):
    pass


def _read_csv(path) -> tuple[list[str], list[list[bytes]]]:
    """Rows of raw bytes per field: parse as latin-1 (byte-preserving), re-encode per field."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise TableError(f"{path}: cannot read ({e.strerror or e})") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    reader = csv.reader(io.StringIO(raw.decode("latin-1"), newline=""))
    try:
        rows = [[c.encode("latin-1") for c in r] for r in reader]
    except csv.Error as e:
        raise TableError(f"{path}: not a valid CSV ({e})") from None
    if not rows:
        raise TableError(f"{path}: empty table (expected a header row)")
    header = [h.decode("utf-8", "replace").strip().lower() for h in rows[0]]
    return header, [r for r in rows[1:] if any(c.strip() for c in r)]


def _column(path, header: list[str], name: str) -> int:
    if name not in header:
        raise TableError(f"{path}: missing column '{name}' (columns: {', '.join(header)})")
    return header.index(name)


def load_reports(path: str | os.PathLike) -> dict[str, list[str]]:
    from cmr_ray.text.report import decode_report_bytes

    header, rows = _read_csv(path)
    ia, it = _column(path, header, "accession_number"), _column(path, header, "report_text")
    out: dict[str, list[str]] = {}
    for r in rows:
        acc = r[ia].decode("utf-8", "replace").strip() if ia < len(r) else ""
        if not acc:
            continue
        text = decode_report_bytes(r[it]) if it < len(r) else ""
        out.setdefault(acc, []).append(text)
    return out


def _binary(v: str):
    v = v.strip().lower()
    if v in ("1", "1.0", "true", "yes"):
        return 1
    if v in ("0", "0.0", "false", "no"):
        return 0
    return None


def load_labels(path: str | os.PathLike) -> dict[str, dict]:
    """Known label columns only; a missing or unreadable value is null (unknown)."""
    header, rows = _read_csv(path)
    ia = _column(path, header, "accession_number")
    cols = {n: header.index(n) for n in (*BINARY_LABELS, "acdc", *FINDINGS) if n in header}
    if not cols:
        raise TableError(f"{path}: none of the label columns {', '.join((*BINARY_LABELS, 'acdc', *FINDINGS))}")
    out = {}
    for r in rows:
        field = {n: (r[i].decode("utf-8", "replace") if i < len(r) else "") for n, i in cols.items()}
        acc = r[ia].decode("utf-8", "replace").strip() if ia < len(r) else ""
        if not acc:
            continue
        lab = {f"label_{n}": _binary(field[n]) if n in field else None for n in BINARY_LABELS}
        acdc = field.get("acdc", "").strip().upper()
        lab["label_acdc"] = acdc if acdc in ACDC_CLASSES else None
        lab.update({f"label_{n}": _binary(field[n]) for n in FINDINGS if n in field})
        out[acc] = lab
    return out
