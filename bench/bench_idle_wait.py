"""What the benchmark's idle wait is worth: `prepare` at N CPUs with and without waiting,
after Ray's start-up, until the machine is idle (`bench_prepare.wait_until_idle`).

    python bench/bench_idle_wait.py --cohort /tmp/h3/syn100 --cpus 2 --repeat 3

Rounds alternate the two, each on a fresh local Ray; prints every wall time, side by side.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_prepare as bp  # noqa: E402  (sets one BLAS thread before numpy is imported)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cohort", type=Path, required=True, help="cohort dir (dicom/, reports.csv)")
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--image-size", type=int, default=64)
    args = ap.parse_args(argv)
    os.environ.setdefault("CMR_RAY_SALT", "bench-salt")
    from cmr_ray.config import load_config

    cfg = load_config(overrides={"data.image_size": args.image_size})
    bp.warm_page_cache(args.cohort / "dicom")
    real = bp.wait_until_idle
    walls = {"with the wait": [], "without": []}
    tmp = Path(tempfile.mkdtemp(prefix="cmr-idle-"))
    try:
        for _ in range(args.repeat):
            for k in walls:
                bp.wait_until_idle = real if k == "with the wait" else (lambda: 0.0)
                _, wall, _ = bp.bench_prepare(args.cohort, cfg, args.cpus, tmp / k.replace(" ", "-"))
                walls[k].append(wall)
    finally:
        bp.wait_until_idle = real
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"prepare at {args.cpus} CPU(s), seconds per round:")
    for k, v in walls.items():
        print(f"  {k:<14}" + "".join(f"{x:8.2f}" for x in v) + f"   best {min(v):.2f}")
    print(f"without / with, best of each: {min(walls['without']) / min(walls['with the wait']):.2f}")


if __name__ == "__main__":
    main()
