"""`run_sweep`: train and evaluate every trial of an experiment file on Ray Tune, log to MLflow.

    from cmr_ray.tune import run_sweep
    out = run_sweep("experiments/smoke.yaml", overrides=["train.epochs=1"])
    out = run_sweep("experiments/smoke.yaml", resume=True)   # after an interrupted sweep

Flow: load and expand the experiment (`grid.expand_trials`); start or join Ray
(loopback-only when local); make sure the clip store exists (generating and preparing the
synthetic cohort when `data.source` is synthetic); open the MLflow experiment and the
sweep's parent run, with one SCHEDULED child run per trial; run the trials that are not
FINISHED yet as a Tune grid (`max_concurrent` from the cluster, optional ASHA); compute
the sweep's baselines (`sweep.baselines`, once per sweep, each a child run of its own:
`cmr_ray.tune.baselines`); log the best trial's model (safetensors weights and the config,
no pickle: `cmr_ray.tune.mlflow_model`) and register it; close the parent run.  Whatever
stops the sweep once its parent run exists, that run and its unfinished trials are ended
(FAILED, or KILLED on Ctrl-C): no run stays RUNNING.

`--resume` finds the latest parent run of the same sweep (same trial keys) and runs only
the trials whose child run is not FINISHED, reusing those runs (so each trial has exactly
one child run) and the Train run of the interrupted attempt (same name and storage, so
training continues from its last checkpoint).  A baseline already FINISHED is not
computed again.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from cmr_ray import tracking
from cmr_ray.config import Config, load_config, sweep_mode, to_yaml
from cmr_ray.console import RunLog
from cmr_ray.data.ensure import check_existing_store, ensure_store, say  # building a store is the data layer's
from cmr_ray.tune.baselines import expand_baselines, is_baseline_key, run_baselines
from cmr_ray.tune.grid import expand_trials, local_cpus, max_concurrent, sweep_key, trial_resources

PATH_KEYS = ("data.store", "data.dicom_dir", "data.reports", "data.labels", "train.storage_path")


def absolute_paths(cfg: Config) -> Config:
    """A copy with local paths made absolute (Tune runs trials in their own directories)."""
    changes = {}
    for key in PATH_KEYS:
        section, _, name = key.partition(".")
        v = cfg[section][name]
        if v and "://" not in v:
            changes[key] = os.path.abspath(v)
    from cmr_ray.eval.external import external_store
    from cmr_ray.eval.transfer import absolute_stores

    changes["eval.transfer"] = absolute_stores(cfg.eval.transfer)
    if cfg.eval.external:
        changes["eval.external"] = external_store(cfg)
    return cfg.with_overrides(changes)


def longest_first(payloads: dict) -> list[str]:
    """Trial keys in the order Tune should start them: most frames per clip first (a trial's
    cost grows with its clip length), so with several trials at a time the long ones do not
    run alone at the end.  MLflow and the report keep the experiment file's order."""
    return sorted(payloads, key=lambda k: (-payloads[k]["cfg"]["data"]["frames"], payloads[k]["index"]))


def trial_epochs(cfg: Config) -> int:
    """How many epochs a trial of this sweep trains: `train.epochs`, or with a step budget
    (`train.steps` > 0) as many as the store's train split needs (`cmr_ray.train.budget`)."""
    if cfg.train.steps <= 0:
        return cfg.train.epochs
    from cmr_ray.train.budget import plan_steps
    from cmr_ray.train.trainer import check_inputs

    n_train, _ = check_inputs(cfg)
    return plan_steps(cfg.train, n_train, cfg.train.workers)[1]


