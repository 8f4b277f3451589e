"""Pass 1 of `prepare`: list input files and read their headers (no pixels), in parallel.

    files = list_input_files(dicom_dir)            # [InputFile(relpath, size, mtime_ns)]
    rows = index_local(dicom_dir, files)           # in this process (inspect, tests)
    rows = index_ray(dicom_dir, files, progress)   # Ray Data map_batches over the paths

Each row is {"path": relpath, "header": dict | None, "error": str | None}: a file that
cannot be read becomes a row with its error, never an exception.  Headers hold PHI; they
live only in memory during `prepare` and are never written out.

`index_ray` gives the driver a light header (`light_header`: the study UID, the PHI values
and the decode cost: what grouping, the PHI-in-path check and the shard balance need) and
the full header as pickled bytes in row["blob"], unpickled only by the task that plans the
study (`full_rows`).  Unpickling every full header in the driver took about 35 us a file
(0.4 s for the benchmark cohort) on a core the workers need; a light one takes 3 us.
"""
from __future__ import annotations

import os
import pickle
import stat
from dataclasses import dataclass
from typing import Callable

import pyarrow as pa

from cmr_ray.console import print_progress  # the one progress printer (prepare imports it from here)

INDEX_SCHEMA = pa.schema([("path", pa.string()), ("header", pa.binary()), ("light", pa.binary()),
                          ("error", pa.string())])


@dataclass(frozen=True)
class InputFile:
    path: str  # relative to the DICOM dir, '/'-separated
    size: int
    mtime_ns: int

    @property
    def stamp(self) -> str:
        return f"{self.path}:{self.size}:{self.mtime_ns}"


def list_input_files(dicom_dir: str | os.PathLike) -> list[InputFile]:
    """Every regular file under `dicom_dir` (sorted; symlinks to files followed, symlinked
    directories not entered, unreadable directories skipped, as os.walk does)."""
    root = os.path.abspath(dicom_dir)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{dicom_dir}: not a directory")
    out: list[InputFile] = []

    def walk(directory: str, prefix: str) -> None:
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError:
            return
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                walk(e.path, f"{prefix}{e.name}/")
                continue
            try:
                st = e.stat()  # follows a symlink
            except OSError:
                continue  # a dangling link: nothing to read, and no stable identity
            if stat.S_ISREG(st.st_mode):
                out.append(InputFile(prefix + e.name, st.st_size, st.st_mtime_ns))

    walk(root, "")
    return sorted(out, key=lambda f: f.path)


def error_reason(e: BaseException) -> str:
    """One line for the manifest: DicomReadError's bare reason, else the exception text."""
    msg = getattr(e, "reason", None) or " ".join(str(e).split())
    return msg if msg else type(e).__name__


def read_one(root: str, relpath: str) -> tuple[dict | None, str | None]:
    """(header, None) or (None, one-line error).  Headers only; a bad file never raises."""
    from cmr_ray.dicom.headers import read_header

    try:
        header = read_header(os.path.join(root, relpath))
    except Exception as e:  # DicomReadError and anything a broken file provokes
        return None, error_reason(e)
    return header, None


def file_cost(header: dict) -> int:
    """A file's decode work in frame units: a frame with a pixel layout (read directly)
    counts 1, one that needs a full pydicom decode (compressed, big endian, ...) counts 3."""
    return int(header.get("number_of_frames") or 1) * (1 if header.get("pixel_layout") else 3)


def light_header(header: dict) -> dict:
    """The part of a header the driver of `prepare` needs (module docstring)."""
    from cmr_ray.dicom.headers import PHI_KEYS

    return {"study_instance_uid": header.get("study_instance_uid"), "decode_cost": file_cost(header),
            **{k: header.get(k) for k in PHI_KEYS}}


def full_rows(rows: list[dict]) -> list[dict]:
    """`index_ray` rows with their full headers (from row["blob"]), as `index_local` gives them."""
    return [{"path": r["path"], "error": r["error"],
             "header": pickle.loads(r["blob"]) if r.get("blob") is not None else r["header"]} for r in rows]


def index_batch(batch: pa.Table | dict, root: str) -> pa.Table:
    """Ray Data batch function: paths in, (path, pickled header, pickled light header, error) out."""
    from cmr_ray.dicom.headers import forget_values

    paths = batch["path"]
    paths = paths.to_pylist() if hasattr(paths, "to_pylist") else list(paths)
    headers, lights, errors = [], [], []
    try:
        for p in paths:
            h, err = read_one(root, str(p))
            headers.append(pickle.dumps(h, protocol=5) if h is not None else None)
            lights.append(pickle.dumps(light_header(h), protocol=5) if h is not None else None)
            errors.append(err)
    finally:
        forget_values()  # no header value stays in the worker after its batch
    return pa.table({"path": paths, "header": headers, "light": lights, "error": errors}, schema=INDEX_SCHEMA)


def index_local(dicom_dir, files: list[InputFile], progress: Callable | None = None) -> list[dict]:
    from cmr_ray.dicom.headers import forget_values

    root = os.path.abspath(dicom_dir)
    rows = []
    try:
        for i, f in enumerate(files, 1):
            h, err = read_one(root, f.path)
            rows.append({"path": f.path, "header": h, "error": err})
            if progress and (i % 500 == 0 or i == len(files)):
                progress(i, len(files), "files indexed")
    finally:
        forget_values()
    return rows


def index_ray(dicom_dir, files: list[InputFile], num_cpus: int | None = None,
              progress: Callable | None = print_progress, batch_size: int | None = None) -> list[dict]:
    """Headers of `files` read in parallel by Ray Data; rows come back in input order, each
    {"path", "header": light header or None, "error", "blob": pickled full header or None}."""
    import ray

    if not files:
        return []
    root = os.path.abspath(dicom_dir)
    cpus = max(1, int(num_cpus or ray.cluster_resources().get("CPU", 1)))
    # Enough batches to keep every CPU busy, big enough that per-task overhead stays small.
    batch_size = batch_size or max(16, min(512, len(files) // (4 * cpus) + 1))
    ds = ray.data.from_items([{"path": f.path} for f in files],
                             override_num_blocks=max(1, -(-len(files) // batch_size)))
    ds = ds.map_batches(index_batch, fn_kwargs={"root": root}, batch_size=batch_size,
                        batch_format="pyarrow", zero_copy_batch=True)
    by_path: dict[str, dict] = {}
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        for path, hb, lb, err in zip(*(batch[c].to_pylist() for c in ("path", "header", "light", "error"))):
            by_path[path] = {"path": path, "header": pickle.loads(lb) if lb is not None else None,
                             "error": err, "blob": hb}
        if progress:
            progress(len(by_path), len(files), "files indexed")
    return [by_path[f.path] for f in files]
