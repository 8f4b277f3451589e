"""Does a configuration learn, and how fast?  One trial's training without Ray, in minutes.

    .venv/bin/python bench/bench_learning.py --store cmr_store/synthetic-small --steps 150
    .venv/bin/python bench/bench_learning.py --store S --views cine:sax --set model.input_norm=none
    .venv/bin/python bench/bench_learning.py --store S --set train.lr=0.002 --set model.temperature=0.1
    .venv/bin/python bench/bench_learning.py --store S --frames 16 --simclr    # the SimCLR baseline
    .venv/bin/python bench/bench_learning.py --store S --epoch-eval   # val/test RSUM per epoch
    .venv/bin/python bench/bench_learning.py --store S --set data.sampling=per_view   # a quota per view

Loads the store's train/val/test splits into memory (`load_split`), then trains the model
of `experiments/views.yaml` (plus `--set` overrides) with the platform's own parts: clip
assembly and frame sampling (`make_clip`), augmentation, `build_model`, `contrastive_step`
with `ClipLoss`, AdamW with `warmup_cosine` over `--steps` optimizer steps.  Prints:
  - the loss every `--log` steps beside ln(batch) (`ratio`: 1.0 is the plateau where every
    pair scores alike; issue 14's pass mark is 0.85);
  - before and after training, on the test split: RSUM (chance is printed: the sum of
    min(k, n)/n over R@5/10/50, both directions), the evaluation's own probes
    (`cmr_ray.eval.probe.probe_tasks`: scaled, CV-chosen logistic regression fitted on
    train + val; 5-class accuracy and the binary labels' AUC), and the spread of the test
    embeddings (`train.loop.video_spread`: 0 is one point); `--steps 0` stops there;
  - with `--readouts SYNTH_SEED`, the cohort's draws read out of the test embeddings, video
    and text (`cmr_ray.eval.nuisance.REPORTED`: R², or accuracy for the ACDC class), before
    and after: what the impressions carry of a draw bounds what the video tower can learn of it;
  - one JSON line with the figures, for tables.
This is how the views sweep's learning rate, temperature and step budget were chosen
(README, "How the budget was chosen"): the sweep itself costs 40 minutes, this a minute.
Not a replacement for the sweep's evaluation (both retrieval directions' full metrics,
per-view embeddings), only a quick, comparable look at learning.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import torch

    from cmr_ray.config import load_config
    from cmr_ray.data.clips import make_clip
    from cmr_ray.data.reader import load_split
    from cmr_ray.eval.probe import TASKS, probe_tasks
    from cmr_ray.eval.retrieval import retrieval_metrics
    from cmr_ray.model import ClipLoss, build_model, contrastive_step, precision_autocast
    from cmr_ray.model.ids import impression_id
    from cmr_ray.train.augment import augment_clip
    from cmr_ray.train.loop import make_optimizer, video_spread, warmup_cosine
    from cmr_ray.views import FULL_COMBO, combo_slots

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--experiment", default=str(ROOT / "experiments" / "views.yaml"))
    ap.add_argument("--views", default=FULL_COMBO)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--simclr", action="store_true", help="pretrain image-only (the SimCLR baseline) instead")
    ap.add_argument("--epoch-eval", action="store_true",
                    help="after every epoch print val and test RSUM (which epoch would 'best by val RSUM' score?)")
    ap.add_argument("--set", action="append", default=[], help="config override, as the CLI's --set")
    ap.add_argument("--readouts", type=int, default=None, metavar="SYNTH_SEED",
                    help="on a synthetic cohort's store of this seed, also read the cohort's draws out of the "
                         "embeddings before and after (cmr_ray.eval.nuisance: EF, LV diameter, MR grade, ...)")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    cfg = load_config(a.experiment, [f"data.views={a.views}", f"data.frames={a.frames}", *a.set])
    batch = int(cfg["train"]["batch_size"])
    sampling = cfg["data"]["sampling"]
    slots = combo_slots(a.views)
    rows = {s: [r for r in load_split(a.store, slots, s) if all(r.get(x) is not None for x in slots)]
            for s in ("train", "val", "test")}
    n_test = len(rows["test"])
    chance = 2 * sum(min(k, n_test) / n_test for k in (5, 10, 50)) * 100
    print(f"{a.views} at {a.frames} frames; studies {({k: len(v) for k, v in rows.items()})}; "
          f"chance RSUM {chance:.1f}; ln({batch}) = {math.log(batch):.3f}; overrides {a.set}", flush=True)
    torch.manual_seed(a.seed)
    model = build_model(cfg)

    def clips(rs, rng=None):
        out = []
        for r in rs:
            c = make_clip(r, a.views, a.frames, rng, sampling)
            out.append(augment_clip(c, rng) if rng is not None else c)
        return torch.from_numpy(np.stack(out)).float() / 255.0

    @torch.no_grad()
    def embed(rs):
        model.eval()
        vs, ts = [], []
        for i in range(0, len(rs), 64):
            v, t, _ = model(clips(rs[i:i + 64]), [r["impression"] for r in rs[i:i + 64]])
            vs.append(v), ts.append(t)
        model.train()
        return torch.cat(vs), torch.cat(ts)

    def rsum(v, t) -> float:  # text-to-video scores, as the evaluation ranks them
        return retrieval_metrics((t @ v.T).numpy())["rsum"]

    def look(tag: str) -> dict:
        fit = rows["train"] + rows["val"]
        vf, tf = embed(fit)
        vt, tt = embed(rows["test"])
        test_rsum = rsum(vt, tt)
        labels = {split: {t: [r.get(f"label_{t}") for r in rs] for t in TASKS}
                  for split, rs in (("fit", fit), ("test", rows["test"]))}
        m, _, _ = probe_tasks(vf.numpy(), labels["fit"], vt.numpy(), labels["test"], TASKS)
        acc = m["acdc_acc"]
        spread = video_spread(vt)
        print(f"{tag}: test RSUM {test_rsum:.1f}  5-class probe acc {acc:.3f}  spread {spread:.3f}  "
              + "  ".join(f"{t} AUC {m[t + '_auc']:.2f}" for t in TASKS[:-1]), flush=True)
        out = {"rsum": test_rsum, "acc": acc, "spread": spread, **{k: round(v, 3) for k, v in m.items()}}
        if params is not None:
            from types import SimpleNamespace

            from cmr_ray.eval.nuisance import REPORTED, readouts

            keyed = lambda rs, v: SimpleNamespace(video=v.numpy(), study_keys=[r["study_key"] for r in rs])  # noqa: E731
            for side, (f_emb, t_emb) in (("video", (vf, vt)), ("text", (tf, tt))):
                got = {r.name: r.score for r in readouts(keyed(fit, f_emb), keyed(rows["test"], t_emb), params,
                                                         names=list(REPORTED))}
                print(f"{tag} read-outs, {side}: " + "  ".join(f"{REPORTED[k]} {v:.2f}" for k, v in got.items()),
                      flush=True)
                out[f"readout_{side}"] = {k: round(v, 3) for k, v in got.items()}
        return out

    params = None
    if a.readouts is not None:
        from cmr_ray.eval.nuisance import cohort_parameters

        params = cohort_parameters(a.store, seed=a.readouts)

    before = look("untrained")
    if a.steps == 0:
        print(json.dumps({"views": a.views, "frames": a.frames, "steps": 0, "chance_rsum": round(chance, 1),
                          "before": before}))
        return
    if a.simclr:  # the sweep's SimCLR baseline, with this run's step budget
        from cmr_ray.eval.simclr import train_simclr

        t0 = time.perf_counter()
        cfg["train"]["steps"] = a.steps
        train_simclr(cfg, a.store, model=model.train(), progress=False)
        print(json.dumps({"views": a.views, "frames": a.frames, "steps": a.steps, "simclr": True,
                          "before": before, "after": look("simclr"), "train_s": round(time.perf_counter() - t0, 1)}))
        return
    opt = make_optimizer(model, cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(a.steps, float(cfg["train"]["warmup_fraction"])))
    loss_fn = ClipLoss(mask_duplicates=bool(cfg["train"]["mask_duplicate_impressions"]), gather=False)
    autocast = precision_autocast(cfg.train.precision, "cpu")  # train.precision, as a trial on a CPU
    rng = np.random.default_rng(a.seed)
    train, losses, t0, lnb = rows["train"], [], time.perf_counter(), math.log(batch)
    epochs: list[dict] = []
    while len(losses) < a.steps:
        perm = rng.permutation(len(train))
        for i in range(0, len(train) - batch + 1, batch):
            b = [train[j] for j in perm[i:i + batch]]
            texts = [r["impression"] for r in b]
            ids = torch.tensor([impression_id(t) for t in texts])
            opt.zero_grad(set_to_none=True)
            losses.append(contrastive_step(model, loss_fn, [(clips(b, rng), texts, ids)], autocast=autocast))
            opt.step()
            sched.step()
            model.clamp_logit_scale_()
            if len(losses) % a.log == 0:
                m = float(np.mean(losses[-a.log:]))
                print(f"step {len(losses)}  loss {m:.3f}  ratio {m / lnb:.3f}  {time.perf_counter() - t0:.0f} s", flush=True)
            if len(losses) >= a.steps:
                break
        if a.epoch_eval:  # eval.checkpoint: the epoch a noisy validation RSUM picks against the budget's end
            epochs.append({"step": len(losses), "val_rsum": round(rsum(*embed(rows["val"])), 1),
                           "test_rsum": round(rsum(*embed(rows["test"])), 1)})
            print(f"epoch {len(epochs)} (step {len(losses)}): val RSUM {epochs[-1]['val_rsum']}  "
                  f"test RSUM {epochs[-1]['test_rsum']}", flush=True)
    secs = time.perf_counter() - t0
    after = look("trained")
    final = float(np.mean(losses[-10:]))
    print(json.dumps({"views": a.views, "frames": a.frames, "steps": a.steps, "overrides": a.set,
                      "final_loss_ratio": round(final / lnb, 3), "chance_rsum": round(chance, 1),
                      "before": before, "after": after, "train_s": round(secs, 1),
                      **({"epochs": epochs, "best_val_epoch": _best_val(epochs)} if epochs else {})}))


def _best_val(epochs: list[dict]) -> dict:
    """The epoch `eval.checkpoint: best` would score: highest val RSUM, the earliest of ties."""
    i = max(range(len(epochs)), key=lambda k: (epochs[k]["val_rsum"], -k))
    return {"epoch": i + 1, **epochs[i]}


if __name__ == "__main__":
    main()
