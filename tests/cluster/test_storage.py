"""cmr_ray.storage: local paths (unit) and an S3-compatible server on 127.0.0.1 (integration)."""
from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from cmr_ray import storage


def test_filesystem_local_path_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fs, path = storage.filesystem("store/x")
    assert isinstance(fs, pafs.LocalFileSystem)
    assert path == str(tmp_path / "store" / "x")
    fs2, path2 = storage.filesystem(f"file://{tmp_path}/y")
    assert isinstance(fs2, pafs.LocalFileSystem) and path2 == str(tmp_path / "y")


def test_filesystem_s3_honours_endpoint_env(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    fs, path = storage.filesystem("s3://my-bucket/store/")
    assert isinstance(fs, pafs.S3FileSystem)
    assert path == "my-bucket/store"
    assert fs.region == "eu-west-1"
    # The override is part of the filesystem's identity: it survives pickling to Ray workers.
    import pickle

    assert "127.0.0.1:9" in repr(pickle.loads(pickle.dumps(fs)).__reduce__())
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:7")
    assert "127.0.0.1:7" in repr(storage.filesystem("s3://my-bucket")[0].__reduce__())


@pytest.mark.parametrize("bad", ["s3://ab/x", "", "nosuch://x/y"])
def test_filesystem_rejects_bad_uris(bad):
    with pytest.raises(storage.StorageError, match="storage path"):
        storage.filesystem(bad)


def test_join_keeps_scheme_and_rejects_escape(tmp_path):
    assert storage.join("s3://b-1/root/", "shards", "a.parquet") == "s3://b-1/root/shards/a.parquet"
    assert storage.join(str(tmp_path), "a", "b") == str(tmp_path / "a" / "b")
    for bad in ("/abs", "../up", "a/../../b", ""):
        with pytest.raises(storage.StorageError, match="join"):
            storage.join("s3://b-1/root", bad)


def test_local_write_read_list_exists(tmp_path):
    root = str(tmp_path / "store")
    target = storage.join(root, "meta", "store.json")
    assert not storage.exists(target)
    storage.write_bytes_atomic(target, b'{"v": 1}')
    assert storage.exists(target) and storage.read_bytes(target) == b'{"v": 1}'
    storage.write_bytes_atomic(target, b'{"v": 2}')  # replaces
    assert storage.read_bytes(target) == b'{"v": 2}'
    storage.write_bytes_atomic(storage.join(root, "a.bin"), b"")
    assert storage.listdir(root) == ["a.bin", "meta"]
    assert storage.listdir(storage.join(root, "meta")) == ["store.json"]  # no temporaries left


def test_listdir_skips_temporaries_and_errors_clearly(tmp_path):
    (tmp_path / "done.parquet").write_bytes(b"x")
    (tmp_path / f"half.parquet{storage.TMP_MARK}abc").write_bytes(b"x")
    assert storage.listdir(str(tmp_path)) == ["done.parquet"]
    with pytest.raises(FileNotFoundError, match="no such directory"):
        storage.listdir(str(tmp_path / "missing"))
    with pytest.raises(NotADirectoryError):
        storage.listdir(str(tmp_path / "done.parquet"))
    with pytest.raises(FileNotFoundError, match="no such file"):
        storage.read_bytes(str(tmp_path / "missing.json"))


def test_failed_write_leaves_old_content_and_no_temporary(tmp_path):
    target = str(tmp_path / "store.json")
    storage.write_bytes_atomic(target, b"old")

    class Boom:
        def __bytes__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        storage.write_bytes_atomic(target, Boom())
    assert storage.read_bytes(target) == b"old"
    assert os.listdir(tmp_path) == ["store.json"]


@pytest.mark.integration
def test_s3_roundtrip_pyarrow_and_ray_data(s3_bucket):
    """Write, list and read back on a real S3 API (moto on 127.0.0.1): bytes, Parquet
    through pyarrow, and Parquet through Ray Data with and without an explicit filesystem."""
    import boto3

    root = storage.join(s3_bucket, "store")
    storage.write_bytes_atomic(storage.join(root, "store.json"), b'{"studies": 4}')
    assert storage.exists(storage.join(root, "store.json"))
    assert not storage.exists(storage.join(root, "nope.json"))
    assert storage.read_bytes(storage.join(root, "store.json")) == b'{"studies": 4}'

    fs, shards = storage.filesystem(storage.join(root, "shards"))
    for i in range(2):
        table = pa.table({"study": [f"s{i}{j}" for j in range(3)], "x": [i * 10 + j for j in range(3)]})
        buf = pa.BufferOutputStream()
        pq.write_table(table, buf)
        storage.write_bytes_atomic(storage.join(root, "shards", f"part-{i}.parquet"), buf.getvalue().to_pybytes())
    assert storage.listdir(root) == ["shards", "store.json"]
    assert storage.listdir(storage.join(root, "shards")) == ["part-0.parquet", "part-1.parquet"]
    assert sorted(pq.read_table(shards, filesystem=fs)["x"].to_pylist()) == [0, 1, 2, 10, 11, 12]

    # The objects really are on the server under the expected keys, no temporaries.
    bucket = s3_bucket[len("s3://"):]
    keys = sorted(o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["store/shards/part-0.parquet", "store/shards/part-1.parquet", "store/store.json"]

    from cmr_ray.runtime import init_ray

    ray = init_ray(num_cpus=1)  # workers inherit AWS_ENDPOINT_URL & co. from this process
    try:
        by_uri = ray.data.read_parquet(storage.join(root, "shards")).take_all()
        by_fs = ray.data.read_parquet(shards, filesystem=fs).take_all()
        assert sorted(r["x"] for r in by_uri) == [0, 1, 2, 10, 11, 12]
        assert sorted(r["study"] for r in by_fs) == ["s00", "s01", "s02", "s10", "s11", "s12"]
        # Ray Data writes there too (what prepare will do with a store on S3).
        ray.data.from_items([{"k": i} for i in range(5)]).write_parquet(
            storage.join(root, "written"), filesystem=None
        )
        assert sorted(r["k"] for r in ray.data.read_parquet(storage.join(root, "written")).take_all()) == [
            0, 1, 2, 3, 4
        ]
    finally:
        ray.shutdown()
