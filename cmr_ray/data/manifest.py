"""The manifest (one row per input file) and the study registry, and the summary table.

    write_table(fs, path, rows, MANIFEST_SCHEMA); rows = read_rows(fs, path)
    print(summary_text(manifest_rows, study_rows))

Manifest row: path (relative to the DICOM dir), status (used | ignored | failed), reason,
study_key, series_key, sequence, view, plus size and mtime_ns (how a re-run recognises an
unchanged file).  `series_key` is a salted hash of SeriesInstanceUID, not the UID itself:
real UIDs often embed the acquisition date and time (e.g. '999.999.2.19960619.163000'),
and no StudyDate may leave `prepare`; `cmr-ray inspect` shows the raw UIDs locally.  Study registry row (`STORE/studies.parquet`): study_key, fingerprint of
the study's input files and report, status (used | excluded), reason, shard, split,
accession_key (salted hash; how a re-run notices a changed report).  The journal
(`STORE/journal/`, below) holds the rows of shards committed since those two were written.
"""
from __future__ import annotations

import io
import json
import re
import time
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq

from cmr_ray.data import storefs

STATUSES = ("used", "ignored", "failed")

MANIFEST_SCHEMA = pa.schema([
    ("path", pa.string()), ("status", pa.string()), ("reason", pa.string()),
    ("study_key", pa.string()), ("series_key", pa.string()),
    ("sequence", pa.string()), ("view", pa.string()),
    ("size", pa.int64()), ("mtime_ns", pa.int64()),
])

STUDY_SCHEMA = pa.schema([
    ("study_key", pa.string()), ("fingerprint", pa.string()), ("status", pa.string()),
    ("reason", pa.string()), ("shard", pa.string()), ("split", pa.string()),
    ("accession_key", pa.string()),
])


def file_row(path, status, reason="", study_key=None, series_key=None, sequence=None, view=None,
             size=None, mtime_ns=None) -> dict:
    assert status in STATUSES, status
    return dict(path=path, status=status, reason=reason, study_key=study_key, series_key=series_key,
                sequence=sequence, view=view, size=size, mtime_ns=mtime_ns)


def write_table(fs, path: str, rows: list[dict], schema: pa.Schema) -> None:
    table = pa.Table.from_pylist(rows, schema=schema)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    storefs.write_bytes_atomic(fs, path, buf.getvalue())


def read_rows(fs, path: str) -> list[dict]:
    if not storefs.exists(fs, path):
        return []
    return pq.read_table(io.BytesIO(storefs.read_bytes(fs, path))).to_pylist()


# ---------------------------------------------------------------- the journal (shard-level commits)
# `prepare` writes the registry and the manifest once, at the end of a run; as each shard
# finishes it commits that shard here: one small JSON file per shard, `STORE/journal/<seq>.json`,
# with its studies' registry rows and their files' manifest rows (written atomically after the
# shard itself is in place).  A run killed midway leaves the journal; the next run reads it
# over the registry and manifest, so the shards it names are kept and only the rest is decoded
# again.  A finished run folds the journal into studies.parquet and manifest.parquet and
# clears it.

JOURNAL_DIR = "journal"
_SUFFIX = ".json"


def write_journal_entry(fs, journal_dir: str, seq: int, studies: list[dict], files: list[dict]) -> None:
    """Commit one finished shard: its registry rows and manifest rows (entries are read back
    in name order, so `seq` (this run's count) follows the run's start time)."""
    name = f"{time.time_ns():020d}-{seq:06d}{_SUFFIX}"
    blob = json.dumps({"studies": studies, "files": files}, separators=(",", ":")).encode()
    storefs.write_bytes_atomic(fs, storefs.join(journal_dir, name), blob)


def read_journal(fs, journal_dir: str) -> tuple[dict, dict, int]:
    """({study_key: registry row}, {path: manifest row}, entries read) of every committed
    shard, oldest first (a later entry wins).  An entry that does not parse is skipped: its
    studies are simply not committed."""
    studies, files, n = {}, {}, 0
    for path in storefs.list_files(fs, journal_dir, _SUFFIX):
        try:
            doc = json.loads(storefs.read_bytes(fs, path))
            st = {r["study_key"]: {k: r.get(k) for k in STUDY_SCHEMA.names} for r in doc["studies"]}
            fl = {r["path"]: {k: r.get(k) for k in MANIFEST_SCHEMA.names} for r in doc["files"]}
        except (OSError, ValueError, KeyError, TypeError):
            continue
        studies.update(st)
        files.update(fl)
        n += 1
    return studies, files, n


def clear_journal(fs, journal_dir: str) -> None:
    """After the registry and manifest hold every committed shard."""
    for path in storefs.list_files(fs, journal_dir, _SUFFIX):
        fs.delete_file(path)
    storefs.remove_temp_files(fs, journal_dir)


def _table(title: str, counts: Counter, total_label="total", top: int = 15) -> list[str]:
    lines = [title]
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(items) > top:
        items = items[: top - 1] + [(f"({len(items) - top + 1} other reasons)", sum(n for _, n in items[top - 1:]))]
    width = max([len(k) for k, _ in items] + [len(total_label)])
    for k, n in items:
        lines.append(f"  {k:<{width}}  {n:>7}")
    lines.append(f"  {total_label:<{width}}  {sum(counts.values()):>7}")
    return lines


def summary_text(manifest: list[dict], studies: list[dict]) -> str:
    lines = []
    st = Counter("used" if s["status"] == "used" else f"excluded: {s['reason']}" for s in studies)
    lines += _table("studies", st)
    lines += _table("files", Counter(r["status"] for r in manifest))
    reasons = Counter(f"{r['status']}: {reason_kind(r['reason'])}" for r in manifest if r["status"] != "used")
    if reasons:
        lines += _table("files not used, by reason", reasons, "not used")
    return "\n".join(lines)


_UID = re.compile(r"(?<![\w.])[0-9]+(?:\.[0-9]+){3,}(?!\w|\.\d)")


def _uid_word(m: re.Match) -> str:
    """A registered UID (SOP class, transfer syntax) by its name, any other as 'UID'."""
    from pydicom.uid import UID

    uid = UID(m.group(0))
    return uid.name if uid.name != str(uid) else "UID"


def reason_kind(reason: str, n: int = 70) -> str:
    """A reason without its particulars, to count alike reasons together in the summary:
    'truncated: pixel data needs 5120 bytes, file has 100' -> '... needs N bytes, file has N';
    a UID is named, not counted: 'SOP class 1.2.840.10008.5.1.4.1.1.7 ...' -> 'SOP class
    Secondary Capture Image Storage ...', 'study/1.2.3.4.dcm' -> 'study/UID.dcm'."""
    kind = (reason or "").split(" (")[0].split(";")[0].replace("\n", " ")
    kind = re.sub(r"\d+(?:\.\d+)?", "N", _UID.sub(_uid_word, kind))
    return kind if len(kind) <= n else kind[: n - 1] + "…"
