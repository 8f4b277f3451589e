"""Look for PHI values in every byte of a set of directories (issue 8, privacy).

    values = cohort_phi_values(cohort_dir, extra=["ZZPHI^Testname"])
    result = scan([store, mlruns, ray_tmp], values)
    assert not result.hits, result.hits[:5]
    result.files, result.bytes, len(result.patterns)

A value is searched case-insensitively in its written forms: as given, DICOM person names
with '^' also as 'Family Given', 'Given Family' and 'Family, Given', dates YYYYMMDD also as
YYYY-MM-DD, YYYY/MM/DD, DD/MM/YYYY, MM/DD/YYYY and DD.MM.YYYY.  Values made of digits and
punctuation (IDs, dates, UIDs) must stand alone (no letter or digit right before or after),
so a number inside a longer number (a timestamp, a hash) is not a hit.  Parquet files are
also decoded and their string columns searched, since compressed pages hide raw text.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pydicom


def name_forms(v: str) -> list[str]:
    if "^" not in v:
        return [v]
    parts = [p for p in v.split("^") if p]
    if len(parts) < 2:
        return [v, *parts]
    fam, given = parts[0], parts[1]
    return [v, f"{fam} {given}", f"{given} {fam}", f"{fam}, {given}"]


def date_forms(v: str) -> list[str]:
    if not re.fullmatch(r"(19|20)\d{6}", v):
        return [v]
    y, m, d = v[:4], v[4:6], v[6:]
    return [v, f"{y}-{m}-{d}", f"{y}/{m}/{d}", f"{d}/{m}/{y}", f"{m}/{d}/{y}", f"{d}.{m}.{y}"]


def patterns(values) -> dict[bytes, str]:
    """{lowercased byte pattern: the PHI value it stands for}."""
    out = {}
    for v in values:
        v = str(v).strip()
        if len(v) < 4:
            continue
        for f in {x for n in name_forms(v) for x in date_forms(n)}:
            out.setdefault(f.lower().encode("utf-8"), v)
    return out


def cohort_phi_values(cohort: Path, extra=(), uids: bool = True) -> list[str]:
    """synth's phi.json values, `extra`, and (uids=True) every Study/SeriesInstanceUID."""
    cohort = Path(cohort)
    values = set(json.loads((cohort / "phi.json").read_text())["values"]) | set(extra)
    if uids:
        for series in sorted((cohort / "dicom").glob("*/*")):
            first = next(iter(sorted(series.glob("*.dcm"))), None)
            if first is not None:
                ds = pydicom.dcmread(first, stop_before_pixels=True)
                values |= {str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)}
    return sorted(values)


def _parquet_text(path: Path) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        t = pq.read_table(path)
    except Exception:
        return b""  # not a readable Parquet file: its raw bytes are still searched
    chunks = []
    for col in t.columns:
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            chunks += [s for s in col.to_pylist() if s]
    return "\n".join(chunks).encode("utf-8")


@dataclass
class Scan:
    files: int = 0
    bytes: int = 0
    patterns: dict = field(default_factory=dict)
    hits: list = field(default_factory=list)  # (path, value, pattern)


def _matches(data: bytes, pat: bytes) -> bool:
    i = data.find(pat)
    if i < 0:
        return False
    if re.search(rb"[a-z]", pat):  # words: a plain substring is a hit
        return True
    rx = re.compile(rb"(?<![0-9a-z])" + re.escape(pat) + rb"(?![0-9a-z])")
    return rx.search(data, max(0, i - 1)) is not None


def scan(roots, values) -> Scan:
    res = Scan(patterns=patterns(values))
    for root in roots:
        root = Path(root)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
        for p in files:
            try:
                data = p.read_bytes()
            except OSError:
                continue  # a socket or a file removed meanwhile
            res.files += 1
            res.bytes += len(data)
            text = data.lower()
            if p.suffix == ".parquet":
                text += b"\n" + _parquet_text(p).lower()
            for pat, v in res.patterns.items():
                if _matches(text, pat):
                    res.hits.append((str(p), v, pat.decode("utf-8", "replace")))
    return res
