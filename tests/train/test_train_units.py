"""Pure pieces of training: augmentation, per-study sampling, the LR schedule (no Ray cluster)."""
import numpy as np
import pyarrow as pa
import pytest

from cmr_ray.data.clips import make_clip
from cmr_ray.data.schema import arrow_schema
from cmr_ray.model.ids import impression_id
from cmr_ray.train.augment import augment_clip, jitter, warp
from cmr_ray.train.data import sample_rows
from cmr_ray.train.loop import warmup_cosine
from tests.model.fakes import fake_study


def asym_clip():
    clip = np.zeros((3, 32, 32), np.uint8)
    clip[:, 8:24, 2:10] = 200  # a bright bar on the left
    return clip


def test_warp_identity_and_small_motion():
    clip = asym_clip()
    assert np.array_equal(warp(clip, 0.0, 1.0, 0.0, 0.0), clip)
    moved = warp(clip, 0.0, 1.0, 0.0, 0.25)  # a quarter of the width to the right
    cols = np.nonzero(moved[0].max(axis=0) > 100)[0]
    assert cols.min() == 10 and cols.max() == 17


def test_augment_keeps_left_right_and_frames_alike():
    clip = asym_clip()
    for seed in range(20):
        out = augment_clip(clip, np.random.default_rng(seed))
        bright = out > 120
        assert bright[:, :, :16].sum() > 0 and bright[:, :, 16:].sum() == 0  # never mirrored by default
        assert np.array_equal(out[0], out[1]) and np.array_equal(out[1], out[2])  # one transform per clip


def test_hflip_only_when_allowed():
    clip = asym_clip()
    flipped = 0
    for seed in range(20):
        out = augment_clip(clip, np.random.default_rng(seed), hflip=True)
        flipped += int((out[:, :, 16:] > 120).sum() > (out[:, :, :16] > 120).sum())
    assert 3 <= flipped <= 17


def test_jitter_stays_in_range_and_keeps_order():
    clip = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (1, 32, 1))
    out = jitter(clip, np.random.default_rng(0))
    assert out.dtype == np.uint8 and np.all(np.diff(out[0, 0].astype(int)) >= 0)


def test_augment_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        augment_clip(np.zeros((2, 8, 8), np.float32), np.random.default_rng(0))


def rows_table(n=4):
    rng = np.random.default_rng(0)
    return pa.Table.from_pylist([fake_study(i, 32, rng) for i in range(n)], schema=arrow_schema())


def test_sample_rows_val_is_midpoints_and_train_is_seeded():
    table = rows_table()
    combo = "cine:sax|lge:sax"
    val = sample_rows(table, combo, 4, train=False)
    assert val["video"].shape == (4, 4, 32, 32) and val["video"].dtype == np.uint8
    row0 = table.to_pylist()[0]
    assert np.array_equal(val["video"][0], make_clip(row0, combo, 4, None))
    assert val["iid"][0] == impression_id(row0["impression"])
    a = sample_rows(table, combo, 4, train=True, seed=3, augment=True)
    b = sample_rows(table, combo, 4, train=True, seed=3, augment=True)
    c = sample_rows(table, combo, 4, train=True, seed=4, augment=True)
    assert np.array_equal(a["video"], b["video"]) and not np.array_equal(a["video"], c["video"])
    # a row gets the same clip whatever batch it lands in
    alone = sample_rows(table.slice(2, 1), combo, 4, train=True, seed=3, augment=True)
    assert np.array_equal(alone["video"][0], a["video"][2])
    # data.sampling reaches the clips: 3 frames of cine SAX + LGE SAX (8 slices each) split 2 + 1 per view
    pv = sample_rows(table, combo, 3, train=False, sampling="per_view")
    assert np.array_equal(pv["video"][0], make_clip(row0, combo, 3, None, "per_view"))
    assert not np.array_equal(pv["video"][0], make_clip(row0, combo, 3, None))


