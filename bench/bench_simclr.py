"""Does the SimCLR baseline learn something the probes can use?  The sweep's own baselines, side by side.

    .venv/bin/python bench/bench_simclr.py --store cmr_store/synthetic-small                 # noise 0 and 8
    .venv/bin/python bench/bench_simclr.py --store S --noise 8 --set train.seed=1 --threads 2   # one setting

Computes the views sweep's baselines exactly as `sweep.baselines` does
(`cmr_ray.tune.baselines.compute_baseline` on `experiments/views.yaml` with
`sweep.baseline_trial`, the full combo at 16 frames, a trial's 300 steps), with the transfer
and external sets left out: the untrained tower (Zero-shot) once, then SimCLR once per
`--noise` value (`eval.simclr_noise`, grey levels of per-view Gaussian noise; 0 is none).
Prints SimCLR's NT-Xent loss per epoch beside ln(2B - 1) (the loss of views that all score
alike), then one table: the final loss ratio, the 5-class probe accuracy, NICM and ICM AUC
and test RSUM, each SimCLR row with its difference from Zero-shot on the same test split.
Each row is one seeded run (the same store, split and train.seed give the same figures);
the probe's interval on ~200 test studies is about ±7 points, so read a difference under
that from one store as noise, and look at several stores.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHOWN = [("5-class Acc", "probe/acdc_acc", True), ("NICM AUC", "probe/nicm_auc", True),
         ("ICM AUC", "probe/icm_auc", True), ("test RSUM", "test/rsum", False)]


def main() -> None:
    import torch

    from cmr_ray.config import load_config
    from cmr_ray.tune.baselines import LOSS_RATIO, compute_baseline, expand_baselines

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--experiment", default=str(ROOT / "experiments" / "views.yaml"))
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0, 8.0], help="eval.simclr_noise values to run")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], help="config override, as the CLI's --set")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    over = [f"data.store={a.store}", "eval.transfer={}", "eval.external=", f"train.torch_threads={a.threads}", *a.set]
    bases = {b.name: b for b in expand_baselines(load_config(a.experiment, over))}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-simclr-") as tmp:
        t0 = time.time()
        zs = compute_baseline("zeroshot", bases["zeroshot"].cfg, Path(tmp) / "zeroshot", progress=False)
        print(f"zero-shot: {time.time() - t0:.0f} s", file=sys.stderr)
        rows.append(("Zero-shot", "–", "–", zs))
        for noise in a.noise:
            cfg = bases["simclr"].cfg.replace("eval.simclr_noise", float(noise))
            t0 = time.time()
            m = compute_baseline("simclr", cfg, Path(tmp) / f"simclr-{noise:g}", progress=True)
            print(f"simclr, noise {noise:g}: {time.time() - t0:.0f} s", file=sys.stderr)
            rows.append(("SimCLR", f"{noise:g}", f"{m[LOSS_RATIO]:.2f}", m))
    print(f"\nstore {a.store}; {bases['simclr'].cfg.data.views} at {bases['simclr'].cfg.data.frames} frames, "
          f"{bases['simclr'].cfg.train.steps} steps of {bases['simclr'].cfg.train.batch_size}")
    head = ["method", "noise", "loss / ln(2B-1)"] + [h for h, _, _ in SHOWN]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for name, noise, ratio, m in rows:
        cells = []
        for _, key, pct in SHOWN:
            v, z = m.get(key), zs.get(key)
            scale = 100 if pct else 1
            cell = "–" if v is None else f"{scale * v:.1f}"
            if name != "Zero-shot" and v is not None and z is not None:
                cell += f" ({scale * (v - z):+.1f})"
            cells.append(cell)
        print("| " + " | ".join([name, noise, ratio, *cells]) + " |")


if __name__ == "__main__":
    main()
