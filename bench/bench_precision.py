"""Training step time of the views sweep's tower in fp32 against bf16 autocast (`train.precision`).

    .venv/bin/python bench/bench_precision.py                       # 1, 8, 16 and 64 frames
    .venv/bin/python bench/bench_precision.py --frames 16 64 --steps 5 --threads 2

For each frame count, in one run: the seconds per optimizer step (forward, backward, AdamW)
of `experiments/views.yaml`'s model and batch on random clips (`bench_train.model_step`),
text tower frozen with its cache warm, in fp32 and under `precision_autocast("bf16", "cpu")`,
measured alternately (fp32, bf16, fp32, bf16) so that a noisy machine slows both alike; then
the ratio fp32 / bf16 of the medians and the loss of each at the first step, from the same
weights and clips (bf16 should change it by well under 1%).  A CPU without bf16 instructions
(`cpu_has_bf16()` False) emulates bf16 and is slower; the script says which it is.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def step_time(cfg, precision: str, steps: int) -> tuple[float, float]:
    """(seconds per step over `steps` after two warm-up steps, the first step's loss)."""
    from bench_train import model_step  # bench/, this script's folder

    from cmr_ray.model import precision_autocast

    step = model_step(cfg, precision_autocast(precision, "cpu"))
    first = step()  # from the seeded weights: the same start for both precisions
    step()  # warm-up (and the text cache)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps, first


def main() -> None:
    import torch

    from cmr_ray.config import load_config
    from cmr_ray.model import cpu_has_bf16

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--experiment", default=str(ROOT / "experiments" / "views.yaml"))
    ap.add_argument("--frames", type=int, nargs="+", default=[1, 8, 16, 64])
    ap.add_argument("--steps", type=int, default=0, help="timed steps per measurement (0: by frames)")
    ap.add_argument("--repeats", type=int, default=2, help="alternating fp32/bf16 measurements each")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (a sweep trial has 1)")
    ap.add_argument("--set", action="append", default=[], help="config override, as the CLI's --set")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {a.threads} thread(s), CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, native bf16: {cpu_has_bf16()}", flush=True)
    print(f"{'frames':>6} {'fp32 s/step':>12} {'bf16 s/step':>12} {'fp32/bf16':>10} {'step-1 loss fp32':>17} {'bf16':>8}")
    for frames in a.frames:
        cfg = load_config(a.experiment, [f"data.frames={frames}", *a.set])
        steps = a.steps or max(3, 64 // frames)
        times: dict[str, list[float]] = {"fp32": [], "bf16": []}
        losses: dict[str, float] = {}
        for _ in range(a.repeats):
            for precision in ("fp32", "bf16"):
                dt, losses[precision] = step_time(cfg, precision, steps)
                times[precision].append(dt)
        f32, b16 = statistics.median(times["fp32"]), statistics.median(times["bf16"])
        print(f"{frames:>6} {f32:>12.3f} {b16:>12.3f} {f32 / b16:>10.2f} {losses['fp32']:>17.4f} "
              f"{losses['bf16']:>8.4f}", flush=True)


if __name__ == "__main__":
    main()
