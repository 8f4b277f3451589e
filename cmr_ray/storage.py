"""Local paths and object-store URIs, treated alike.

Every layer that reads or writes the store, checkpoints or results goes through these,
so a path may be `cmr_store/x`, `/abs/dir`, `file:///abs/dir` or `s3://bucket/prefix`::

    from cmr_ray import storage
    fs, path = storage.filesystem("s3://bucket/store")   # (pyarrow FileSystem, path in it)
    storage.write_bytes_atomic(storage.join("s3://bucket/store", "store.json"), b"{}")
    storage.exists("s3://bucket/store/store.json")      # True
    storage.listdir("s3://bucket/store")                 # ['store.json']
    ray.data.read_parquet(path, filesystem=fs)           # same fs for Ray Data

S3-compatible servers (MinIO, moto, Ceph): set `AWS_ENDPOINT_URL` (or the S3-only
`AWS_ENDPOINT_URL_S3`), e.g. `http://127.0.0.1:9000`, plus the usual `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY` and `AWS_REGION`.  Set them before `ray.init` so Ray workers
inherit them.  Other pyarrow schemes (`gs://`, `hdfs://`) go through
`pyarrow.fs.FileSystem.from_uri` unchanged.

`write_bytes_atomic` never lets a reader see a half-written file under its final name:
locally it writes `<name>.tmp-<random>` and renames; on S3 one upload is all-or-nothing
by itself.  `listdir` skips such temporaries.
"""
from __future__ import annotations

import os
import posixpath
import uuid
from urllib.parse import urlparse

import pyarrow.fs as pafs

TMP_MARK = ".tmp-"


class StorageError(ValueError):
    """A path or URI that cannot be used, stated in one line."""


def _text(uri) -> str:
    uri = os.fspath(uri)
    if not isinstance(uri, str) or not uri:
        raise StorageError(f"storage path {uri!r}: expected a non-empty path or URI")
    return uri


def scheme(uri) -> str:
    """'' for a local path, else the URI scheme ('s3', 'gs', ...); 'file' counts as local."""
    uri = _text(uri)
    if "://" not in uri:
        return ""
    s = uri.split("://", 1)[0].lower()
    return "" if s == "file" else s


def is_remote(uri) -> bool:
    return scheme(uri) != ""


def s3_endpoint() -> str | None:
    """The S3 endpoint from the environment (`AWS_ENDPOINT_URL_S3`, then `AWS_ENDPOINT_URL`)."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def _s3(endpoint: str | None, region: str | None) -> pafs.S3FileSystem:
    kw = {}
    if endpoint:
        u = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        if u.scheme not in ("http", "https") or not u.netloc:
            raise StorageError(f"AWS_ENDPOINT_URL={endpoint!r}: expected http(s)://host[:port]")
        kw.update(endpoint_override=u.netloc, scheme=u.scheme)
        # S3-compatible servers rarely speak virtual-host style addressing.
        kw["force_virtual_addressing"] = False
    if region:
        kw["region"] = region
    return pafs.S3FileSystem(**kw)


def filesystem(uri) -> tuple[pafs.FileSystem, str]:
    """(pyarrow FileSystem, path inside it) for a local path or a URI.

    Local paths are made absolute.  `s3://bucket/key` gives the path `bucket/key` and an
    S3FileSystem: pointed at `AWS_ENDPOINT_URL[_S3]` (region from `AWS_REGION` or
    `AWS_DEFAULT_REGION`) when one is set, else AWS with the bucket's own region.
    """
    uri = _text(uri)
    s = scheme(uri)
    if s == "":
        path = uri[len("file://"):] if uri.lower().startswith("file://") else uri
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(path))
    if s in ("s3", "s3a"):
        rest = uri.split("://", 1)[1]
        bucket = rest.split("/", 1)[0]
        if len(bucket) < 3:
            raise StorageError(f"storage path {uri!r}: bucket name must have at least 3 characters")
        if s3_endpoint():  # an S3-compatible server: address it explicitly
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            return _s3(s3_endpoint(), region), rest.rstrip("/")
        uri = "s3://" + rest  # AWS itself: pyarrow finds the bucket's region
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except (ValueError, OSError) as e:  # unknown scheme, bad URI
        raise StorageError(f"storage path {uri!r}: {e}") from None
    return fs, path.rstrip("/") or path


def join(uri, *parts: str) -> str:
    """Join path parts onto a local path or URI, keeping its scheme."""
    uri = _text(uri)
    for p in parts:
        if not isinstance(p, str) or not p or p.startswith("/") or ".." in p.split("/"):
            raise StorageError(f"join({uri!r}, {p!r}): parts must be relative names without '..'")
    if not is_remote(uri):
        return os.path.join(uri, *parts)
    head, rest = uri.split("://", 1)
    return f"{head}://" + posixpath.join(rest.rstrip("/"), *parts)


def exists(uri) -> bool:
    fs, path = filesystem(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def read_bytes(uri) -> bytes:
    fs, path = filesystem(uri)
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.File:
        raise FileNotFoundError(f"{uri}: no such file")
    with fs.open_input_stream(path) as f:
        return f.read()


def write_bytes_atomic(uri, data: bytes) -> None:
    """Write `data` to `uri` so that readers see the old content or the new, never a part.

    Local: a temporary name beside the target, then `os.replace`.  Object stores: one
    upload of the whole buffer; S3 makes an object visible only when its upload
    completes, so this is already all-or-nothing (a temporary + copy would only add a
    copy, and pyarrow's delete of the temporary leaves a 'dir/' marker object behind).
    """
    data = bytes(data)  # materialise first: nothing is opened if this fails
    fs, path = filesystem(uri)
    if is_remote(uri):
        with fs.open_output_stream(path) as f:
            f.write(data)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}{TMP_MARK}{uuid.uuid4().hex[:10]}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def listdir(uri) -> list[str]:
    """Sorted names directly under `uri` (files and directories), temporaries skipped.

    Raises FileNotFoundError when nothing is there (on S3: no object under the prefix).
    """
    fs, path = filesystem(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"{uri}: no such directory")
    if info.type != pafs.FileType.Directory:
        raise NotADirectoryError(f"{uri}: not a directory")
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=False))
    return sorted(i.base_name for i in infos if TMP_MARK not in i.base_name)
