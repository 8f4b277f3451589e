"""What do the towers encode: the report's anatomy, or the scanner?  Linear read-outs side by side.

    .venv/bin/python bench/bench_nuisance.py --store cmr_store/synthetic-small --threads 2
    .venv/bin/python bench/bench_nuisance.py --store S --synth-seed 3 --checkpoint ray_results/…/checkpoint_000019

For a store prepared from the synthetic cohort of `--synth-seed`, draws every stored study's
parameters again (`cmr_ray.eval.nuisance`: field of view, noise, inversion time, vendor, …,
none of them in any impression; and the anatomy the findings are measured from) and reads
each out of the frozen video embeddings of
- Zero-shot: the untrained tower of the views sweep's baselines (`sweep.baseline_trial`,
  the full combo at 16 frames);
- SimCLR: that tower after the sweep's SimCLR baseline (`cmr_ray.eval.simclr.train_simclr`,
  a trial's 300 steps), unless `--no-simclr`;
- each `--checkpoint`: a trained CLIP tower (a sweep trial's checkpoint), embedded with its
  own views and frames.
Read-outs are fitted on train+val and scored on test: R² for numbers (0 is the test mean),
accuracy beside the majority rate for classes.  One seeded run per tower.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _embed(model, cfg, store):
    from cmr_ray.eval.embed import embed_split

    return embed_split(model, store, cfg, ("train", "val"), progress=False), embed_split(model, store, cfg, "test",
                                                                                        progress=False)


def main() -> None:
    import torch

    from cmr_ray.config import load_config
    from cmr_ray.eval.evaluation import fresh_model
    from cmr_ray.eval.nuisance import PARAMETERS, check_labels, cohort_parameters, readouts
    from cmr_ray.tune.baselines import expand_baselines

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--synth-seed", type=int, default=0, help="data.synth_seed the store's cohort was made with")
    ap.add_argument("--experiment", default=str(ROOT / "experiments" / "views.yaml"))
    ap.add_argument("--checkpoint", action="append", default=[], help="a trained tower to read out as well")
    ap.add_argument("--no-simclr", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], help="config override for the baselines, as the CLI's --set")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    params = cohort_parameters(a.store, a.synth_seed)
    over = [f"data.store={a.store}", "eval.transfer={}", "eval.external=", f"train.torch_threads={a.threads}", *a.set]
    bases = {b.name: b for b in expand_baselines(load_config(a.experiment, over))}
    cfg = bases["zeroshot"].cfg
    towers = []
    t0 = time.time()
    towers.append(("Zero-shot", _embed(fresh_model(cfg), cfg, a.store)))
    print(f"zero-shot embedded: {time.time() - t0:.0f} s", file=sys.stderr)
    if not a.no_simclr:
        from cmr_ray.eval.simclr import train_simclr

        scfg = bases["simclr"].cfg
        t0 = time.time()
        history: list[dict] = []
        model = train_simclr(scfg, a.store, model=fresh_model(scfg).train(), history=history)
        print(f"simclr trained: {time.time() - t0:.0f} s, final loss {history[-1]['train/loss']:.3f}", file=sys.stderr)
        towers.append(("SimCLR", _embed(model, scfg, a.store)))
    for ck in a.checkpoint:
        from cmr_ray.train.checkpoint import load_checkpoint

        model, ccfg = load_checkpoint(ck)
        ccfg = ccfg.replace("data.store", a.store)
        towers.append((f"{ccfg.data.views} @{ccfg.data.frames}", _embed(model.eval(), ccfg, a.store)))
    results = []
    for name, (fit, test) in towers:
        for emb in (fit, test):
            check_labels(params, emb.study_keys, emb.labels["acdc"])
        results.append({r.name: r for r in readouts(fit, test, params)})
    n_test = len(towers[0][1][1])
    print(f"\nstore {a.store} (cohort seed {a.synth_seed}), {n_test} test studies; "
          f"baselines on {cfg.data.views} at {cfg.data.frames} frames")
    head = ["parameter", "kind", "score", "chance"] + [name for name, _ in towers]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for p in PARAMETERS:
        r0 = results[0][p]
        cells = [f"{res[p].score:.2f}" for res in results]
        print("| " + " | ".join([p, r0.kind, r0.metric, f"{r0.chance:.2f}", *cells]) + " |")


if __name__ == "__main__":
    main()
