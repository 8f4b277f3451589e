"""The sweep layer on real Ray Tune + Ray Train V2 + MLflow, with fake training/evaluation
(tests/tune/fakes.py): MLflow layout, report, resume after a killed driver, ASHA."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow.entities import ViewType

from cmr_ray import tracking
from tests.netutil import process_tree
from conftest import IMPRESSIONS, write_experiment

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent


def _children(c, exp_id, parent_id, view=ViewType.ALL):
    return c.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{parent_id}'", run_view_type=view)


def test_fake_sweep_logs_one_parent_and_one_child_per_trial(workdir, fakes, ray_local):
    from cmr_ray.cli import main
    from cmr_ray.tune import run_sweep

    exp = write_experiment(workdir)
    out = run_sweep(exp, train_fn=fakes.fake_train, eval_fn=fakes.fake_eval, model_loader=fakes.fake_loader)
    c = tracking.client()
    e = c.get_experiment_by_name("fakesweep")
    runs = c.search_runs([e.experiment_id], run_view_type=ViewType.ALL)
    parents = [r for r in runs if r.data.tags.get("cmr.kind") == "sweep"]
    children = _children(c, e.experiment_id, out["parent_run_id"])
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == len(runs) - 1 == 3
    for r in children:
        assert r.info.status == "FINISHED" and r.data.tags["cmr.outcome"] == "completed"
        p, m = r.data.params, r.data.metrics
        assert {"data.views", "data.frames", "model.temperature", "train.epochs", "train.seed"} <= set(p)
        assert {"test/t2v_r5", "test/v2t_r50", "test/rsum", "probe/hcm_auc", "probe/acdc_f1", "best/val/rsum"} <= set(m)
        assert [h.step for h in c.get_metric_history(r.info.run_id, "val/rsum")] == [1, 2]
        assert m["eval/checkpoint_epoch"] == 2              # the scored checkpoint's epoch is logged
        arts = {a.path for a in c.list_artifacts(r.info.run_id)} | {a.path for a in c.list_artifacts(r.info.run_id, "eval")}
        assert {"config.yaml", "eval/retrieval.csv", "eval/plot.png"} <= arts
    best = max(children, key=lambda r: r.data.metrics["best/val/rsum"])
    assert out["best_run_id"] == best.info.run_id == parents[0].data.tags["cmr.best_run_id"]
    assert {a.path for a in c.list_artifacts(best.info.run_id)} >= {"model", "checkpoint"}
    assert [v.run_id for v in c.search_model_versions("name = 'cmr-clip-smoke'")] == [best.info.run_id]
    # no report text anywhere in the artifacts
    blob = b"".join(p.read_bytes() for p in (workdir / "mlartifacts").rglob("*") if p.is_file())
    assert blob and not any(t.encode() in blob for t in IMPRESSIONS)
    # the report renders from MLflow alone
    res = CliRunner().invoke(main, ["report", str(exp)])
    assert res.exit_code == 0, res.output
    assert "| CINE_sax | 4 |" in res.output and "| CINE_lax-sax + LGE_lax-sax-2ch-3ch | 8 |" in res.output
    assert "| cine:sax+2ch\\|lge:sax | 4 |" in res.output  # a combo without a paper name, escaped for Markdown


def _proc_children(pid: int) -> set[int]:
    """All descendants of `pid` (not pid itself), from /proc."""
    return process_tree(pid) - {pid}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_resume_after_killed_driver_runs_only_unfinished_trials(workdir, fakes):
    exp = write_experiment(workdir, extra="max_concurrent: 1")
    env = dict(os.environ, CMR_FAKE_EPOCH_S="2", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, str(HERE / "run_fake_sweep.py"), str(exp)]
    log = open(workdir / "first.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    c = tracking.client()
    killed_at = None
    try:
        deadline = time.time() + 400
        while time.time() < deadline and proc.poll() is None:
            time.sleep(1)
            e = c.get_experiment_by_name("fakesweep")
            if e is None:
                continue
            kids = c.search_runs([e.experiment_id], "tags.`cmr.kind` = 'trial'")
            finished = [r for r in kids if r.info.status == "FINISHED"]
            running = [r for r in kids if r.info.status == "RUNNING" and "train/loss" in r.data.metrics]
            if finished and running:
                descendants = _proc_children(proc.pid)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                killed_at = {r.data.tags["cmr.trial_key"]: r for r in kids}
                break
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    assert killed_at is not None, (workdir / "first.log").read_text()[-3000:]
    # Most of Ray's processes go with the driver that started them (fate sharing); whatever
    # is still up after a grace period (e.g. a GCS server) was started by this test: end it by pid.
    deadline = time.time() + 30
    while time.time() < deadline and any(_alive(p) for p in descendants):
        time.sleep(1)
    for p in descendants:
        if _alive(p):
            os.kill(p, signal.SIGKILL)

    before = {k: (r.info.run_id, r.info.status, r.info.start_time, r.info.end_time) for k, r in killed_at.items()}
    res = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "--resume: 1 of 3 trial(s) already finished; running the other 2" in res.stdout

    e = c.get_experiment_by_name("fakesweep")
    all_runs = c.search_runs([e.experiment_id], run_view_type=ViewType.ALL)
    parents = [r for r in all_runs if r.data.tags.get("cmr.kind") == "sweep"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    kids = _children(c, e.experiment_id, parents[0].info.run_id)
    assert len(kids) == len(all_runs) - 1 == 3                       # exactly one child run per trial
    assert all(r.info.status == "FINISHED" for r in kids)            # none left RUNNING
    after = {r.data.tags["cmr.trial_key"]: r for r in kids}
    for key, (run_id, status, start, end) in before.items():
        assert after[key].info.run_id == run_id                       # runs reused, never duplicated
        if status == "FINISHED":                                     # finished trials were not run again
            assert (after[key].info.start_time, after[key].info.end_time) == (start, end)
            assert after[key].data.tags.get("cmr.outcome") == "completed"
    for r in kids:  # every epoch logged once, the interrupted trial included
        assert [h.step for h in c.get_metric_history(r.info.run_id, "train/loss")] == [1, 2]
        assert "test/rsum" in r.data.metrics


def test_asha_stops_weak_trials_and_releases_their_resources(workdir, fakes, ray_local):
    from cmr_ray.tune import run_sweep

    # 4 trials, one at a time, strongest first (fakes.quality falls as τ rises): ASHA (grace
    # 1 epoch, reduction 2) stops a trial that ranks in the bottom half at its rung.  Later
    # trials can only start if the stopped ones gave their CPUs back.
    exp = write_experiment(workdir, name="asha", extra="scheduler: asha, max_concurrent: 1, trials: [], "
                                                       "grid: {model.temperature: [0.02, 0.05, 0.1, 0.2]}")
    out = run_sweep(exp, ["train.epochs=4"], train_fn=fakes.fake_train, eval_fn=fakes.fake_eval,
                    model_loader=fakes.fake_loader)
    c = tracking.client()
    e = c.get_experiment_by_name("asha")
    kids = _children(c, e.experiment_id, out["parent_run_id"])
    outcomes = {r.data.params["model.temperature"]: r.data.tags["cmr.outcome"] for r in kids}
    assert len(kids) == 4 and all(r.info.status == "FINISHED" for r in kids)
    assert outcomes["0.02"] == "completed" and outcomes["0.2"] == "stopped_early"
    stopped = [r for r in kids if r.data.tags["cmr.outcome"] == "stopped_early"]
    for r in stopped:
        assert "test/rsum" not in r.data.metrics and len(c.get_metric_history(r.info.run_id, "val/rsum")) < 4
    # Stopped trials' Train controllers and workers are gone (they die with the trial's actor):
    # every trial after the first stop still got a worker and ran.
    from ray._private import state

    alive = [a for a in state.actors().values() if a["State"] == "ALIVE"
             and a.get("ActorClassName") in ("RayTrainWorker", "TrainController", "ImplicitFunc")]
    assert not alive, f"actors of finished trials still alive: {[a['ActorClassName'] for a in alive]}"
    ran_after_stop = [r for r in kids if r.data.params["model.temperature"] in ("0.1", "0.2")]
    assert all(c.get_metric_history(r.info.run_id, "train/loss") for r in ran_after_stop)
