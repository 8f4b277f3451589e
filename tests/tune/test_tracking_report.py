"""MLflow bookkeeping and the paper tables, on a real sqlite store (no Ray)."""
import pytest

from cmr_ray import tracking
from cmr_ray.config import load_config
from cmr_ray.tune.grid import expand_trials
from cmr_ray.tune.report import render_report, sweep_runs


@pytest.fixture
def store(workdir):
    c = tracking.client()
    assert c.tracking_uri == f"sqlite:///{workdir / 'mlflow.db'}"
    return c


def _trials(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text("sweep:\n  trials:\n"
                 "    - {data.views: 'cine:sax', data.frames: 8}\n"
                 "    - {data.views: 'cine:4ch+sax|lge:sax+4ch', data.frames: 16}\n"
                 "    - {data.views: 'lge:sax', data.frames: 8}\n")
    return expand_trials(load_config(p), str(p))


def test_one_child_per_trial_key(store, workdir):
    trials = _trials(workdir)
    exp = tracking.ensure_experiment(store, "exp")
    assert tracking.ensure_experiment(store, "exp") == exp
    assert store.get_experiment(exp).artifact_location == (workdir / "mlartifacts" / "exp").as_uri()
    parent = tracking.start_parent(store, exp, "k1", "exp", {"sweep.metric": "val/rsum"})
    ids = [tracking.ensure_child(store, exp, parent, t) for t in trials]
    again = [tracking.ensure_child(store, exp, parent, t) for t in trials]
    assert ids == again and len(set(ids)) == 3
    runs = tracking.child_runs(store, exp, parent)
    assert set(runs) == {t.key for t in trials}
    r = store.get_run(ids[1])
    assert r.info.status == "SCHEDULED" and r.data.tags["mlflow.parentRunId"] == parent
    assert r.info.run_name == "CINE_lax-sax + LGE_lax-sax | 16 frames | τ=0.05 | seed 0"
    assert r.data.params["data.views"] == "cine:4ch+sax|lge:sax+4ch"
    assert r.data.params["data.frames"] == "16" and r.data.params["model.temperature"] == "0.05"
    assert r.data.params["eval.probes"] == "nicm,icm,amyl,hcm,acdc"
    assert tracking.find_parent(store, exp, "k1").info.run_id == parent
    assert tracking.find_parent(store, exp, "other") is None


def test_metrics_filtering_and_steps(store):
    exp = tracking.ensure_experiment(store, "m")
    run = store.create_run(exp).info.run_id
    tracking.log_metrics(store, run, {"val/rsum": 10.0, "epoch": 1, "checkpoint_path": "/x", "R@5": 3.0,
                                      "bad": float("nan"), "flag": True}, step=1)
    tracking.log_metrics(store, run, {"val/rsum": 20.0}, step=2)
    assert set(store.get_run(run).data.metrics) == {"val/rsum", "epoch"}
    assert [(m.step, m.value) for m in store.get_metric_history(run, "val/rsum")] == [(1, 10.0), (2, 20.0)]
    assert tracking.max_step(store, run, "val/rsum") == 2 and tracking.max_step(store, run, "nope") == -1


def _populate(c, workdir):
    trials = _trials(workdir)
    exp = tracking.ensure_experiment(c, "views")
    parent = tracking.start_parent(c, exp, "k", "views", {})
    for t in trials:
        rid = tracking.ensure_child(c, exp, parent, t)
        q = 1 + t.index
        m = {f"test/{d}_r{k}": 10.0 * q + k / 10 for d in ("t2v", "v2t") for k in (5, 10, 50)}
        m["test/rsum"] = sum(m.values())
        m.update({f"probe/{lab}_{s}": 0.6 + 0.1 * t.index for lab in ("nicm", "icm", "amyl", "hcm", "acdc")
                  for s in ("acc", "auc", "f1")})
        if t.index == 0:
            del m["probe/amyl_auc"]          # an undefined metric prints as a dash
        tracking.log_metrics(c, rid, m)
        tracking.set_status(c, rid, "FINISHED" if t.index < 2 else "FAILED")
    return parent


def test_report_tables(store, workdir):
    parent = _populate(store, workdir)
    text = render_report(store, "views")
    lines = text.splitlines()
    t4 = lines[lines.index("### Table 4: retrieval on the test split (R@K in %)") + 2:]
    assert t4[0] == ("| Views | Frames | T2V R@5 | T2V R@10 | T2V R@50 | V2T R@5 | V2T R@10 | V2T R@50 | RSUM |"
                     " Paper RSUM | Loss/ln B |")
    assert t4[2] == "| CINE_sax | 8 | 10.5 | 11.0 | 15.0 | 10.5 | 11.0 | 15.0 | 73.0 | 126.2 | – |"
    assert t4[3].startswith("| CINE_lax-sax + LGE_lax-sax | 16 | 20.5 |")
    assert "LGE_sax" not in text           # the FAILED trial is not a row
    t5 = lines[lines.index("### Table 5: linear probes on frozen video embeddings (Acc, AUC, F1 in %)") + 2:]
    assert t5[0].startswith("| Views | Frames | NICM Acc | NICM AUC | NICM F1 | ICM Acc |")
    assert t5[0].endswith("| 5-class Acc | 5-class AUC | 5-class F1 |")
    row = t5[2].split(" | ")
    assert row[0] == "| CINE_sax" and row[2:5] == ["60.0", "60.0", "60.0"] and row[9] == "–"
    assert t5[3].split(" | ")[2] == "70.0"
    assert sweep_runs(store, "views")[0].info.run_id == parent
    with pytest.raises(LookupError, match="no experiment 'nope'"):
        render_report(store, "nope")


def test_report_cli(store, workdir):
    from click.testing import CliRunner

    from cmr_ray.cli import main

    _populate(store, workdir)
    out = CliRunner().invoke(main, ["report", "views"])
    assert out.exit_code == 0, out.output
    assert "| CINE_sax | 8 | 10.5 |" in out.output
    out = CliRunner().invoke(main, ["report", "nope"])
    assert out.exit_code != 0 and "no experiment 'nope'" in out.output


def test_ui_command_is_an_argument_list_on_loopback(workdir):
    args = tracking.ui_command(None, port=5123)
    assert args[args.index("--host") + 1] == "127.0.0.1" and args[args.index("--port") + 1] == "5123"
    assert args[args.index("--backend-store-uri") + 1] == f"sqlite:///{workdir / 'mlflow.db'}"
    assert args[args.index("--artifacts-destination") + 1] == str(workdir / "mlartifacts")
    assert tracking.ui_env()["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    with pytest.raises(ValueError, match="file store"):
        tracking.resolve_uri(str(workdir))
