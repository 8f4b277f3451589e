"""Benchmark `prepare` against a plain single-process loop and an ideal per-core pool.

    python bench/bench_prepare.py --studies 24            # generates a synthetic cohort
    python bench/bench_prepare.py --cohort path/to/cohort --cpus 1 2 --image-size 64

All three decode the same files with the same functions (`load_grid`, `to_uint8`) and the
same per-series grids; images/s counts decoded image frames.
- loop: one process, study after study (what a plain pydicom script would do);
- pool: `multiprocessing.Pool(n)` over studies, decode only: the ideal per-core speed-up;
- prepare: the whole command (index headers, plan, decode, write Parquet, manifest) on a
  local Ray with num_cpus=n; Ray's start-up is timed apart and not counted.
Targets (issue 3): prepare at 2 CPUs >= 1.5x the loop, and within 20% of the 2-process pool.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def _decode_study(args):
    grids, size, pct = args
    from cmr_ray.dicom.pixels import load_grid, to_uint8

    n = 0
    for grid in grids:
        to_uint8(load_grid(grid), size, pct)
        n += sum(len(row) for row in grid)  # image frames decoded
    return n


def study_grids(cohort: Path, cfg) -> list[list]:
    """Per study, the grids `prepare` would decode (planned in this process, not timed)."""
    from cmr_ray.data.index import index_local, list_input_files
    from cmr_ray.data.plan import plan_studies
    from cmr_ray.data.tables import load_reports

    dicom = cohort / "dicom"
    idx = index_local(dicom, list_input_files(dicom))
    plan = plan_studies(idx, load_reports(cohort / "reports.csv"), None, "bench-salt", cfg)
    return [[sp.grid for sp in st.slots.values()] for st in plan.studies]


def bench_loop(work, size, pct):
    t = time.perf_counter()
    n = sum(_decode_study((g, size, pct)) for g in work)
    return n, time.perf_counter() - t


def bench_pool(work, size, pct, procs):
    ctx = mp.get_context("fork")
    with ctx.Pool(procs) as pool:
        pool.map(_decode_study, [([], size, pct)] * procs)  # warm the workers' imports
        t = time.perf_counter()
        n = sum(pool.map(_decode_study, [(g, size, pct) for g in work], chunksize=1))
        return n, time.perf_counter() - t


def bench_prepare(cohort: Path, cfg, cpus: int, out: Path):
    import ray

    from cmr_ray.data.prepare import prepare
    from cmr_ray.runtime import init_ray

    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    init_ray(num_cpus=cpus)
    # warm the worker pool the way a long-running cluster would be
    ray.get([ray.remote(lambda: __import__("cmr_ray.dicom.pixels")).remote() for _ in range(cpus)])
    start = time.perf_counter() - t
    t = time.perf_counter()
    s = prepare(cohort / "dicom", cohort / "reports.csv", out, cfg=cfg, num_cpus=cpus, progress=False)
    wall = time.perf_counter() - t
    ray.shutdown()
    return s, wall, start


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cohort", type=Path, help="existing cohort dir (dicom/, reports.csv)")
    ap.add_argument("--studies", type=int, default=24, help="studies to generate when no --cohort")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--cpus", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args(argv)
    os.environ.setdefault("CMR_RAY_SALT", "bench-salt")

    from cmr_ray.config import load_config

    cfg = load_config(overrides={"data.image_size": args.image_size})
    tmp = Path(tempfile.mkdtemp(prefix="cmr-bench-"))
    try:
        cohort = args.cohort
        if cohort is None:
            from cmr_ray.synth import generate_cohort

            cohort = tmp / "cohort"
            t = time.perf_counter()
            generate_cohort(cohort, studies=args.studies, seed=args.seed, progress=False)
            print(f"generated {args.studies} studies in {time.perf_counter() - t:.1f} s -> {cohort}")
        work = study_grids(cohort, cfg)
        pct = tuple(cfg["data"]["clip_percentiles"])
        n_loop, t_loop = bench_loop(work, args.image_size, pct)
        loop = n_loop / t_loop
        print(f"\n{len(work)} studies, {n_loop} images, {args.image_size} px, machine has {os.cpu_count()} CPUs")
        print(f"{'method':<24}{'cpus':>5}{'seconds':>9}{'images/s':>10}{'vs loop':>9}{'vs pool':>9}")
        print(f"{'single-process loop':<24}{1:>5}{t_loop:>9.2f}{loop:>10.0f}{1.0:>9.2f}{'':>9}")
        for cpus in args.cpus:
            n_pool, t_pool = bench_pool(work, args.image_size, pct, cpus)
            pool = n_pool / t_pool
            s, wall, start = bench_prepare(cohort, cfg, cpus, tmp / f"store-{cpus}")
            if s.studies_used != len(work):
                print(f"warning: prepare used {s.studies_used} studies, the loop {len(work)}", file=sys.stderr)
            prep = n_loop / wall  # prepare decodes the same grids (checked: same studies)
            print(f"{'multiprocessing.Pool':<24}{cpus:>5}{t_pool:>9.2f}{pool:>10.0f}{pool / loop:>9.2f}{'':>9}")
            print(f"{'prepare (Ray Data)':<24}{cpus:>5}{wall:>9.2f}{prep:>10.0f}{prep / loop:>9.2f}"
                  f"{prep / pool:>9.2f}   (+{start:.1f} s Ray start-up; "
                  + ", ".join(f"{k} {v:.1f} s" for k, v in s.phases.items()) + ")")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
