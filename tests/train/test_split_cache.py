"""The training split kept in Ray's object store: estimated from the footers, same clips as reading."""
from __future__ import annotations

import numpy as np
import pytest

from cmr_ray.data.reader import load_table
from cmr_ray.train.data import split_bytes
from tests.train.conftest import tiny_train_cfg


def test_split_bytes_tracks_the_split_and_its_columns(fake_store):
    table = load_table(fake_store, ["cine_sax"], "train")
    est = split_bytes(fake_store, ["cine_sax"], "train")
    actual = table.nbytes
    assert 0.5 * actual <= est <= 2.0 * actual, (est, actual)
    assert split_bytes(fake_store, ["cine_sax", "lge_sax"], "train") > est
    assert split_bytes(fake_store, ["cine_sax"], "test") < est  # the test split is the smaller one


@pytest.mark.integration
def test_cached_and_streamed_splits_give_the_same_clips(ray_cluster, fake_store, tiny_text_model):
    from cmr_ray.train.data import EpochClock, clip_dataset

    got = {}
    for mb in (0.0, 2048.0):
        cfg = tiny_train_cfg(fake_store, tiny_text_model, **{"train.cache_split_mb": mb})
        clock = EpochClock.remote()
        ray_cluster.get(clock.set.remote(1))
        rows = clip_dataset(cfg, "train", clock).take_all()
        got[mb] = {r["study_key"]: r["video"] for r in rows}
    assert got[0.0].keys() == got[2048.0].keys() and len(got[0.0]) > 10
    for k, v in got[0.0].items():
        np.testing.assert_array_equal(v, got[2048.0][k])


@pytest.mark.integration
def test_cached_split_comes_in_study_key_order_whatever_the_shards(ray_cluster, tmp_path, tiny_text_model):
    """The same studies grouped into shards two ways give the cached split in one order, by
    study_key: the seeded shuffle then gives the same batches whatever core count `prepare`
    ran with (it sets the shard groups) and whichever read task finishes first (on the
    25-shard seed-2 store two `cmr-ray train` runs had different batches from step 0 before
    90e82be).  One store has a single shard; the other one big shard and six small ones, the
    rows reordered, so that in completion order the small shards would come first."""
    import pyarrow.parquet as pq

    from cmr_ray.train.data import EpochClock, clip_dataset
    from tests.model.fakes import write_fake_store

    one = write_fake_store(tmp_path / "one", studies=160, size=32, shards=1)
    many = write_fake_store(tmp_path / "many", studies=160, size=32, shards=1)
    shard_dir = tmp_path / "many" / "shards"
    table = pq.read_table(shard_dir / "part-00000.parquet")
    table = table.take(np.random.default_rng(1).permutation(table.num_rows))
    parts = [table.slice(0, 130)] + [table.slice(130 + 5 * k, 5) for k in range(6)]
    for k, part in enumerate(parts):
        pq.write_table(part, shard_dir / f"part-{k:05d}.parquet", row_group_size=8)
    stored = pq.read_table(shard_dir, columns=["study_key", "split"])
    keys = [k for k, s in zip(stored["study_key"].to_pylist(), stored["split"].to_pylist()) if s == "train"]
    assert keys != sorted(keys) and len(keys) > 50

    got = {}
    for name, store in (("one", one), ("many", many)):
        cfg = tiny_train_cfg(store, tiny_text_model, **{"train.cache_split_mb": 2048.0})
        ds = clip_dataset(cfg, "train", EpochClock.remote())
        # What Train's ingest sets (cmr_ray.train.trainer._ingest_options).  A Dataset runs with
        # the copy of the DataContext it took when it was made, so the option goes on that copy:
        # set on the global context after `clip_dataset`, it did nothing, and this test passed
        # only while the map tasks happened to finish in order (it failed on a loaded machine).
        ds.context.execution_options.preserve_order = True
        got[name] = [k for b in ds.iter_batches(batch_size=None, batch_format="numpy") for k in b["study_key"]]
    assert got["one"] == got["many"] == sorted(keys)
