"""A sweep that stops on an error leaves no MLflow run RUNNING or SCHEDULED (issue 16, item 8):
the parent and its unfinished trials end FAILED (KILLED on Ctrl-C), finished trials keep
FINISHED.  Real sqlite MLflow store; Ray is not started (the failures come before Tune).  The store is
the tiny fake one of conftest.py (a missing store would be generated: minutes)."""
from __future__ import annotations

import pytest

from cmr_ray import tracking
from conftest import write_experiment


@pytest.fixture
def no_ray(monkeypatch):
    """run_sweep without a Ray cluster: init_ray does nothing, the cluster has 4 CPUs."""
    import ray

    monkeypatch.setattr("cmr_ray.runtime.init_ray", lambda *a, **k: ray)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 4.0})


def _raise(exc):
    def f(*a, **k):
        raise exc
    return f


def _runs(exp_name="fakesweep"):
    c = tracking.client()
    e = c.get_experiment_by_name(exp_name)
    runs = c.search_runs([e.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("cmr.kind") == "sweep")
    kids = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return c, parent, kids


@pytest.mark.parametrize("exc, status", [(RuntimeError("cluster exploded"), "FAILED"),
                                         (KeyboardInterrupt(), "KILLED")])
def test_a_sweep_failing_before_its_trials_ends_parent_and_children(workdir, no_ray, monkeypatch, exc, status):
    from cmr_ray.tune import run_sweep

    exp = write_experiment(workdir)
    monkeypatch.setattr("cmr_ray.tune.sweep.max_concurrent", _raise(exc))  # after the runs exist
    lines = []
    with pytest.raises(type(exc)):
        run_sweep(exp, echo=lines.append)
    c, parent, kids = _runs()
    assert parent.info.status == status and parent.info.end_time
    assert parent.data.tags["cmr.outcome"] == ("error" if status == "FAILED" else "interrupted")
    assert len(kids) == 3 and {k.info.status for k in kids} == {status}
    assert any(f"marked {status}" in ln and parent.info.run_id in ln for ln in lines), lines


def test_an_error_after_the_trials_fails_the_parent_and_keeps_finished_trials(workdir, no_ray, monkeypatch):
    from cmr_ray.tune import run_sweep

    exp = write_experiment(workdir)
    monkeypatch.setattr("cmr_ray.tune.sweep.max_concurrent", _raise(RuntimeError("first attempt")))
    with pytest.raises(RuntimeError):
        run_sweep(exp)
    c, parent, kids = _runs()
    for k in kids:  # as if the trials had run: FINISHED, with a best metric and a checkpoint
        tracking.log_metrics(c, k.info.run_id, {"best/val/rsum": 10.0})
        c.set_tag(k.info.run_id, "cmr.checkpoint_path", str(workdir / "no-checkpoint"))
        tracking.set_status(c, k.info.run_id, "FINISHED", outcome="completed")
    # --resume: no trial left to run; logging the best model fails (say, report text in it)
    monkeypatch.setattr("cmr_ray.tune.sweep._log_best_model", _raise(ValueError("report text in the model")))
    with pytest.raises(ValueError, match="report text"):
        run_sweep(exp, resume=True)
    c, parent2, kids = _runs()
    assert parent2.info.run_id == parent.info.run_id and parent2.info.status == "FAILED"
    assert {k.info.status for k in kids} == {"FINISHED"}
    assert {k.data.tags["cmr.outcome"] for k in kids} == {"completed"}