def test_warmup_then_cosine():
    f = warmup_cosine(100, 0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(55) == pytest.approx(0.5, abs=0.01)
    assert f(99) < 0.01 and all(f(i) >= f(i + 1) for i in range(10, 99))
    assert warmup_cosine(10, 0.0)(0) == pytest.approx(1.0)


def test_studies_missing_a_view_are_left_out(tmp_path):
    from cmr_ray.train.data import count_split

    rng = np.random.default_rng(0)
    rows = [fake_study(i, 32, rng) for i in range(10)]
    rows[0]["lge_sax"], rows[0]["lge_sax_shape"] = None, None  # study 0 (train) has no LGE SAX
    (tmp_path / "shards").mkdir()
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema()), tmp_path / "shards" / "part-0.parquet")
    (tmp_path / "store.json").write_text("{}")
    n_all = sum(r["split"] == "train" for r in rows)
    assert count_split(str(tmp_path), "train", ["cine_sax"]) == n_all
    assert count_split(str(tmp_path), "train", ["cine_sax", "lge_sax"]) == n_all - 1
    table = pa.Table.from_pylist(rows[:3], schema=arrow_schema())
    out = sample_rows(table, "cine:sax|lge:sax", 4, train=False)
    assert list(out["study_key"]) == ["s00001", "s00002"] and out["video"].shape == (2, 4, 32, 32)
    none = sample_rows(table.slice(0, 1), "cine:sax|lge:sax", 4, train=False)
    assert none["video"].shape == (0, 4, 32, 32)


def test_plan_steps_budgets_in_optimizer_steps():
    from cmr_ray.train.budget import plan_steps

    from cmr_ray.config import load_config

    cfg = load_config(None, {"train.batch_size": 64, "train.accum_steps": 1, "train.epochs": 10, "train.steps": 0})
    tr = cfg.train
    assert plan_steps(tr, 538) == (8, 10, 80)                  # epochs: whole epochs
    assert plan_steps(cfg.replace("train.steps", 150).train, 538) == (8, 19, 150)  # steps: the last epoch is partial
    assert plan_steps(cfg.replace("train.steps", 16).train, 538) == (8, 2, 16)
    assert plan_steps(cfg.replace("train.steps", 150).train, 538, world=2) == (4, 38, 150)
    with pytest.raises(ValueError, match="fewer than"):
        plan_steps(tr, 50)


def test_fast_warp_and_augment_equal_the_reference_to_the_bit():
    from cmr_ray.train.augment import augment_clip_reference, warp_reference

    rng = np.random.default_rng(1)
    for f, h, w in ((1, 17, 23), (3, 32, 32), (5, 40, 36)):
        clip = rng.integers(0, 256, (f, h, w), dtype=np.uint8)
        for p in ((0.0, 1.0, 0.0, 0.0), (10.0, 0.95, 0.06, -0.06), (-10.0, 1.05, -0.06, 0.06), (3.3, 1.01, 0.5, 0.2)):
            assert np.array_equal(warp(clip, *p), warp_reference(clip, *p)), (clip.shape, p)
        for seed in range(8):
            a = augment_clip(clip, np.random.default_rng(seed), hflip=True)
            b = augment_clip_reference(clip, np.random.default_rng(seed), hflip=True)
            assert np.array_equal(a, b)


def test_zero_copy_rows_give_the_same_clips():
    from cmr_ray.train.data import store_rows

    table = rows_table()
    slots = ["cine_sax", "lge_sax"]
    fast, slow = store_rows(table, slots), store_rows(table, slots, zero_copy=False)
    assert [set(r) for r in fast] == [set(r) for r in slow]
    for a, b in zip(fast, slow):
        assert isinstance(a["cine_sax"], pa.Buffer) and bytes(a["cine_sax"]) == b["cine_sax"]
        assert make_clip(a, "cine:sax|lge:sax", 4, None).tobytes() == make_clip(b, "cine:sax|lge:sax", 4, None).tobytes()
    for batch in table.to_batches(max_chunksize=3):  # a RecordBatch too
        assert [r["study_key"] for r in store_rows(batch, slots)] == batch.column("study_key").to_pylist()


def test_augment_on_device_ships_the_cpu_draws():
    import torch

    from cmr_ray.train.augment import augment_batch

    table = rows_table()
    combo = "cine:sax|lge:sax"
    cpu = sample_rows(table, combo, 4, train=True, seed=3, augment=True)
    dev = sample_rows(table, combo, 4, train=True, seed=3, augment=True, augment_on="device")
    plain = sample_rows(table, combo, 4, train=True, seed=3, augment=False)
    assert "aug" not in cpu and dev["aug"].shape == (len(dev["video"]), 8)
    assert np.array_equal(dev["video"], plain["video"])  # the same frames, not yet augmented
    got = augment_batch(torch.from_numpy(dev["video"]), dev["aug"]).numpy()
    diff = np.abs(got.astype(int) - cpu["video"].astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    with pytest.raises(ValueError, match="augment_on"):
        sample_rows(table, combo, 4, train=True, augment_on="gpu")
