"""The training data pipeline: store -> pruned columns -> sampled, augmented clips (Ray Data).

    clock = EpochClock.remote()
    ds = clip_dataset(cfg, "train", clock)          # rows: video uint8 [F, H, W], impression, iid
    for batch in iter_clip_batches(ds_or_shard, batch_size=64, train=True, seed=0, epoch=3):
        batch["video"]    # uint8 tensor [B, F, H, W]; to_unit(batch["video"], device) -> float in [0, 1]
        batch["texts"]    # list[str];  batch["iid"]: int64 tensor of impression ids
        batch["aug"]      # only with train.augment_on: device: float64 [B, 8] for augment.augment_batch

Only the columns of the experiment's views are read (`cmr_ray.data.reader.load_table` for a
split kept in the object store, `read_split` for one streamed each epoch; both push column
pruning and the split filter into the Parquet scan).  Frame sampling runs
in Ray Data tasks (`cmr_ray.data.clips.make_clip`): a random frame per segment for
training, segment midpoints for val/test; training clips are then augmented
(`cmr_ray.train.augment`).  Randomness is a function of (train.seed, epoch, study), so a
run is reproducible whatever order or process a row lands in; the tasks learn the epoch
from a tiny `EpochClock` actor that every worker sets before it starts an epoch (Ray
Data's streaming split starts an epoch only once every worker has asked for it).
"""
from __future__ import annotations

import hashlib

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray
import ray.data

from cmr_ray.config import Config
from cmr_ray.data.clips import make_clip
from cmr_ray.data.reader import load_table, read_split, shard_paths, store_info
from cmr_ray.model.ids import impression_id
from cmr_ray.train.augment import PARAM_NAMES, augment_clip, augment_params
from cmr_ray.views import combo_slots


@ray.remote(num_cpus=0)
class EpochClock:
    """Holds the current epoch for the data tasks of one training run."""

    def __init__(self):
        self.epoch = 0

    def set(self, epoch: int) -> int:
        self.epoch = int(epoch)
        return self.epoch

    def get(self) -> int:
        return self.epoch


