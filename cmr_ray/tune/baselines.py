"""A sweep's baselines: computed once per sweep, after its trials, each as a child run.

    sweep:
      baselines: [zeroshot, simclr]
      baseline_trial: {data.views: "cine:4ch+sax|lge:sax+4ch+2ch+3ch", data.frames: 16}

    from cmr_ray.tune.baselines import expand_baselines, run_baselines
    bases = expand_baselines(cfg, src="experiments/views.yaml")   # pure: no Ray, no MLflow
    status = run_baselines(client, exp_id, parent_id, bases, tracking_uri)  # {key: MLflow status}

`zeroshot` is the untrained tower (`cmr_ray.eval.evaluation.fresh_model`, train.seed);
`simclr` is that tower pretrained image-only (`cmr_ray.eval.simclr.train_simclr`) with a
trial's step budget (train.steps when set, else train.epochs).  Both run on the
experiment's resolved config with `sweep.baseline_trial`'s dotted overrides applied, as a
trial's are, and are evaluated like a trial (`evaluate_method`): their metrics have the
same keys as a trial's (`test/t2v_r5` … `test/rsum`, `probe/<label>_acc|_auc|_f1`, …).

Each baseline is one child run of the sweep's parent run: name such as
"Zero-shot (untrained tower) · CINE_lax-sax + LGE_lax-sax-2ch-3ch · 16 frames", tags
`cmr.kind=baseline`, `cmr.baseline=<name>`, `cmr.trial_key=baseline-<name>` (so
`tracking.child_runs` keys it apart from the trials), params the flattened resolved
config, artifacts `config.yaml` and the eval tables under `eval/` (checked for report
text first), with `eval/per_study.npz` as a trial has it (`cmr-ray report` pairs rows by it).  The baselines run as Ray tasks (one worker's CPUs, a GPU when train.use_gpu),
at the same time when the cluster has room; the driver logs their metrics and status.
With `--resume`, a baseline whose run is FINISHED with the same config is not computed
again; a failed one reuses its run.  A failing baseline ends its run FAILED with one
line saying why; the trials' results are untouched.

SimCLR's run also carries its loss curve, as a trial carries `train/loss`: `simclr/loss`
(NT-Xent, step = epoch), `simclr/loss_ratio` (the final epoch's loss / ln(2B - 1), the loss of
views that all score alike) and the tags `cmr.learning` / `cmr.collapsed` by the trials' rule
(`cmr_ray.train.collapse`); the driver prints a WARNING when it did not learn.  A baseline
that never left its plateau would otherwise be read as "image-only pretraining does not help".
"""
from __future__ import annotations

import dataclasses
import time

from cmr_ray.config import Config, apply_overrides, flatten, to_yaml
from cmr_ray.views import paper_name

KEY_PREFIX = "baseline-"
TITLES = {"zeroshot": "Zero-shot (untrained tower)", "simclr": "SimCLR (image-only pretraining)"}
SHOWN = ("test/rsum", "probe/acdc_acc")
LOSS = "simclr/loss"              # SimCLR's NT-Xent loss per epoch (step = epoch)
LOSS_RATIO = "simclr/loss_ratio"  # its final value / ln(candidates): ~1 learned nothing, as Loss/ln B for a trial


@dataclasses.dataclass(frozen=True)
class Baseline:
    name: str   # zeroshot | simclr
    key: str    # baseline-<name>: the child run's cmr.trial_key
    title: str  # run name
    cfg: Config   # resolved config (experiment + sweep.baseline_trial)
    config_key: str


def is_baseline_key(key) -> bool:
    return str(key or "").startswith(KEY_PREFIX)


def baseline_title(name: str, cfg: Config) -> str:
    frames = cfg.data.frames
    return f"{TITLES[name]} · {paper_name(cfg.data.views)} · {frames} frame{'s' if frames != 1 else ''}"


def expand_baselines(cfg: Config, src: str = "config") -> list[Baseline]:
    """The sweep's baselines (`sweep.baselines`) on `sweep.baseline_trial` over `cfg`."""
    from cmr_ray.tune.grid import config_key

    over = dict(cfg.sweep.baseline_trial)
    resolved = apply_overrides(cfg, over, src=f"{src}: key 'sweep.baseline_trial'")
    names = list(dict.fromkeys(cfg.sweep.baselines))
    return [Baseline(n, KEY_PREFIX + n, baseline_title(n, resolved), resolved, config_key(resolved)) for n in names]


