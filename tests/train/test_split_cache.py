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