def study_rng(seed: int, epoch: int, study_key: str) -> np.random.Generator:
    h = int.from_bytes(hashlib.blake2b(study_key.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng([int(seed), int(epoch), h])


def store_rows(batch, slots, zero_copy: bool = True) -> list[dict]:
    """A pyarrow Table/RecordBatch of store rows -> one dict per row.

    With `zero_copy` the `slots`' frame columns are `pyarrow.Buffer` views of the batch's
    memory (a paper-size cine SAX is 15 MB a study: `to_pylist` would copy it into a Python
    `bytes`); `decode_view` reads either without a copy."""
    if not zero_copy:
        return batch.to_pylist()
    names = batch.schema.names
    frames = [s for s in slots if s in names]
    rows = batch.drop_columns(frames).to_pylist() if frames else batch.to_pylist()
    for slot in frames:
        col = batch.column(slot)
        for i, row in enumerate(rows):
            v = col[i]
            row[slot] = v.as_buffer() if v.is_valid else None
    return rows


def sample_rows(batch, combo: str, frames: int, train: bool, seed: int = 0, clock=None,
                augment: bool = True, hflip: bool = False, augment_on: str = "cpu",
                sampling: str = "uniform") -> dict:
    """A pyarrow batch of store rows -> {'video': uint8 [n, F, H, W], 'impression', 'iid'}.

    With `augment_on="device"` training clips leave unaugmented, with their transform drawn
    here (the same draws as on the CPU) as 'aug': float64 [n, 8] (`augment.PARAM_NAMES`) for
    `cmr_ray.train.augment_torch.augment_batch` to apply on the model's device.
    A study that lacks one of the combo's views is left out (`count_split` leaves it out too)."""
    if augment_on not in ("cpu", "device"):
        raise ValueError(f"train.augment_on must be 'cpu' or 'device', got {augment_on!r}")
    epoch = ray.get(clock.get.remote()) if (train and clock is not None) else 0
    slots = combo_slots(combo)
    on_device = train and augment and augment_on == "device"
    videos, texts, ids, keys, params, hw = [], [], [], [], [], (1, 1)
    for row in store_rows(batch, slots):
        shapes = [row.get(f"{slot}_shape") for slot in slots]
        hw = next((tuple(sh[2:]) for sh in shapes if sh is not None), hw)
        if any(row.get(slot) is None for slot in slots):
            continue
        rng = study_rng(seed, epoch, row["study_key"]) if train else None
        clip = make_clip(row, combo, frames, rng, sampling)
        if on_device:
            params.append(augment_params(rng, hflip=hflip))
        elif train and augment:
            clip = augment_clip(clip, rng, hflip=hflip)
        videos.append(clip)
        texts.append(row["impression"])
        ids.append(impression_id(row["impression"]))
        keys.append(row["study_key"])
    if not videos:
        out = {"video": np.zeros((0, frames, *hw), np.uint8), "impression": np.array([], dtype=object),
               "iid": np.zeros(0, np.int64), "study_key": np.array([], dtype=object)}
    else:
        out = {"video": np.stack(videos), "impression": np.array(texts, dtype=object),
               "iid": np.array(ids, dtype=np.int64), "study_key": np.array(keys, dtype=object)}
    if on_device:
        out["aug"] = np.array(params, np.float64).reshape(len(videos), len(PARAM_NAMES))
    return out


def count_split(store: str, split: str, slots=()) -> int:
    """Rows of one split that have every slot in `slots` (reads only `split` and `<slot>_shape`)."""
    store_info(store)
    fs, paths = shard_paths(store)
    if not paths:
        return 0
    table = pq.ParquetDataset(paths, filesystem=fs).read(columns=["split"] + [f"{s}_shape" for s in slots])
    keep = pc.equal(table["split"], split)
    for s in slots:
        keep = pc.and_(keep, pc.is_valid(table[f"{s}_shape"]))
    return int(pc.sum(keep).as_py() or 0)


def split_bytes(store: str, slots, split: str) -> int:
    """Estimated in-memory bytes of one split's pruned columns, from the Parquet footers
    (uncompressed column-chunk sizes, scaled by the split's share of the rows)."""
    from cmr_ray.data.schema import columns_for

    fs, paths = shard_paths(store)
    wanted, total, rows = set(columns_for(slots)), 0, 0
    for path in paths:
        with fs.open_input_file(path) as f:
            meta = pq.ParquetFile(f).metadata
        rows += meta.num_rows
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            for c in range(rg.num_columns):
                col = rg.column(c)
                if col.path_in_schema.split(".")[0] in wanted:
                    total += int(col.total_uncompressed_size)
    return int(total * count_split(store, split) / rows) if rows else 0


def clip_dataset(cfg: Config, split: str, clock=None, rows_per_task: int = 64):
    """The Ray Dataset of sampled clips for one split of the config's store and views.

    When the split's pruned columns fit `train.cache_split_mb`, they are read once, in
    `study_key` order (`load_table`), and kept in Ray's object store in blocks of
    `rows_per_task` rows: later epochs only sample and augment, instead of reading and
    decompressing every shard again.  The rows, their order and so every seeded batch then
    depend only on the store's studies, not on how `prepare` grouped them into shards (which
    follows the core count it ran with).  A larger split is streamed from the shards each
    epoch, in the store's order."""
    d, t = cfg.data, cfg.train
    combo = d.views
    slots = combo_slots(combo)
    limit = t.cache_split_mb * 2**20
    if limit > 0 and split_bytes(d.store, slots, split) <= limit:
        table = load_table(d.store, slots, split)
        ds = ray.data.from_arrow([table.slice(i, rows_per_task) for i in range(0, max(table.num_rows, 1), rows_per_task)])
    else:
        ctx = ray.data.DataContext.get_current()
        v2 = getattr(ctx, "use_datasource_v2", None)
        # Ray 2.60's V2 Parquet listing starts 32 footer-reader actors per epoch (30-80 s on a
        # 2-core machine): V1 reads the same columns.
        ctx.use_datasource_v2 = False
        try:
            ds = read_split(d.store, slots, split)
        finally:
            if v2 is not None:
                ctx.use_datasource_v2 = v2
    train = split == "train"
    return ds.map_batches(
        sample_rows, batch_format="pyarrow", batch_size=rows_per_task, zero_copy_batch=True,
        fn_kwargs=dict(combo=combo, frames=d.frames, train=train, seed=t.seed,
                       clock=clock, augment=t.augment, hflip=t.hflip,
                       augment_on=t.augment_on, sampling=d.sampling),
    )


def _to_torch(batch: dict) -> dict:
    import torch

    video = torch.from_numpy(np.array(batch["video"], dtype=np.uint8))
    return {"video": video, "texts": [str(s) for s in batch["impression"]],
            "iid": torch.from_numpy(np.array(batch["iid"], dtype=np.int64)),
            "study_key": [str(s) for s in batch["study_key"]],
            **({"aug": np.asarray(batch["aug"], np.float64)} if "aug" in batch else {})}


def iter_clip_batches(it, batch_size: int, train: bool, seed: int = 0, epoch: int = 0):
    """Torch batches from a Dataset or a Train shard; training batches are shuffled
    (seeded per epoch) and the last partial batch is dropped (every worker then runs the
    same number of steps, which the gathered loss needs)."""
    kw = dict(batch_size=batch_size, batch_format="numpy", drop_last=train, prefetch_batches=2)
    if train:
        kw.update(local_shuffle_buffer_size=max(4 * batch_size, 256),
                  local_shuffle_seed=int(seed) * 100_003 + int(epoch))
    for batch in it.iter_batches(**kw):
        yield _to_torch(batch)


def to_unit(video, device):
    """uint8 [B, F, H, W] -> float32 in [0, 1] on `device` (the copy moves the small dtype)."""
    return video.to(device, non_blocking=True).float().div_(255.0)
