"""Reading the clip store back: only the columns an experiment uses.

    info = store_info("store")                                    # store.json as a dict
    rows = load_split("store", ["cine_sax", "lge_sax"], "train")  # list[dict], pyarrow only
    ds = read_split("store", ["cine_sax"], "val")                 # ray.data.Dataset

Store paths are local directories or URIs (`s3://bucket/store`); both go through
`pyarrow.fs.FileSystem.from_uri`.  Only the shards that the store's registry
(`studies.parquet`, written by `prepare` as its commit point) names for its used studies are
read: a temp file, or a shard an interrupted run wrote but never committed, or any other
stray `.parquet` under `shards/` is never read.  (A store built by hand without a registry
and without `prepare`'s `counts` in store.json is read by listing `shards/`.)  `slots` are `cmr_ray.views.SLOTS` names
(e.g. from `combo_slots(cfg.data.views)`); `split=None` reads every split.
"""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cmr_ray.data import storefs
from cmr_ray.data.schema import columns_for, readable_columns, with_absent_findings
from cmr_ray.views import SLOTS

SPLITS = ("train", "val", "test")


class StoreError(ValueError):
    pass


def store_info(store) -> dict:
    fs, root = storefs.open_store(store)
    path = storefs.join(root, "store.json")
    if not storefs.exists(fs, path):
        raise StoreError(f"{store}: not a clip store (no store.json; run `cmr-ray prepare` first)")
    return json.loads(storefs.read_bytes(fs, path))


def shard_paths(store) -> tuple:
    """(filesystem, sorted shard paths): the shards `studies.parquet` names for used studies."""
    fs, root = storefs.open_store(store)
    shard_dir, registry = storefs.join(root, "shards"), storefs.join(root, "studies.parquet")
    if not storefs.exists(fs, registry):
        if "counts" in store_info(store):  # written by `prepare`, which always writes the registry
            raise StoreError(f"{store}: studies.parquet is missing (the registry naming the store's "
                             "shards); run `cmr-ray prepare` again")
        return fs, storefs.list_files(fs, shard_dir, ".parquet")
    try:
        table = pq.read_table(pa.BufferReader(storefs.read_bytes(fs, registry)), columns=["shard", "status"])
    except (pa.ArrowException, OSError) as e:
        raise StoreError(f"{registry}: unreadable study registry ({e})") from None
    named = {r["shard"] for r in table.to_pylist() if r["status"] == "used" and r["shard"]}
    bad = sorted(n for n in named if "/" in n or not n.endswith(".parquet"))
    if bad:
        raise StoreError(f"{registry}: shard name {bad[0]!r} is not a file name under shards/")
    present = {p.rsplit("/", 1)[1] for p in storefs.list_files(fs, shard_dir, ".parquet")}
    missing = sorted(named - present)
    if missing:
        raise StoreError(f"{store}: studies.parquet names {len(missing)} shard(s) missing from shards/, "
                         f"e.g. {missing[0]}; run `cmr-ray prepare` again")
    return fs, [storefs.join(shard_dir, n) for n in sorted(named)]


def _check(slots, split) -> list[str]:
    slots = list(slots)
    bad = [s for s in slots if s not in SLOTS]
    if bad:
        raise StoreError(f"unknown slot(s) {bad} (known: {', '.join(SLOTS)})")
    if split is not None and split not in SPLITS:
        raise StoreError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
    return slots


def load_table(store, slots, split: str | None = None) -> pa.Table:
    """The store's rows for `split` with only the meta columns and the `slots` columns."""
    slots = _check(slots, split)
    store_info(store)
    fs, paths = shard_paths(store)
    cols = columns_for(slots)
    if not paths:
        from cmr_ray.data.schema import arrow_schema

        return arrow_schema().empty_table().select(cols)
    filt = (pc.field("split") == split) if split else None
    ds = pq.ParquetDataset(paths, filesystem=fs, filters=filt)
    table = ds.read(columns=readable_columns(cols, ds.schema.names))  # a schema-1 store lacks the finding columns
    return with_absent_findings(table, cols).sort_by("study_key")


def load_split(store, slots, split: str | None = None) -> list[dict]:
    """Rows as dicts (study_key, split, impression, labels, <slot>, <slot>_shape), by study_key."""
    return load_table(store, slots, split).to_pylist()


def read_split(store, slots, split: str | None = None):
    """A Ray Dataset of the same rows (column pruning and the split filter pushed down)."""
    import ray

    slots = _check(slots, split)
    store_info(store)
    fs, paths = shard_paths(store)
    if not paths:
        raise StoreError(f"{store}: the store has no shards")
    cols = readable_columns(columns_for(slots), pq.read_schema(paths[0], filesystem=fs).names)
    ds = ray.data.read_parquet(paths, filesystem=fs).select_columns(cols)
    if split:
        from ray.data.expressions import col

        ds = ds.filter(expr=col("split") == split)  # pushed into the Parquet scan by Ray's optimizer
    return ds