def compute_baseline(name: str, cfg: Config, out_dir, progress: bool = True, history: list | None = None) -> dict:
    """Build (and for simclr pretrain) the baseline's model, evaluate it like a trial, and
    write its tables (`tables.md`, one .md/.csv per table), `metrics.json`, `notes.txt` and
    `per_study.npz` (test ranks and probe predictions per study, as a trial writes them, so
    that a report can pair every row of a sweep) to out_dir.  Returns the unprefixed metrics;
    for simclr also `LOSS_RATIO` (its final NT-Xent loss / ln(candidates), as a trial's
    `train/loss_ratio` is to ln B), with its per-epoch history appended to `history`."""
    from pathlib import Path

    import torch

    from cmr_ray.eval.evaluation import check_eval_config, evaluate_method, fresh_model, write_outputs
    from cmr_ray.eval.tables import build_tables, prefix

    if cfg.train.torch_threads:
        torch.set_num_threads(cfg.train.torch_threads)
    check_eval_config(cfg)
    store = cfg.data.store
    model = fresh_model(cfg)
    if name == "simclr":
        from cmr_ray.eval.simclr import train_simclr

        history = [] if history is None else history
        model = train_simclr(cfg, store, model=model.train(), progress=progress, history=history)
    metrics, extras, notes = evaluate_method(model, cfg, store, prompts=False, progress=progress)
    if name == "simclr" and history:
        from cmr_ray.eval.simclr import simclr_verdict

        metrics[LOSS_RATIO] = simclr_verdict(history)["loss_ratio"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = build_tables({prefix(name) + k: v for k, v in metrics.items()}, [name],
                          cfg.eval.few_shot, cfg.eval.probes)
    header = (f"{baseline_title(name, cfg)}. Test split: {len(extras['test'])} studies; probes fitted on "
              f"{extras['n_fit']} train+val studies; views {cfg.data.views}, {cfg.data.frames} frames.")
    write_outputs(out, header, tables, notes, metrics, extras)
    return metrics


def baseline_job(name: str, cfg: Config, params_cfg: dict, run_id: str, tracking_uri: str) -> dict:
    """One baseline where it runs (a Ray task): compute, check the artifacts for report
    text, log them to the run.  Returns the metrics (the driver logs them)."""
    import shutil
    import tempfile
    from pathlib import Path

    from cmr_ray import tracking
    from cmr_ray.tune.trainable import check_no_report_text, store_impressions

    out = Path(tempfile.mkdtemp(prefix=f"cmr-baseline-{name}-"))
    history: list[dict] = []
    try:
        metrics = compute_baseline(name, cfg, out / "eval", history=history)
        (out / "config.yaml").write_text(to_yaml(params_cfg))
        check_no_report_text(out, store_impressions(cfg.data.store))
        c = tracking.client(tracking_uri)
        for row in history:  # the loss curve, as a trial logs train/loss per epoch
            tracking.log_metrics(c, run_id, {LOSS: row["train/loss"]}, step=int(row["epoch"]))
        if history:
            from cmr_ray.eval.simclr import simclr_verdict

            v = simclr_verdict(history)
            c.set_tag(run_id, "cmr.learning", v["learning"])
            c.set_tag(run_id, "cmr.collapsed", "1" if v["collapsed"] else "0")
            c.set_tag(run_id, "cmr.learning_reason", v["reason"])
        c.log_artifact(run_id, str(out / "config.yaml"))
        c.log_artifacts(run_id, str(out / "eval"), artifact_path="eval")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return metrics


def ensure_baseline_run(c, exp_id: str, parent_id: str, b: Baseline, existing: dict, echo=print) -> tuple[str, bool]:
    """(run id, whether it still has to be computed).  A FINISHED run of the same config is
    kept as it is; an unfinished one is reused; one of another config is deleted (MLflow
    keeps it restorable) and replaced."""
    from cmr_ray import tracking

    run = existing.get(b.key)
    if run is not None and run.data.tags.get("cmr.config_key") != b.config_key:
        echo(f"baseline {b.name}: its config changed since run {run.info.run_id}; deleting that run and computing it again")
        c.delete_run(run.info.run_id)
        run = None
    if run is not None:
        return run.info.run_id, run.info.status != "FINISHED"
    tags = {"mlflow.parentRunId": parent_id, "cmr.kind": "baseline", "cmr.baseline": b.name,
            "cmr.trial_key": b.key, "cmr.config_key": b.config_key,
            "cmr.paper_views": paper_name(b.cfg.data.views)}
    run = c.create_run(exp_id, run_name=b.title, tags=tags)
    c.update_run(run.info.run_id, status="SCHEDULED")
    tracking.log_params(c, run.info.run_id, flatten(b.cfg))
    return run.info.run_id, True


def _one_line(e: BaseException) -> str:
    cause = getattr(e, "cause", None) or e  # a RayTaskError carries the task's own exception
    lines = [ln.strip() for ln in str(cause).splitlines() if ln.strip()]
    return f"{type(cause).__name__}: {lines[-1] if lines else ''}"[:300]


TRAINS = ("simclr",)  # the baselines that train (the rest only evaluate)


def launch_cfg(b: Baseline, cfg: Config, cores: int) -> Config:
    """The config a baseline runs with.  The sweep computes its baselines after the trials, on
    a machine the trials have left idle; with `cores` > 0 (the sweep's own machine, no GPU), a
    baseline that trains gets them all as torch threads: SimCLR's 300 steps at 1 thread were
    most of the last six minutes of `make run` while the other core idled (40 steps: 54 s at
    1 thread, 33 s at 2; README, "Results measured here").  An evaluation-only baseline, and
    any baseline with cores 0 or on a GPU, keep `train.torch_threads`.  The threads are not
    part of the baseline's key or params (they change the schedule, not the method); the run's
    `cmr.torch_threads` tag records them."""
    if cores > 0 and b.name in TRAINS and not cfg.train.use_gpu:
        return cfg.replace("train.torch_threads", int(cores))
    return cfg


def _doing(b: Baseline) -> str:
    what = f"{paper_name(b.cfg.data.views)} at {b.cfg.data.frames} frames"
    if b.name == "zeroshot":
        return f"evaluating the untrained tower on {what}"
    t = b.cfg.train
    budget = f"{t.steps} steps" if t.steps else f"{t.epochs} epochs"
    return f"pretraining the tower image-only ({budget}, a trial's budget), then evaluating on {what}"


def run_baselines(c, exp_id: str, parent_id: str, baselines: list[Baseline], tracking_uri: str,
                  existing: dict | None = None, echo=print, remote: bool = True, job=None,
                  cores: int = 0) -> dict[str, str]:
    """Compute each baseline not yet FINISHED under `parent_id` and log it.  Returns
    {baseline key: MLflow status}.  remote=False runs them one after another in this
    process; `job` replaces `baseline_job` (tests).  `cores` (> 0: the sweep's own machine,
    idle once the trials are done) goes to `launch_cfg`; the threads used are tagged
    `cmr.torch_threads` on each run."""
    from cmr_ray import tracking

    job = job or baseline_job
    existing = tracking.child_runs(c, exp_id, parent_id) if existing is None else existing
    todo, runs = {}, {}
    for b in baselines:
        run_id, needed = ensure_baseline_run(c, exp_id, parent_id, b, existing, echo)
        runs[b.key] = run_id
        if needed:
            todo[b.key] = (b, run_id)
        else:
            echo(f"baseline {b.name}: already finished (run {run_id}); not computed again")
    started, pending = {}, {}
    try:
        if remote and todo:
            import ray

            for key, (b, run_id) in todo.items():
                t = b.cfg.train
                task = ray.remote(num_cpus=t.cpus_per_worker, num_gpus=1 if t.use_gpu else 0,
                                  max_retries=0)(job)
                run_cfg = _start(c, b, run_id, cores, echo)
                started[key] = time.time()
                pending[task.remote(b.name, run_cfg, b.cfg, run_id, tracking_uri)] = key
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                key = pending.pop(ready[0])
                _finish(c, todo[key], started[key], lambda: ray.get(ready[0]), echo)
        else:
            for key, (b, run_id) in todo.items():
                run_cfg = _start(c, b, run_id, cores, echo)
                started[key] = time.time()
                _finish(c, todo[key], started[key],
                        lambda b=b, run_id=run_id, run_cfg=run_cfg: job(b.name, run_cfg, b.cfg, run_id, tracking_uri),
                        echo)
    finally:  # never leave a baseline run RUNNING/SCHEDULED behind (an interrupted sweep)
        for b, run_id in todo.values():
            if c.get_run(run_id).info.status in tracking.ACTIVE_STATES:
                tracking.set_status(c, run_id, "KILLED", outcome="interrupted")
    return {key: c.get_run(run_id).info.status for key, run_id in runs.items()}


def _start(c, b: Baseline, run_id: str, cores: int, echo) -> Config:
    """Say what a baseline is about to do, mark its run RUNNING with the threads it gets, and
    return the config it runs with (`launch_cfg` over its absolute paths)."""
    from cmr_ray import tracking
    from cmr_ray.tune.sweep import absolute_paths

    cfg = launch_cfg(b, absolute_paths(b.cfg), cores)
    echo(f"baseline {b.name}: {_doing(b)} (run {run_id})")
    tracking.set_status(c, run_id, "RUNNING", torch_threads=cfg.train.torch_threads)
    return cfg


def _finish(c, item, t0: float, result, echo) -> None:
    """Log one baseline's outcome: metrics and FINISHED, or FAILED with one line."""
    from cmr_ray import tracking

    b, run_id = item
    try:
        metrics = dict(result() or {})
    except Exception as e:  # noqa: BLE001 - one baseline's failure must not end the sweep
        line = _one_line(e)
        tracking.set_status(c, run_id, "FAILED", outcome="failed", error=line, wall_s=f"{time.time() - t0:.0f}")
        echo(f"baseline {b.name}: FAILED after {time.time() - t0:.0f} s ({line}); the trials' results are kept")
        return
    tracking.log_metrics(c, run_id, metrics, step=0)
    secs = time.time() - t0
    tracking.set_status(c, run_id, "FINISHED", outcome="completed", wall_s=f"{secs:.0f}")
    shown = "  ".join(f"{k}={metrics[k]:.3f}" for k in SHOWN if isinstance(metrics.get(k), (int, float)))
    echo(f"baseline {b.name}: done in {secs:.0f} s  {shown}".rstrip())
    ratio = metrics.get(LOSS_RATIO)
    if isinstance(ratio, (int, float)):
        from cmr_ray.train.collapse import ratio_state, what_happened

        state = ratio_state(ratio)
        if state != "learned":
            echo(f"baseline {b.name}: WARNING: {what_happened(state)}: final NT-Xent loss {ratio:.2f} × ln(2B - 1)")