def _scheduler(cfg: Config, epochs: int | None = None):
    """ASHA over `sweep.metric` by epoch when `sweep.scheduler: asha`: a trial gets at least a
    third of its `epochs` (default `train.epochs`) before it can be stopped."""
    if cfg.sweep.scheduler != "asha":
        return None
    from ray.tune.schedulers import ASHAScheduler

    epochs = epochs or cfg.train.epochs
    return ASHAScheduler(
        metric=cfg.sweep.metric, mode=sweep_mode(cfg), time_attr="training_iteration",
        max_t=epochs + 1,  # +1: the final (evaluation) report must not be cut off
        grace_period=max(1, epochs // 3), reduction_factor=2,
    )


def param_space(trials: list, order: list[str]) -> dict:
    """Tune's `param_space`: a grid over the trial keys (in `order`) and, for each, the values
    of every swept key (`data.views`, `data.frames`, `model.temperature`, `train.seed` and any
    other key a trial, grid point or search draw sets), so Tune's result tables,
    `ResultGrid.get_dataframe()` and `ExperimentAnalysis` show them as `config/<key>` columns.
    The trial itself runs from its resolved config (`run_trial` checks the two agree)."""
    from ray import tune

    from cmr_ray.tune.grid import TrialValue, swept_keys, trial_values

    keys = swept_keys(trials)
    values = {t.key: trial_values(t, keys) for t in trials if t.key in order}
    return {"key": tune.grid_search(list(order)), **{k: tune.sample_from(TrialValue(values, k)) for k in keys}}


def _result_loggers() -> list:
    """Tune's CSV and JSON result files (`ExperimentAnalysis` and `ResultGrid` read them),
    without its TensorBoardX logger: that one warns on every trial's final result, whose
    `epoch_history` (a list, for the MLflow callback) it cannot log.  Tune adds all three
    unless TUNE_DISABLE_AUTO_CALLBACK_LOGGERS is set, which only the driver reads."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    return [CSVLoggerCallback(), JsonLoggerCallback()]


def _log_best_model(c, exp_id: str, parent_id: str, cfg: Config, model_loader, echo) -> str | None:
    """Log (and register) the model of the finished trial with the best `best/<metric>`."""
    import mlflow

    key = f"best/{cfg.sweep.metric}"
    runs = [r for k, r in tracking.child_runs(c, exp_id, parent_id).items()
            if not is_baseline_key(k) and not r.data.tags.get("cmr.baseline")  # a baseline is never the best trial
            and r.info.status == "FINISHED" and key in r.data.metrics and r.data.tags.get("cmr.checkpoint_path")]
    if not runs:
        return None
    pick = min if sweep_mode(cfg) == "min" else max
    best = pick(runs, key=lambda r: r.data.metrics[key])
    c.set_tag(parent_id, "cmr.best_run_id", best.info.run_id)
    if best.data.tags.get("cmr.model_logged") == "1":
        return best.info.run_id
    if model_loader is None:
        from cmr_ray.train.checkpoint import load_checkpoint as model_loader
    import tempfile

    from cmr_ray.tune.trainable import check_no_report_text, store_impressions

    from cmr_ray.tune.mlflow_model import save_model

    ckpt = best.data.tags["cmr.checkpoint_path"]
    model, model_cfg = model_loader(ckpt)
    name = cfg.sweep.register_model or None
    with tempfile.TemporaryDirectory() as tmp:
        # Weights (safetensors) and the config that builds them, no pickle (cmr_ray.tune.mlflow_model);
        # saved locally first so every byte is checked for report text before it is logged.
        save_model(f"{tmp}/model", model, model_cfg or cfg)
        impressions = store_impressions(absolute_paths(cfg)["data"]["store"])
        check_no_report_text(tmp, impressions, binary=True)
        c.log_artifacts(best.info.run_id, f"{tmp}/model", artifact_path="model")
    if "://" not in ckpt:  # the Ray checkpoint too, so `cmr-ray evaluate` can start from MLflow
        check_no_report_text(ckpt, impressions, binary=True)
        c.log_artifacts(best.info.run_id, ckpt, artifact_path="checkpoint")
    if name:
        mlflow.register_model(f"runs:/{best.info.run_id}/model", name)
    c.set_tag(best.info.run_id, "cmr.model_logged", "1")
    echo(f"best trial: {best.info.run_name} ({key}={best.data.metrics[key]:.3f}); model logged"
         + (f" and registered as '{name}'" if name else ""))
    return best.info.run_id


def run_sweep(path, overrides=(), tracking_uri=None, address=None, resume=False,
              train_fn=None, eval_fn=None, model_loader=None, num_cpus=None, echo=say) -> dict:
    """Run (or resume) the sweep in experiment file `path`.  Returns a summary dict:
    experiment_id, parent_run_id, runs {trial key: run id}, status {trial key: MLflow status},
    best_run_id; runs and status also hold each baseline under its key (`baseline-<name>`),
    and baselines maps baseline name -> run id.  `train_fn`, `eval_fn`, `model_loader`
    replace the real training, evaluation and checkpoint loading (tests); never the baselines."""
    t0 = time.time()
    cfg = load_config(path, list(overrides))
    trials = expand_trials(cfg, src=str(path))
    bases = expand_baselines(cfg, src=str(path))
    uri = tracking.resolve_uri(tracking_uri)
    run_name = f"sweep-{cfg.sweep.experiment}-{time.strftime('%Y%m%d-%H%M%S')}"
    log_dir = sweep_log_dir(cfg, run_name)
    with RunLog(log_dir / "sweep.log") as log:  # what is printed goes in the file too
        echo(f"sweep {path}: {len(trials)} trial(s)"
             + (f" and baseline(s) {', '.join(b.name for b in bases)}" if bases else "")
             + f"; MLflow at {uri}, experiment '{cfg.sweep.experiment}'")
        echo(f"details in {log_dir}/: sweep.log (warnings, Ray and MLflow logs), trial-<key>.log (each trial's output)")

        check_existing_store(absolute_paths(cfg))  # a mismatched store fails before any work starts
        from cmr_ray.runtime import init_ray, local_env

        local_env()  # before Ray is imported
        import ray

        started_ray = not ray.is_initialized()
        local = not (address or os.environ.get("RAY_ADDRESS"))  # this machine's Ray, not a cluster joined
        if started_ray and local:
            num_cpus = num_cpus or local_cpus()  # the cores, plus slots for Ray Data's tasks
        # Workers' output stays in their own files (trial-<key>.log; Ray's session logs for
        # Train and Data workers), not prefixed and coloured on this console.
        init_ray(address, num_cpus=num_cpus, log_to_driver=False)
        log.reroute()  # ray.init gives Ray's logger a console handler of its own
        try:
            return _run(path, cfg, trials, bases, uri, address, resume, train_fn, eval_fn, model_loader, echo,
                        run_name, log_dir, idle_cores=(os.cpu_count() or 1) if local else 0)
        finally:
            if started_ray:
                ray.shutdown()
            echo(f"sweep {path}: wall time {time.time() - t0:.0f} s")


def sweep_log_dir(cfg: Config, run_name: str) -> Path:
    """Where a sweep's log files go: its Tune run directory (`train.storage_path/RUN_NAME`),
    or `cmr-ray-logs/RUN_NAME` in the working directory when the storage is remote (s3://)."""
    storage = absolute_paths(cfg).train.storage_path
    return Path("cmr-ray-logs" if "://" in storage else storage).absolute() / run_name


def _run(path, cfg, trials, bases, uri, address, resume, train_fn, eval_fn, model_loader, echo,
         run_name, log_dir, idle_cores: int = 0) -> dict:
    ensure_store(absolute_paths(cfg), address, echo=echo)
    from cmr_ray.eval.transfer import ensure_transfer_stores

    ensure_transfer_stores(absolute_paths(cfg), echo=echo)  # the 'synthetic' ACDC stand-in, built once; named stores checked
    from cmr_ray.eval.external import ensure_external_store

    ensure_external_store(absolute_paths(cfg), address=address, echo=echo)  # eval.external: the other-site cohort, likewise
    c = tracking.client(uri)
    exp_id = tracking.ensure_experiment(c, cfg.sweep.experiment)
    skey = sweep_key(trials)
    parent = tracking.find_parent(c, exp_id, skey) if resume else None
    if resume and parent is None:
        echo("--resume: no earlier run of this sweep in MLflow; starting it from the beginning")
    if parent is None:
        params = {f"sweep.{k}": v for k, v in cfg.sweep.items() if k not in ("grid", "trials", "search")}
        params.update({f"sweep.search.{k}": v for k, v in cfg.sweep.search.items()})  # the distributions, per key
        params["sweep.trials"] = len(trials)
        parent_id = tracking.start_parent(c, exp_id, skey, cfg.sweep.experiment, params,
                                          tags={"cmr.experiment_file": str(path)})
    else:
        parent_id = parent.info.run_id
        tracking.set_status(c, parent_id, "RUNNING")
    try:
        return _run_under_parent(c, exp_id, parent_id, path, cfg, trials, bases, uri, resume, parent,
                                 train_fn, eval_fn, model_loader, echo, run_name, log_dir, idle_cores=idle_cores)
    except BaseException as e:  # never leave the sweep RUNNING: an error FAILED, Ctrl-C KILLED
        interrupted = isinstance(e, (KeyboardInterrupt, SystemExit))
        try:
            tracking.close_sweep(c, exp_id, parent_id, "KILLED" if interrupted else "FAILED",
                                 "interrupted" if interrupted else "error")
        except Exception as close_error:  # noqa: BLE001 - the first error is the one to show
            echo(f"could not mark the MLflow runs ended: {type(close_error).__name__}: {close_error}")
        else:
            echo(f"sweep {'interrupted' if interrupted else 'failed'}: parent run {parent_id} and its unfinished "
                 f"trials marked {'KILLED' if interrupted else 'FAILED'} in MLflow (rerun with --resume)")
        raise


def _run_under_parent(c, exp_id, parent_id, path, cfg, trials, bases, uri, resume, parent,
                      train_fn, eval_fn, model_loader, echo, run_name, log_dir, idle_cores: int = 0) -> dict:
    import ray
    from ray import tune

    from cmr_ray.tune.callback import MlflowTrialCallback
    from cmr_ray.tune.trainable import run_trial

    if parent is None:
        c.log_text(parent_id, to_yaml(cfg), "config.yaml")
    existing = tracking.child_runs(c, exp_id, parent_id)
    done = {t.key for t in trials if t.key in existing and existing[t.key].info.status == "FINISHED"}
    if resume and parent is not None:
        echo(f"--resume: {len(done)} of {len(trials)} trial(s) already finished; running the other {len(trials) - len(done)}")

    payloads, skip = {}, {}
    for t in trials:
        run_id = tracking.ensure_child(c, exp_id, parent_id, t, existing)
        if t.key in done:
            continue
        if t.key in existing:  # interrupted or failed before: reuse the run, re-queue it
            skip[t.key] = tracking.max_step(c, run_id, "train/loss")
            tracking.set_status(c, run_id, "SCHEDULED", outcome="requeued")
        storage = absolute_paths(t.cfg)["train"]["storage_path"]
        payloads[t.key] = dict(
            key=t.key, index=t.index, name=t.name, run_id=run_id, tracking_uri=uri,
            cfg=absolute_paths(t.cfg), params_cfg=t.cfg, metric=cfg.sweep.metric,
            storage_path=storage, train_name=f"{cfg.sweep.experiment}-{t.key}",
            log_path=str(log_dir / f"trial-{t.key}.log"),
        )

    status = "FINISHED"
    if payloads:
        n = max_concurrent(cfg, ray.cluster_resources(), len(payloads))
        need = trial_resources(cfg)
        echo(f"running {len(payloads)} trial(s), {n} at a time (each holds {need}); "
             f"Ray cluster has {ray.cluster_resources().get('CPU', 0):g} CPU, {ray.cluster_resources().get('GPU', 0):g} GPU")
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, payloads=payloads, train_fn=train_fn, eval_fn=eval_fn),
            {"cpu": cfg.sweep.trial_cpus},
        )
        callback = MlflowTrialCallback(c, payloads, len(trials), skip, echo=echo)
        tuner = tune.Tuner(
            trainable,
            param_space=param_space(trials, longest_first(payloads)),
            tune_config=tune.TuneConfig(
                max_concurrent_trials=n, reuse_actors=False,
                scheduler=_scheduler(cfg, trial_epochs(absolute_paths(cfg)) if cfg.sweep.scheduler == "asha" else None),
                trial_name_creator=lambda tr: f"trial-{tr.config['key']}",
                trial_dirname_creator=lambda tr: f"trial-{tr.config['key']}",
            ),
            run_config=tune.RunConfig(
                name=run_name,
                storage_path=absolute_paths(cfg)["train"]["storage_path"],
                callbacks=[callback, *_result_loggers()], verbose=0,
            ),
        )
        try:
            tuner.fit()
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            for key, p in payloads.items():  # never leave a run RUNNING/SCHEDULED behind
                run = c.get_run(p["run_id"])
                if run.info.status in tracking.ACTIVE_STATES:
                    tracking.set_status(c, p["run_id"], status if status == "KILLED" else "FAILED",
                                        outcome="interrupted" if status == "KILLED" else "not_run")
            if status == "KILLED":
                tracking.set_status(c, parent_id, "KILLED")

    if bases:  # once per sweep, after the trials (which leave a local Ray's `idle_cores` free); a failure
        run_baselines(c, exp_id, parent_id, bases, uri, echo=echo, cores=idle_cores)  # leaves the trials' results alone
    wanted = {t.key for t in trials} | {b.key for b in bases}
    runs = {k: r for k, r in tracking.child_runs(c, exp_id, parent_id).items() if k in wanted}
    statuses = {k: r.info.status for k, r in runs.items()}
    best = _log_best_model(c, exp_id, parent_id, cfg, model_loader, echo)
    failed = [k for k, s in statuses.items() if s != "FINISHED" and not is_baseline_key(k)]
    failed_bases = [k for k, s in statuses.items() if s != "FINISHED" and is_baseline_key(k)]
    tracking.set_status(c, parent_id, "FAILED" if failed or failed_bases else "FINISHED")
    from cmr_ray.tune.report import render_report

    echo(render_report(c, cfg.sweep.experiment))
    ended = " and ".join(([f"{len(failed)} failed trial(s)"] if failed else [])
                         + ([f"{len(failed_bases)} failed baseline(s)"] if failed_bases else []))
    echo(f"sweep {f'ended with {ended} (rerun with --resume)' if ended else 'finished'}: "
         f"MLflow experiment '{cfg.sweep.experiment}' (id {exp_id}), parent run {parent_id} in {uri}; "
         f"browse with: cmr-ray ui")
    return dict(experiment_id=exp_id, parent_run_id=parent_id, best_run_id=best,
                runs={k: r.info.run_id for k, r in runs.items()}, status=statuses,
                baselines={b.name: runs[b.key].info.run_id for b in bases if b.key in runs})
