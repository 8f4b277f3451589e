"""Store paths through `pyarrow.fs`, so a store can be a local directory or an `s3://` URI.

    fs, root = open_store("store")           # local dir (made absolute)
    fs, root = open_store("s3://bucket/store")
    write_bytes_atomic(fs, join(root, "store.json"), b"...")
    problem = store_place_problem("store", dicom_dir="cohort/dicom")   # None or one line

Every write goes to a temporary name beside its target and is then moved into place,
so a reader never sees a half-written file under its final name (on S3 a single PUT is
already all-or-nothing; the move is a copy there, still never a partial object).
"""
from __future__ import annotations

import os
import uuid

import pyarrow.fs as pafs

TMP_MARK = ".tmp-"  # temp files are '<name>.tmp-<random>'; readers and listings skip them


def open_store(uri: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    uri = str(uri)
    if "://" not in uri:
        uri = os.path.abspath(uri)
    fs, root = pafs.FileSystem.from_uri(uri)
    return fs, root.rstrip("/") or "/"


def join(*parts: str) -> str:
    return "/".join(p.strip("/") if i else p.rstrip("/") for i, p in enumerate(parts))


def exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def read_bytes(fs: pafs.FileSystem, path: str) -> bytes:
    with fs.open_input_stream(path) as f:
        return f.read()


def write_bytes_atomic(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    tmp = f"{path}{TMP_MARK}{uuid.uuid4().hex[:8]}"
    with fs.open_output_stream(tmp) as f:
        f.write(data)
    fs.move(tmp, path)


def list_files(fs: pafs.FileSystem, path: str, suffix: str = "") -> list[str]:
    """Complete files under `path` ending in `suffix` (temp files left by a crash excluded)."""
    if not exists(fs, path):
        return []
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=False))
    return sorted(
        i.path for i in infos
        if i.type == pafs.FileType.File and TMP_MARK not in i.base_name and i.base_name.endswith(suffix)
    )


def remove_temp_files(fs: pafs.FileSystem, path: str) -> int:
    """Delete leftovers of an interrupted write; returns how many."""
    if not exists(fs, path):
        return 0
    n = 0
    for i in fs.get_file_info(pafs.FileSelector(path, recursive=False)):
        if i.type == pafs.FileType.File and TMP_MARK in i.base_name:
            fs.delete_file(i.path)
            n += 1
    return n


# What a store folder may hold (`prepare` writes these; an interrupted first run may have left
# only some of them): anything else means the folder is not a store.
STORE_ENTRIES = {"store.json", "manifest.parquet", "studies.parquet", "shards", "journal", ".salt"}


def store_place_problem(out: str | os.PathLike, dicom_dir: str | os.PathLike | None = None) -> str | None:
    """Why `out` cannot hold a store, in one line, or None when it can: an existing file, a
    non-empty folder that is not a store, a folder inside DICOM_DIR (or DICOM_DIR itself,
    whose files `prepare` would read back as inputs)."""
    text = str(out)
    if dicom_dir is not None and "://" not in text:
        store, src = os.path.realpath(text), os.path.realpath(str(dicom_dir))
        if store == src or store.startswith(src.rstrip(os.sep) + os.sep):
            where = "is DICOM_DIR" if store == src else f"is inside DICOM_DIR {dicom_dir}"
            return (f"--out {text} {where}: the store's own files would be read as inputs; "
                    "put the store outside it")
    try:
        fs, root = open_store(out)
        info = fs.get_file_info(root)
        if info.type == pafs.FileType.NotFound:
            return None
        if info.type != pafs.FileType.Directory:
            return f"--out {text} is an existing file, not a folder for the store"
        names = [i.base_name for i in fs.get_file_info(pafs.FileSelector(root, recursive=False))]
    except (OSError, ValueError) as e:
        return f"--out {text}: cannot use it for the store ({' '.join(str(e).split())})"
    foreign = sorted(n for n in names if n not in STORE_ENTRIES and TMP_MARK not in n)
    if foreign:
        return (f"--out {text} is a non-empty folder that is not a store ({len(foreign)} other "
                f"entr{'y' if len(foreign) == 1 else 'ies'}, e.g. {foreign[0]!r}); give a new or "
                "empty folder, or an existing store")
    return None
