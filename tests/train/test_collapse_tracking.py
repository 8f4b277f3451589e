"""The collapse verdict reaches the sweep: the trial's final report, MLflow tags, a console WARNING
(the driver-side callback, no Ray cluster)."""
import math
from types import SimpleNamespace

import pytest

from cmr_ray.config import load_config

CFG = load_config(None, {"train.batch_size": 32, "train.accum_steps": 1, "train.workers": 1})


def test_learning_report_from_history():
    from cmr_ray.tune.trainable import learning_report

    rows = [{"epoch": 1, "train/loss": 3.47}, {"epoch": 2, "train/loss": 3.463, "val/video_spread": 0.3}]
    r = learning_report(rows, CFG)
    assert r["learning"] == "collapsed" and r["learning_epoch"] == 2
    assert r["train/loss_ratio"] == pytest.approx(3.463 / math.log(32))
    assert "ln 32" in r["learning_reason"]
    assert learning_report([{"epoch": 1, "val/rsum": 3.0}], CFG) == {}  # nothing to judge: no keys


@pytest.fixture
def mlflow_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from cmr_ray import tracking

    c = tracking.client(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = tracking.ensure_experiment(c, "collapse")
    rid = c.create_run(exp).info.run_id
    return c, rid, {"key": "k1", "index": 0, "name": "CINE_sax | 8 frames", "run_id": rid}


@pytest.mark.parametrize("losses,state,collapsed", [((3.47, 1.2), "learned", "0"), ((3.47, 3.2), "slow", "0"),
                                                     ((3.47, 3.46), "collapsed", "1")])
def test_callback_tags_metric_and_warning(mlflow_run, losses, state, collapsed):
    from cmr_ray.tune.callback import MlflowTrialCallback
    from cmr_ray.tune.trainable import learning_report

    c, rid, payload = mlflow_run
    lines = []
    cb = MlflowTrialCallback(c, {"k1": payload}, total=1, echo=lines.append)
    trial = SimpleNamespace(config={"key": "k1"}, trial_id="t1", error_file=None)
    cb.on_trial_start(0, [], trial)
    history = [{"epoch": e + 1, "train/loss": x} for e, x in enumerate(losses)]
    cb.on_trial_result(0, [], trial, {**history[0], "train/loss_ratio": losses[0] / math.log(32)})
    # epoch 2 only in the final report's history, without a loss ratio (as from an older loop)
    final = {"final": 1, "test/rsum": 100.0, "epoch_history": history, **learning_report(history, CFG)}
    cb.on_trial_result(0, [], trial, final)
    cb.on_trial_complete(0, [], trial)
    r = c.get_run(rid)
    assert r.data.tags["cmr.learning"] == state and r.data.tags["cmr.collapsed"] == collapsed
    assert r.data.metrics["train/loss_ratio"] == pytest.approx(losses[1] / math.log(32))
    assert [m.step for m in c.get_metric_history(rid, "train/loss_ratio")] == [1, 2]
    warnings = [x for x in lines if "WARNING" in x]
    if state == "learned":
        assert not warnings
    else:
        assert len(warnings) == 1 and "CINE_sax | 8 frames" in warnings[0] and "ln 32" in warnings[0]
    assert any("train/loss_ratio=" in x for x in lines if "epoch 1" in x)


def test_no_verdict_no_tags(mlflow_run):
    from cmr_ray.tune.callback import MlflowTrialCallback

    c, rid, payload = mlflow_run
    cb = MlflowTrialCallback(c, {"k1": payload}, total=1, echo=lambda s: None)
    trial = SimpleNamespace(config={"key": "k1"}, trial_id="t1", error_file=None)
    cb.on_trial_result(0, [], trial, {"final": 1, "test/rsum": 1.0})
    assert "cmr.learning" not in c.get_run(rid).data.tags
