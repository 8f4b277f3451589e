"""The real smoke sweep (experiments/smoke.yaml): synthetic cohort -> prepare -> 3 trials of
real training (Ray Train V2 inside Ray Tune) and evaluation -> MLflow -> `cmr-ray report`.
Slow (minutes): the one end-to-end test of the platform's main job."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from mlflow.entities import ViewType

from cmr_ray import tracking
from conftest import REPO

pytestmark = pytest.mark.integration


def test_smoke_sweep_end_to_end(workdir, ray_local):
    from cmr_ray.cli import main
    from cmr_ray.tune import run_sweep
    from cmr_ray.tune.trainable import store_impressions

    out = run_sweep(REPO / "experiments" / "smoke.yaml")
    assert (workdir / "cmr_store" / "smoke" / "store.json").exists()      # built on first use
    c = tracking.client()
    e = c.get_experiment_by_name("smoke")
    runs = c.search_runs([e.experiment_id], run_view_type=ViewType.ALL)
    kids = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == out["parent_run_id"]]
    assert len(runs) == 4 and len(kids) == 3
    assert {r.info.status for r in runs} == {"FINISHED"}
    for r in kids:
        assert r.data.params["data.store"] == "cmr_store/smoke" and r.data.params["train.epochs"] == "2"
        assert r.data.params["data.views"] in ("cine:sax", "cine:sax+2ch|lge:sax", "cine:4ch+sax|lge:sax+4ch+2ch+3ch")
        m = r.data.metrics
        for k in ("test/t2v_r5", "test/t2v_r10", "test/t2v_r50", "test/v2t_r5", "test/rsum",
                  "probe/nicm_acc", "probe/acdc_acc", "best/val/rsum"):
            assert k in m, f"{r.info.run_name}: {k} missing"
        assert 0 <= m["test/rsum"] <= 600
        # the synthetic cohort's own draws, read out of the tower (eval.readouts)
        # (R² has no floor: on the smoke cohort's few test studies a read-out may be worse than their mean)
        assert m["readout/fat_mm"] <= 1 and 0 <= m["readout/acdc"] <= 1 and 0 < m["readout/acdc_majority"] < 1
        assert [h.step for h in c.get_metric_history(r.info.run_id, "train/loss")] == [1, 2]
        arts = {a.path for a in c.list_artifacts(r.info.run_id)}
        assert "config.yaml" in arts and "eval" in arts
    assert out["best_run_id"] in {r.info.run_id for r in kids}
    assert [v.run_id for v in c.search_model_versions("name = 'cmr-clip-smoke'")] == [out["best_run_id"]]

    # nothing of the reports in MLflow: not in the database, not in any artifact
    impressions = [t.encode() for t in store_impressions("cmr_store/smoke")]
    assert impressions
    files = [workdir / "mlflow.db"] + [p for p in (workdir / "mlartifacts").rglob("*") if p.is_file()]
    for p in files:
        data = p.read_bytes()
        leaked = [t[:40] for t in impressions if t in data]
        assert not leaked, f"{p}: report text {leaked[0]!r}"

    res = CliRunner().invoke(main, ["report", "smoke"])
    assert res.exit_code == 0, res.output
    # (a 2-epoch trial may carry the collapse mark after its name: "CINE_sax ⚠ collapsed")
    assert "| CINE_sax" in res.output and "| CINE_lax-sax + LGE_lax-sax-2ch-3ch" in res.output
    assert "| cine:sax+2ch\\|lge:sax" in res.output  # no paper name, escaped for Markdown
    assert "### What the towers encode" in res.output and "| Views | Frames | field of view |" in res.output

    again = run_sweep(REPO / "experiments" / "smoke.yaml", resume=True)   # nothing left to do
    assert again["parent_run_id"] == out["parent_run_id"] and again["runs"] == out["runs"]
    assert len(c.search_runs([e.experiment_id], run_view_type=ViewType.ALL)) == 4
