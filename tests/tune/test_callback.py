"""The driver-side MLflow callback and the report-text guard, without a Ray cluster."""
from types import SimpleNamespace

import pytest

from cmr_ray import tracking
from cmr_ray.tune.callback import MlflowTrialCallback
from cmr_ray.tune.trainable import check_no_report_text, epoch_history, store_impressions
from conftest import IMPRESSIONS, make_store


@pytest.fixture
def run(workdir):
    c = tracking.client()
    exp = tracking.ensure_experiment(c, "cb")
    rid = c.create_run(exp).info.run_id
    payload = {"key": "k1", "index": 0, "name": "CINE_sax | 8 frames | τ=0.05 | seed 0", "run_id": rid}
    return c, rid, payload


def _trial():
    return SimpleNamespace(config={"key": "k1"}, trial_id="t1", error_file=None)


def test_epochs_finals_and_status(run):
    c, rid, payload = run
    lines = []
    cb = MlflowTrialCallback(c, {"k1": payload}, total=1, echo=lines.append)
    t = _trial()
    cb.on_trial_start(0, [], t)
    assert c.get_run(rid).info.status == "RUNNING"
    for epoch in (1, 2):
        cb.on_trial_result(0, [], t, {"epoch": epoch, "train/loss": 1.0 / epoch, "val/rsum": 10.0 * epoch,
                                      "time_total_s": 3.0, "pid": 123, "training_iteration": epoch})
    history = [{"epoch": 1, "val/rsum": 10.0}, {"epoch": 2, "val/rsum": 20.0}, {"epoch": 3, "val/rsum": 30.0}]
    cb.on_trial_result(0, [], t, {"final": 1, "val/rsum": 30.0, "test/rsum": 250.0, "probe/hcm_auc": 0.9, "epoch_history": history,
                                  "checkpoint_path": "/ckpt/x", "time_total_s": 9.0})
    cb.on_trial_complete(0, [], t)
    r = c.get_run(rid)
    assert r.info.status == "FINISHED" and r.data.tags["cmr.outcome"] == "completed"
    assert r.data.tags["cmr.checkpoint_path"] == "/ckpt/x"
    assert set(r.data.metrics) == {"epoch", "train/loss", "val/rsum", "test/rsum", "probe/hcm_auc"}
    # epochs 1-2 logged once as they came; epoch 3 (only in the history) backfilled
    assert [(m.step, m.value) for m in c.get_metric_history(rid, "val/rsum")] == [(1, 10.0), (2, 20.0), (3, 30.0)]
    assert any("epoch 2" in line for line in lines) and any("completed" in line for line in lines)


def test_resumed_run_skips_logged_epochs_and_early_stop(run):
    c, rid, payload = run
    tracking.log_metrics(c, rid, {"train/loss": 1.0}, step=1)
    cb = MlflowTrialCallback(c, {"k1": payload}, total=1, skip_upto={"k1": 1}, echo=lambda s: None)
    t = _trial()
    cb.on_trial_start(0, [], t)
    cb.on_trial_result(0, [], t, {"epoch": 1, "train/loss": 0.5})
    cb.on_trial_result(0, [], t, {"epoch": 2, "train/loss": 0.4})
    cb.on_trial_complete(0, [], t)  # no final report: the scheduler stopped it
    assert [(m.step, m.value) for m in c.get_metric_history(rid, "train/loss")] == [(1, 1.0), (2, 0.4)]
    r = c.get_run(rid)
    assert r.info.status == "FINISHED" and r.data.tags["cmr.outcome"] == "stopped_early"


def test_error_marks_failed(run):
    c, rid, payload = run
    cb = MlflowTrialCallback(c, {"k1": payload}, total=1, echo=lambda s: None)
    cb.on_trial_error(0, [], _trial())
    assert c.get_run(rid).info.status == "FAILED"


def test_report_text_guard(workdir):
    make_store(workdir / "store")
    texts = store_impressions(str(workdir / "store"))
    assert texts == sorted(IMPRESSIONS)
    out = workdir / "eval"
    out.mkdir()
    (out / "table.md").write_text("| metric | value |\n| rsum | 300 |\n")
    (out / "plot.png").write_bytes(b"\x89PNG" + IMPRESSIONS[0].encode())
    check_no_report_text(out, texts)                      # PNG not read as text
    with pytest.raises(RuntimeError, match="plot.png: contains report text"):
        check_no_report_text(out, texts, binary=True)     # every byte when asked
    (out / "notes.txt").write_text("nearest: " + IMPRESSIONS[1])
    with pytest.raises(RuntimeError, match="notes.txt: contains report text"):
        check_no_report_text(out, texts)


def test_epoch_history_from_train_result():
    res = SimpleNamespace(best_checkpoints=[(None, {"epoch": 3, "val/rsum": 3.0}), (None, {"epoch": 1, "val/rsum": 1.0})],
                          metrics={"epoch": 4, "val/rsum": 2.0, "note": "x"})
    assert epoch_history(res) == [{"epoch": 1, "val/rsum": 1.0}, {"epoch": 3, "val/rsum": 3.0},
                                  {"epoch": 4, "val/rsum": 2.0}]


def test_best_checkpoint_follows_the_sweep_mode():
    from cmr_ray.train.trainer import best_checkpoint

    res = SimpleNamespace(best_checkpoints=[("a", {"val/loss": 2.0}), ("b", {"val/loss": 1.0}), ("c", {"val/loss": 3.0})],
                          checkpoint="c", metrics={})
    assert best_checkpoint(res, "val/loss", "min")[0] == "b"
    assert best_checkpoint(res, "val/loss", "max")[0] == "c"


def test_evaluated_checkpoint_is_the_budgets_end_or_the_best_epoch():
    """eval.checkpoint: 'last' scores the latest checkpoint even where an earlier epoch had the
    higher validation RSUM; 'best' scores that epoch; 'last' with no latest falls back to best."""
    from pathlib import Path

    from cmr_ray.config import load_config
    from cmr_ray.train.trainer import evaluated_checkpoint

    views = Path(__file__).resolve().parents[2] / "experiments" / "views.yaml"
    last = load_config(views)
    assert last.eval.checkpoint == "last"                 # the main job scores the end of its budget
    best = last.replace("eval.checkpoint", "best")
    res = SimpleNamespace(best_checkpoints=[("e12", {"epoch": 12, "val/rsum": 358.7}),
                                            ("e18", {"epoch": 18, "val/rsum": 354.7})],
                          checkpoint="e18", metrics={"epoch": 18, "val/rsum": 354.7})
    assert evaluated_checkpoint(res, last) == ("e18", {"epoch": 18, "val/rsum": 354.7})
    assert evaluated_checkpoint(res, best)[0] == "e12"
    assert evaluated_checkpoint(SimpleNamespace(best_checkpoints=res.best_checkpoints, checkpoint=None,
                                                metrics={}), last)[0] == "e12"
    with pytest.raises(Exception, match="eval.checkpoint"):
        load_config(views, ["eval.checkpoint=final"])
