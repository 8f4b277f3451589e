"""What the bootstrap intervals add to a trial's evaluation, at 1,000 test studies.

    .venv/bin/python bench/bench_bootstrap.py                 # 1,000 test + 3,000 fit studies
    .venv/bin/python bench/bench_bootstrap.py --test 500 --resamples 2000

Times, in one run on this machine, the parts of `evaluation.evaluate_method` for one model:
embedding the fit and test clips with the small preset's video tower (16 frames, 64 px,
random clips: the cost does not depend on their content) and the text tower's projection,
the retrieval ranks, the five probes (CV-chosen logistic regression), and then
`bootstrap.interval_metrics` (every retrieval and probe metric's 95% interval).  Prints the
figures side by side and the intervals' share of the evaluation: issue 19 asks for < 5%.
The embeddings the probes see are made class-dependent so that the probes fit as they do
on real embeddings (a CV fit on pure noise converges faster and would flatter the ratio).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import torch

    from cmr_ray.config import load_config
    from cmr_ray.data.schema import ACDC_CLASSES
    from cmr_ray.eval.bootstrap import interval_metrics
    from cmr_ray.eval.probe import TASKS, probe_tasks
    from cmr_ray.eval.retrieval import retrieval_ranks_from_embeddings
    from cmr_ray.model import build_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--fit", type=int, default=3000)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = load_config(str(ROOT / "experiments" / "views.yaml"), [f"data.frames={a.frames}"])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    size = int(cfg["data"]["image_size"])
    rng = np.random.default_rng(0)

    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, a.fit + a.test, 64):
            n = min(64, a.fit + a.test - i)
            clips = torch.from_numpy(rng.integers(0, 256, (n, a.frames, size, size), dtype=np.uint8)).float() / 255
            model.encode_video(clips)
    t_embed = time.perf_counter() - t0

    def fake(n):
        y = rng.integers(0, len(ACDC_CLASSES), n)
        centres = rng.normal(size=(len(ACDC_CLASSES), 128))
        x = (centres[y] + 2.0 * rng.normal(size=(n, 128))).astype(np.float32)
        labels = {t: (y == k).astype(float) for k, t in enumerate(TASKS[:-1])}
        labels["acdc"] = np.array([ACDC_CLASSES[k] for k in y], dtype=object)
        return x, labels

    x_fit, l_fit = fake(a.fit)
    x_test, l_test = fake(a.test)
    text = (x_test + rng.normal(size=x_test.shape)).astype(np.float32)
    t0 = time.perf_counter()
    ranks = retrieval_ranks_from_embeddings(text, x_test)
    t_ranks = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, outcomes, _ = probe_tasks(x_fit, l_fit, x_test, l_test, list(TASKS))
    t_probes = time.perf_counter() - t0
    t0 = time.perf_counter()
    iv, _ = interval_metrics(ranks, outcomes, l_test, a.resamples, seed=0)
    t_boot = time.perf_counter() - t0
    t_eval = t_embed + t_ranks + t_probes
    print(f"{a.test} test + {a.fit} fit studies, {a.frames} frames, {a.resamples} resamples, {a.threads} threads")
    print("| part | seconds |")
    print("| --- | --- |")
    for name, t in (("embed the clips (video tower)", t_embed), ("retrieval ranks", t_ranks),
                    ("five probes (CV logistic regression)", t_probes), ("evaluation without intervals", t_eval),
                    (f"bootstrap intervals ({len(iv)} keys)", t_boot)):
        print(f"| {name} | {t:.2f} |")
    print(f"bootstrap / evaluation = {t_boot / t_eval:.3f}  (issue 19's bound: < 0.05)")


if __name__ == "__main__":
    main()
