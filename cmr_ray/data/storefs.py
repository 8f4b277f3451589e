"""Store paths through `pyarrow.fs`, so a store can be a local directory or an `s3://` URI.

    fs, root = open_store("store")           # local dir (made absolute)
    fs, root = open_store("s3://bucket/store")
    write_bytes_atomic(fs, join(root, "store.json"), b"...")

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
