"""The training input pipeline's CPU side, per core, at paper scale (issue 15).

    .venv/bin/python bench/bench_input.py --store STORE            # a store prepared with the paper preset
    .venv/bin/python bench/bench_input.py --make /tmp/bench-input --studies 24   # make one first

One process, one thread (BLAS/OpenMP/Arrow pinned to one thread): what `sample_rows`
does to a store batch, stage by stage, for every row of the store, at each --frames:

  read+decode       Parquet read of the combo's pruned columns (Snappy), rows out of the
                    Arrow batch, `decode_view` of each slot
  assemble+sample   `cmr_ray.data.clips.make_clip` (Figure 4 assembly, training sampling)
  augment           `cmr_ray.train.augment.augment_clip` (warp + intensity lookup)
  batch             np.stack into the uint8 [B, F, H, W] batch

Each stage runs the old path (`to_pylist` copies, whole-clip assembly, `warp_reference`) and
the new one (zero-copy Arrow buffers, only the sampled frames copied, cached-tap chunked warp)
side by side in the same pass, the new outputs checked equal to the old; the row 'device'
is the new path with `train.augment_on: device` (only the transform's parameters drawn on
the CPU); 'new+mmap' is the new path reading the shards memory-mapped (`pq.ParquetFile(...,
memory_map=True)`, one copy fewer; the training reader does not do this yet).  Times are CPU seconds (`time.process_time`) per clip, so a busy machine's other
processes do not count; clips/s per core = 1 / total.  The goal (issue 15): 33 clips/s per
core at 16 frames (an H200 at 40% MFU takes ~130 clips/s; 4 cores should feed it), i.e.
~8 clips/s per core at 64 frames (the model's cost grows about linearly with frames).
The store's files are read once before timing (page cache): disk or object-store reads
come on top.
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cmr_ray.data.clips import make_clip, make_clip_full  # noqa: E402
from cmr_ray.data.reader import shard_paths  # noqa: E402
from cmr_ray.data.schema import columns_for, decode_view, readable_columns  # noqa: E402
from cmr_ray.train.augment import augment_clip, augment_clip_reference, augment_params  # noqa: E402
from cmr_ray.train.data import store_rows, study_rng  # noqa: E402
from cmr_ray.views import FULL_COMBO, combo_slots  # noqa: E402

STAGES = ("read+decode", "assemble+sample", "augment", "batch")
GOAL_16 = 33.0  # clips/s per core at 16 frames


def make_store(workdir: str, studies: int) -> str:
    """synth (the paper preset's cohort) + prepare (the paper preset's image size), one core."""
    from cmr_ray.config import load_config
    from cmr_ray.data.prepare import prepare
    from cmr_ray.synth.cohort import generate_cohort

    cfg = load_config(str(ROOT / "experiments" / "base.yaml"), ["preset=paper"])
    d = cfg["data"]
    cohort, store = Path(workdir) / "cohort", Path(workdir) / f"store{d['image_size']}"
    if not (store / "store.json").exists():
        print(f"synth --protocol {d['synth_protocol']} --studies {studies}; prepare --image-size {d['image_size']} "
              f"into {store} ...", flush=True)
        generate_cohort(cohort, studies=studies, seed=0, protocol=d["synth_protocol"], workers=1, progress=False)
        prepare(cohort / "dicom", cohort / "reports.csv", str(store), labels=cohort / "labels.csv",
                cfg=cfg, num_cpus=1, progress=False)
    return str(store)


class Clock:
    """CPU seconds per stage, summed over a pass."""

    def __init__(self):
        self.t = dict.fromkeys(STAGES, 0.0)
        self._last = time.process_time()

    def lap(self, stage: str):
        now = time.process_time()
        self.t[stage] += now - self._last
        self._last = now


def one_pass(paths, cols, combo: str, frames: int, rows_per_task: int, path: str, check=None):
    """One pass over the store's rows; returns ({stage: CPU s}, clips, wall s, outputs)."""
    slots = combo_slots(combo)
    new = path != "old"
    clock, clips, outs = Clock(), 0, []
    w0 = time.perf_counter()
    for p in paths:
        f = pq.ParquetFile(p, memory_map=path.endswith("mmap"))
        for batch in f.iter_batches(batch_size=rows_per_task, columns=cols, use_threads=False):
            clock.lap("read+decode")  # the Parquet read and decompression happen in the generator
            rows = store_rows(batch, slots, zero_copy=new)
            for row in rows:  # decode every slot (old path: decode_view of the copied bytes)
                for s in slots:
                    decode_view(row[s], row[f"{s}_shape"])
            clock.lap("read+decode")
            videos, params = [], []
            for row in rows:
                rng = study_rng(0, 1, row["study_key"])
                clip = (make_clip if new else make_clip_full)(row, combo, frames, rng)
                clock.lap("assemble+sample")
                if path == "device":
                    params.append(augment_params(rng))
                else:
                    clip = (augment_clip if new else augment_clip_reference)(clip, rng)
                clock.lap("augment")
                videos.append(clip)
            out = np.stack(videos)
            if path == "device":
                np.array(params, np.float64)
            clips += len(videos)
            clock.lap("batch")
            outs.append(out)
    wall = time.perf_counter() - w0
    if check is not None:  # outside the timed pass
        assert all(np.array_equal(a, b) for a, b in zip(outs, check)), f"{path} path differs from the old one"
    return clock.t, clips, wall, outs


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--store", default=None, help="a store prepared with the paper preset (224 px)")
    p.add_argument("--make", default=None, metavar="DIR", help="make one in DIR (synth + prepare, one core)")
    p.add_argument("--studies", type=int, default=24, help="studies in a store made with --make")
    p.add_argument("--views", default=FULL_COMBO)
    p.add_argument("--frames", type=int, nargs="+", default=[16, 64])
    p.add_argument("--rows-per-task", type=int, default=8, help="rows per Parquet batch (the map task's batch)")
    p.add_argument("--repeats", type=int, default=3, help="timed passes per path (the median pass is kept)")
    a = p.parse_args(argv)
    if not (a.store or a.make):
        p.error("give --store STORE or --make DIR")
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    store = a.store or make_store(a.make, a.studies)
    fs, paths = shard_paths(store)
    if fs is not None and type(fs).__name__ != "LocalFileSystem":
        p.error("bench_input reads a local store")
    cols = readable_columns(columns_for(combo_slots(a.views)), pq.read_schema(paths[0]).names)
    first = pq.ParquetFile(paths[0]).read_row_group(0, columns=[f"{s}_shape" for s in combo_slots(a.views)])
    shape = {s: first.column(f"{s}_shape")[0].as_py() for s in combo_slots(a.views)}
    one_pass(paths, cols, a.views, 1, a.rows_per_task, "new")  # page cache, imports, lru caches
    print(f"# bench_input {datetime.date.today()}  store {store} ({sum(pq.ParquetFile(x).metadata.num_rows for x in paths)} "
          f"studies)  views {a.views}  shapes {shape}  rows/task {a.rows_per_task}  1 thread; "
          f"{a.repeats} passes per path, median; CPU ms per clip", flush=True)
    print(f"| frames | path | {' | '.join(STAGES)} | total ms | clips/s/core | vs old | wall clips/s | goal |")
    print("|---:|---|" + "---:|" * (len(STAGES) + 5))
    for frames in a.frames:
        goal = GOAL_16 * 16 / frames
        old_total, ref = None, None
        for path in ("old", "new", "device", "new+mmap"):
            runs = []
            for _ in range(a.repeats):
                t, n, wall, outs = one_pass(paths, cols, a.views, frames, a.rows_per_task, path,
                                            check=ref if path.startswith("new") else None)
                runs.append((sum(t.values()), t, n, wall))
                if path == "old" and ref is None:
                    ref = outs
            total, t, n, wall = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
            per = {k: 1000 * v / n for k, v in t.items()}
            ms = 1000 * total / n
            old_total = old_total or ms
            rate = 1000 / ms
            print(f"| {frames} | {path} | " + " | ".join(f"{per[k]:.1f}" for k in STAGES)
                  + f" | {ms:.1f} | {rate:.1f} | {old_total / ms:.2f}x | {n / wall:.1f} | "
                  + f"{'meets' if rate >= goal else 'below'} {goal:.0f} |", flush=True)


if __name__ == "__main__":
    main()
