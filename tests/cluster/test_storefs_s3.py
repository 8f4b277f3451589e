"""The store's filesystem layer (`cmr_ray.data.storefs`) against a real S3 API (moto on
127.0.0.1): what `prepare` and the readers do to a store on S3, without Ray."""
from __future__ import annotations

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cmr_ray.data import storefs

pytestmark = pytest.mark.integration


def test_s3_write_list_read_with_no_temporaries_left(s3_bucket):
    fs, root = storefs.open_store(storefs.join(s3_bucket, "store"))
    storefs.write_bytes_atomic(fs, storefs.join(root, "store.json"), b'{"studies": 4}')
    assert storefs.exists(fs, storefs.join(root, "store.json"))
    assert not storefs.exists(fs, storefs.join(root, "nope.json"))
    assert storefs.read_bytes(fs, storefs.join(root, "store.json")) == b'{"studies": 4}'

    for i in range(2):
        buf = pa.BufferOutputStream()
        pq.write_table(pa.table({"x": [i * 10 + j for j in range(3)]}), buf)
        storefs.write_bytes_atomic(fs, storefs.join(root, "shards", f"part-{i}.parquet"), buf.getvalue().to_pybytes())
    # a temporary left by a crashed writer is not a file of the store
    with fs.open_output_stream(storefs.join(root, "shards", f"part-2.parquet{storefs.TMP_MARK}dead")) as f:
        f.write(b"half")
    listed = storefs.list_files(fs, storefs.join(root, "shards"), ".parquet")
    assert [p.rsplit("/", 1)[1] for p in listed] == ["part-0.parquet", "part-1.parquet"]
    assert sorted(pq.read_table(listed, filesystem=fs)["x"].to_pylist()) == [0, 1, 2, 10, 11, 12]
    assert storefs.remove_temp_files(fs, storefs.join(root, "shards")) == 1

    bucket = s3_bucket[len("s3://"):]
    keys = sorted(o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket)["Contents"]
                  if not o["Key"].endswith("/"))  # pyarrow may leave empty directory markers
    assert keys == ["store/shards/part-0.parquet", "store/shards/part-1.parquet", "store/store.json"]
