"""An ASHA-stopped trial gives its CPUs back while the sweep still runs (issue 17).

Ray Train's placement-group cleaner removes a stopped trial's worker placement group once
it sees, through Ray's state API, that the trial's Train controller is gone; the state API
is served by Ray's dashboard.  Three trials run one at a time (strong, weak, middling): ASHA
stops the weak one at its first rung, and the (strongest) trial after it looks at the cluster
from its own Train worker (tests/tune/fakes.py `probe`).  With the dashboard (the default) the
stopped trial's placement group is REMOVED and the CPUs free are what they were beside the
first trial; without it (CMR_RAY_DASHBOARD=0, the control) the group stays CREATED, one
worker's CPUs short, and the cleaner complains that it cannot ask.  The sweep's log
(Ray forwards its workers' lines; the sweep keeps them in sweep.log) must carry no such
complaint with the dashboard.
"""
from __future__ import annotations

import json

import pytest
from mlflow.entities import ViewType

from cmr_ray import tracking
from conftest import write_experiment

pytestmark = pytest.mark.integration
# how the cleaner fails without a state API: a warning every second (the only Ray on the
# machine), or its thread dies with a traceback (other Rays on the machine: "Found multiple
# active Ray instances")
CLEANER_COMPLAINTS = ("Failed to query Ray Train Controller actor state", "Exception in thread PlacementGroupCleanerMonitor")


@pytest.fixture(params=["dashboard", "no-dashboard"])
def dashboard(request, monkeypatch, tmp_path):
    """Set before `ray_local` starts Ray (its workers inherit the environment)."""
    monkeypatch.setenv("CMR_RAY_DASHBOARD", "1" if request.param == "dashboard" else "0")
    monkeypatch.setenv("CMR_FAKE_EPOCH_S", "1")
    probes = tmp_path / "probes"
    probes.mkdir()
    monkeypatch.setenv("CMR_FAKE_PROBE_DIR", str(probes))
    return request.param == "dashboard", probes


def _probes(d) -> dict[float, list[dict]]:
    out = {}
    for p in sorted(d.glob("q-*.jsonl")):
        rows = [json.loads(line) for line in p.read_text().splitlines()]
        out[rows[0]["q"]] = sorted(rows, key=lambda r: r["epoch"])
    return out


def test_an_asha_stopped_trial_gives_its_cpus_back_while_the_sweep_runs(dashboard, workdir, fakes, ray_local, capfd):
    from cmr_ray.config import load_config
    from cmr_ray.runtime import dashboard_url
    from cmr_ray.tune import run_sweep
    from cmr_ray.tune.grid import trial_resources

    with_dashboard, probe_dir = dashboard
    assert bool(dashboard_url()) == with_dashboard
    exp = write_experiment(workdir, name="asha-release", extra="scheduler: asha, max_concurrent: 1, trials: [], "
                                                               "grid: {model.temperature: [0.05, 0.2, 0.02]}")
    out = run_sweep(exp, ["train.epochs=3"], train_fn=fakes.fake_train, eval_fn=fakes.fake_eval,
                    model_loader=fakes.fake_loader)
    logs = capfd.readouterr()
    c = tracking.client()
    e = c.get_experiment_by_name("asha-release")
    kids = c.search_runs([e.experiment_id], f"tags.`mlflow.parentRunId` = '{out['parent_run_id']}'",
                         run_view_type=ViewType.ALL)
    outcome = {r.data.params["model.temperature"]: r.data.tags["cmr.outcome"] for r in kids}
    # ASHA (grace 1 epoch, reduction 2): the first trial leads every rung it reaches; the weak second one
    # falls below the median at rung 1; the strong third one stays above it
    assert outcome == {"0.05": "completed", "0.2": "stopped_early", "0.02": "completed"}, outcome

    probes = _probes(probe_dir)
    assert len(probes) == 3, sorted(probes)
    stopped, first, last = (probes[q] for q in sorted(probes))  # quality: τ 0.2 < 0.05 < 0.02
    assert len(stopped) == 1 and len(first) == len(last) == 3  # cut at its first rung; the others ran on
    assert first[-1]["t"] < stopped[0]["t"] < last[0]["t"], "the trials did not run one after the other"
    cfg = load_config(exp, ["train.epochs=3"])
    need, worker_cpus = trial_resources(cfg)["CPU"], cfg.train.workers * cfg.train.cpus_per_worker
    total = last[-1]["total_cpu"]
    assert first[-1]["free_cpu"] == pytest.approx(total - need)  # beside the first trial: only its own hold

    # the last trial's final epoch, the sweep still running: where did the stopped trial's reservation go?
    # (Ray's worker lines reach this test's driver, started with log_to_driver on, and the sweep
    # keeps them off the console, in its sweep.log: that is where the cleaner's complaints land.)
    (sweep_log,) = (workdir / "ray_results").glob("sweep-asha-release-*/sweep.log")
    text = logs.out + logs.err + sweep_log.read_text()
    seen = last[-1]
    if with_dashboard:
        assert seen["pgs"][stopped[0]["pg"]] == "REMOVED", seen["pgs"]
        assert seen["free_cpu"] == pytest.approx(total - need), seen
        assert not [c for c in CLEANER_COMPLAINTS if c in text], text[-3000:]
    else:  # the control: what the dashboard saves
        assert seen["pgs"][stopped[0]["pg"]] == "CREATED", seen["pgs"]
        assert seen["free_cpu"] == pytest.approx(total - need - worker_cpus), seen
        assert any(c in text for c in CLEANER_COMPLAINTS)
