"""Issue 19 item 2, seed repeats in the report: trials that differ only in train.seed are one
row, shown as the mean over the seeds with their sample standard deviation and the 95%
interval of the pooled evaluation (a real sqlite MLflow store, no Ray)."""
from __future__ import annotations

import re
import statistics

import numpy as np
import pytest

from cmr_ray import paper, tracking
from cmr_ray.config import load_config
from cmr_ray.eval import bootstrap
from cmr_ray.tune.grid import expand_trials
from cmr_ray.views import FULL_COMBO

N = 150
ACDC = ["DCM", "HCM", "MINF", "NOR", "RV"]
FULL = "CINE_lax-sax + LGE_lax-sax-2ch-3ch"


def _ranks(quality: float, seed: int):
    rng = np.random.default_rng(seed)
    pick = lambda: np.where(rng.random(N) < quality, rng.integers(1, 8, N), rng.integers(1, N + 1, N))  # noqa: E731
    return pick(), pick()


def _labels():
    rng = np.random.default_rng(0)
    return {"acdc": np.array([ACDC[i] for i in rng.integers(0, 5, N)], dtype=object)}


def _child(c, exp, parent, tmp_path, index, views, frames, seed, ranks, baseline=None, per_study=True):
    from cmr_ray.eval.bootstrap import interval_metrics, per_study_record
    from cmr_ray.eval.probe import ProbeOutcome, known, score_predictions
    from cmr_ray.eval.retrieval import metrics_from_ranks

    tags = {"mlflow.parentRunId": parent}
    tags.update({"cmr.baseline": baseline, "cmr.kind": "baseline"} if baseline else
                {"cmr.kind": "trial", "cmr.trial_index": str(index), "cmr.trial_key": f"k{index}"})
    rid = c.create_run(exp, run_name=f"{views} | {frames} frames | seed {seed}", tags=tags).info.run_id
    tracking.log_params(c, rid, {"data.views": views, "data.frames": frames, "model.temperature": 0.1,
                                 "train.seed": seed})
    labels, rng = _labels(), np.random.default_rng(1000 + (index or 0))
    idx, y = known(labels, "acdc")
    pred = np.where(rng.random(len(y)) < 0.3 + 0.1 * ((index or 0) % 3), y, y[rng.permutation(len(y))])
    o = ProbeOutcome("acdc", {}, [], ACDC, y, pred, rng.dirichlet(np.ones(5), len(y)))
    m = {f"test/{k}": v for k, v in metrics_from_ranks(*ranks).items()}
    m.update({f"probe/acdc_{k}": v for k, v in score_predictions("acdc", y, pred, o.score, ACDC)[0].items()})
    m.update(interval_metrics(ranks, {"acdc": o}, labels, 200, 0)[0])
    m["train/loss_ratio"] = 0.5 + 0.01 * (index or 0)
    tracking.log_metrics(c, rid, m)
    if per_study:
        d = tmp_path / rid
        d.mkdir()
        np.savez_compressed(d / "per_study.npz",
                            **per_study_record([f"s{i:03d}" for i in range(N)], ranks, {"acdc": o}, labels))
        c.log_artifact(rid, str(d / "per_study.npz"), artifact_path="eval")
    tracking.set_status(c, rid, "FINISHED")
    return rid


ROWS = [("cine:sax", 8, (0.15, 0.25, 0.2)), ("cine:4ch+sax", 8, (0.35, 0.5, 0.4)),
        (FULL_COMBO, 8, (0.7, 0.8, 0.75)), (FULL_COMBO, 64, (0.72, 0.78, 0.76))]


def _seeded_sweep(c, tmp_path):
    """Four rows × seeds 0, 1, 2 in trial order (a row's seeds together, as expand_trials
    gives them), one single-seed row, and a Zero-shot baseline."""
    exp = tracking.ensure_experiment(c, "views_seeds")
    parent = tracking.start_parent(c, exp, "k", "views_seeds", {})
    ids, ranks, i = {}, {}, 0
    _child(c, exp, parent, tmp_path, None, FULL_COMBO, 16, 0, _ranks(0.0, 99), baseline="zeroshot")
    for views, frames, qualities in ROWS:
        for seed, q in enumerate(qualities):
            r = _ranks(q, 10 * i + 1)
            ids[(views, frames, seed)] = _child(c, exp, parent, tmp_path, i, views, frames, seed, r)
            ranks[(views, frames, seed)] = r
            i += 1
    ids[("lge:sax", 8, 0)] = _child(c, exp, parent, tmp_path, i, "lge:sax", 8, 0, _ranks(0.3, 7))
    return exp, parent, ids, ranks


def _table(text, title):
    lines = text.splitlines()
    i = lines.index(title) + 2
    j = next(k for k in range(i, len(lines)) if not lines[k].startswith("|"))
    head = [c.strip() for c in lines[i].strip("|").split(" | ")]
    return head, [[c.strip() for c in row.strip("|").split(" | ")] for row in lines[i + 2:j]], lines[j:]


def _pooled_rsum_interval(rank_sets):
    """Independently of the report: average each study's hit indicators over the seeds, then
    resample the studies (the report's draw: RESAMPLES, seed 0) and sum the recalls."""
    from cmr_ray.tune.report import RESAMPLES, SEED

    w = bootstrap.draw_weights(N, RESAMPLES, SEED)
    total = np.zeros(RESAMPLES)
    for d in (0, 1):
        for k in (5, 10, 50):
            hits = np.mean([(r[d] <= k).astype(float) for r in rank_sets], axis=0)
            total += 100.0 * (w @ hits) / w.sum(axis=1)
    return bootstrap.percentile_interval(total)


def _num(cell: str) -> float:
    return float(cell.split()[0])


def test_report_pools_seeds_mean_spread_and_pooled_interval(workdir):
    from cmr_ray.tune.report import SPREAD, render_report, report_checks

    c = tracking.client()
    exp, parent, ids, ranks = _seeded_sweep(c, workdir)
    text = render_report(c, "views_seeds", plot_path=str(workdir / "fig.png"))
    assert "13 trial runs make 5 row(s)" in text
    head, t4, notes = _table(text, "### Table 4: retrieval on the test split (R@K in %)")
    assert head[:3] == ["Views", "Frames", "Seeds"]
    assert head[head.index("RSUM") + 1] == SPREAD and "ΔRSUM vs best" in head
    assert len(t4) == 1 + len(ROWS) + 1                  # Zero-shot, four pooled rows, one single-seed row
    rows = {(r[0], r[1]): r for r in t4}
    names = {"cine:sax": "CINE_sax", "cine:4ch+sax": "CINE_lax-sax", FULL_COMBO: FULL}
    means = {}
    for views, frames, _ in ROWS:
        row = rows[(names[views], str(frames))]
        runs = [c.get_run(ids[(views, frames, s)]) for s in range(3)]
        rsums = [r.data.metrics["test/rsum"] for r in runs]
        means[(views, frames)] = statistics.mean(rsums)
        assert row[head.index("Seeds")] == "0, 1, 2"
        # RSUM: the mean over the seeds, with the pooled evaluation's interval
        lo, hi = _pooled_rsum_interval([ranks[(views, frames, s)] for s in range(3)])
        assert row[head.index("RSUM")] == f"{statistics.mean(rsums):.1f} [{lo:.1f}, {hi:.1f}]"
        assert lo <= statistics.mean(rsums) <= hi
        # the spread: sample standard deviation (n - 1) of the seeds' RSUM
        assert row[head.index(SPREAD)] == f"{statistics.stdev(rsums):.1f}"
        t2v5 = statistics.mean(r.data.metrics["test/t2v_r5"] for r in runs)
        assert row[head.index("T2V R@5")] == f"{t2v5:.1f}"
        loss = statistics.mean(r.data.metrics["train/loss_ratio"] for r in runs)
        assert row[head.index("Loss/ln B")] == f"{loss:.2f}"
    # the single-seed row and the baseline: their own logged interval, no spread
    single = c.get_run(ids[("lge:sax", 8, 0)]).data.metrics
    lge = rows[("LGE_sax", "8")]
    assert lge[head.index("Seeds")] == "0" and lge[head.index(SPREAD)] == "–"
    assert lge[head.index("RSUM")] == f"{single['test/rsum']:.1f} [{single['test/rsum_lo']:.1f}, {single['test/rsum_hi']:.1f}]"
    assert rows[("Zero-shot", "16")][head.index(SPREAD)] == "–"
    # ΔRSUM vs best from the pooled (mean) rows: the best is the row with the highest mean
    best = max(means, key=means.get)
    assert best[0] == FULL_COMBO
    delta = head.index("ΔRSUM vs best")
    assert rows[(FULL, str(best[1]))][delta] == "best"
    sax = rows[("CINE_sax", "8")][delta]
    assert sax.startswith(f"{means[('cine:sax', 8)] - means[best]:+.1f} [") and not sax.endswith("≈")
    near = rows[(FULL, "8" if best[1] == 64 else "64")][delta]
    assert near.endswith("≈")                            # the other full-combo row, a few points apart
    notes = "\n".join(notes)
    assert "sample standard deviation (n − 1)" in notes and "pooled evaluation" in notes
    # Spearman ρ vs the paper over the pooled rows' means, with an interval
    ck = report_checks(c, "views_seeds")
    from cmr_ray.tune.report import _spearman

    want = _spearman([means[(v, f)] for v, f, _ in ROWS], [paper.rsum(names[v], f) for v, f, _ in ROWS])
    assert ck["spearman"] == pytest.approx(want) and ck["n_rows"] == 4 and ck["n_trials"] == 13
    assert re.search(r"Spearman ρ, this run's RSUM vs the paper's: [-\d.]+ \[[-\d.]+, [-\d.]+\] .* over 4 trained row",
                     notes)
    # Table 5: the mean 5-class accuracy, with the pooled interval around it
    h5, t5, _ = _table(text, "### Table 5: linear probes on frozen video embeddings (Acc, AUC, F1 in %)")
    r5 = {(r[0], r[1]): r for r in t5}[(FULL, "64")]
    accs = [c.get_run(ids[(FULL_COMBO, 64, s)]).data.metrics["probe/acdc_acc"] for s in range(3)]
    cell = r5[h5.index("5-class Acc")]
    lo5, hi5 = (float(x) for x in re.match(r"[\d.]+ \[([\d.]+), ([\d.]+)\]", cell).groups())
    assert _num(cell) == pytest.approx(100 * statistics.mean(accs), abs=0.051) and lo5 <= _num(cell) <= hi5


def test_one_seed_per_row_reads_as_before(workdir):
    """Without seed repeats no row is pooled: no Seeds or spread column, no seed note."""
    from cmr_ray.tune.report import SPREAD, render_report, seed_rows, sweep_runs

    c = tracking.client()
    exp = tracking.ensure_experiment(c, "views")
    parent = tracking.start_parent(c, exp, "k", "views", {})
    for i, (views, frames, q) in enumerate(ROWS):
        _child(c, exp, parent, workdir, i, views, frames, 0, _ranks(q[0], i), per_study=False)
    trials = sweep_runs(c, "views").trials
    assert seed_rows(trials) == trials
    text = render_report(c, "views", intervals=False, figure=False)
    head, t4, _ = _table(text, "### Table 4: retrieval on the test split (R@K in %)")
    assert "Seeds" not in head and "Seed" not in head and SPREAD not in head and len(t4) == len(ROWS)
    assert "Seed repeats" not in text and "trial runs make" not in text


def test_each_seed_is_a_child_run_with_its_seed_param_and_name(workdir):
    p = workdir / "exp.yaml"
    p.write_text("sweep:\n  seeds: [3, 1]\n  trials: [{data.views: 'cine:sax'}, {data.views: 'cine:4ch+sax'}]\n")
    trials = expand_trials(load_config(p), str(p))
    c = tracking.client()
    exp = tracking.ensure_experiment(c, "exp")
    parent = tracking.start_parent(c, exp, "k", "exp", {})
    runs = [c.get_run(tracking.ensure_child(c, exp, parent, t)) for t in trials]
    assert [r.data.params["train.seed"] for r in runs] == ["3", "1", "3", "1"]
    assert [r.info.run_name.rsplit(" | ", 1)[-1] for r in runs] == ["seed 3", "seed 1"] * 2
    assert len({r.info.run_name for r in runs}) == 4


def _tune_conftest():
    """tests/tune/conftest.py by its path: the module name 'conftest' may name another
    directory's conftest by the time a test runs (tests/ui's, in the full run)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("tune_conftest", Path(__file__).with_name("conftest.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.integration
def test_fake_sweep_with_seeds_runs_each_seed_as_a_child_run_and_reports_rows(workdir, fakes, ray_local):
    """End to end on real Ray Tune + MLflow with fake training: 2 rows × 2 seeds = 4 child
    runs, each with its seed as a param and in its name; the report shows 2 pooled rows."""
    from cmr_ray.tune import run_sweep

    write_experiment = _tune_conftest().write_experiment

    exp = write_experiment(workdir, extra="seeds: [0, 1], trials: [{data.views: 'cine:sax'}, "
                                          "{data.views: 'cine:4ch+sax', data.frames: 8}]")
    lines = []
    out = run_sweep(exp, train_fn=fakes.fake_train, eval_fn=fakes.fake_eval, model_loader=fakes.fake_loader,
                    echo=lines.append)
    c = tracking.client()
    runs = [c.get_run(rid) for rid in out["runs"].values()]
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
    by = sorted((r.data.params["data.views"], r.data.params["train.seed"], r.info.run_name) for r in runs)
    assert [(v, s) for v, s, _ in by] == [("cine:4ch+sax", "0"), ("cine:4ch+sax", "1"), ("cine:sax", "0"), ("cine:sax", "1")]
    assert all(name.endswith(f"| seed {s}") for _, s, name in by)
    report = next(x for x in lines if "### Table 4" in x)
    head, t4, _ = _table(report, "### Table 4: retrieval on the test split (R@K in %)")
    from cmr_ray.tune.report import SPREAD

    assert "Seeds" in head and SPREAD in head and len(t4) == 2
    assert {r[head.index("Seeds")] for r in t4} == {"0, 1"}
    assert {r[head.index(SPREAD)] for r in t4} == {"0.0"}     # the fake training ignores the seed


def _split_sweeps(c, tmp_path, name):
    """The rows of `_seeded_sweep` run as two sweeps of one experiment: seed 0 of every row
    (and the baseline) first, seeds 1 and 2 later, as `--set 'sweep.seeds=[1,2]'` on the same
    store would add them."""
    exp = tracking.ensure_experiment(c, name)
    first = tracking.start_parent(c, exp, "k", name, {})
    later = tracking.start_parent(c, exp, "k2", name, {})
    _child(c, exp, first, tmp_path, None, FULL_COMBO, 16, 0, _ranks(0.0, 99), baseline="zeroshot")
    i = 0
    for views, frames, qualities in ROWS:
        for seed, q in enumerate(qualities):
            _child(c, exp, first if seed == 0 else later, tmp_path, i, views, frames, seed, _ranks(q, 10 * i + 1))
            i += 1
    _child(c, exp, first, tmp_path, i, "lge:sax", 8, 0, _ranks(0.3, 7))
    return exp, first, later


def test_several_parent_runs_read_as_one_sweep(workdir):
    """`cmr-ray report --run A --run B`: seeds run in a later sweep join the first sweep's rows,
    and the tables equal those of one sweep that ran every seed."""
    from cmr_ray.tune.report import render_report, sweep_runs

    c = tracking.client()
    (workdir / "one").mkdir()
    (workdir / "two").mkdir()
    _seeded_sweep(c, workdir / "one")
    _, first, later = _split_sweeps(c, workdir / "two", "views_split")
    one = render_report(c, "views_seeds", figure=False)
    two = render_report(c, "views_split", [first, later], figure=False)
    assert f"parent runs {first} + {later} read as one sweep" in two
    assert "13 trial runs make 5 row(s)" in two
    for title in ("### Table 4: retrieval on the test split (R@K in %)",
                  "### Table 5: linear probes on frozen video embeddings (Acc, AUC, F1 in %)"):
        assert _table(two, title)[:2] == _table(one, title)[:2]
    # the latest sweep alone is only seeds 1 and 2, without the baseline
    assert len(sweep_runs(c, "views_split").trials) == 8 and not sweep_runs(c, "views_split").baselines


def test_several_parent_runs_refused_when_they_overlap_or_are_elsewhere(workdir):
    from cmr_ray.tune.report import sweep_runs

    c = tracking.client()
    exp, first, later = _split_sweeps(c, workdir, "views_split")
    with pytest.raises(ValueError, match="same row .* with the same seed \\(0\\): the sweeps overlap"):
        sweep_runs(c, "views_split", [first, first])
    other = tracking.start_parent(c, tracking.ensure_experiment(c, "elsewhere"), "k", "elsewhere", {})
    with pytest.raises(LookupError, match=f"run {other}: not a sweep of experiment 'views_split'"):
        sweep_runs(c, "views_split", [first, other])
    with pytest.raises(LookupError, match="run nope: no such run"):
        sweep_runs(c, "views_split", [first, "nope"])


def test_report_command_takes_several_runs(workdir):
    from click.testing import CliRunner

    from cmr_ray.cli.sweep import report_cmd

    c = tracking.client()
    _, first, later = _split_sweeps(c, workdir, "views_split")
    out = CliRunner().invoke(report_cmd, ["views_split", "--run", first, "--run", later])
    assert out.exit_code == 0, out.output
    assert f"parent runs {first} + {later} read as one sweep" in out.output and "13 trial runs make 5 row(s)" in out.output
    bad = CliRunner().invoke(report_cmd, ["views_split", "--run", first, "--run", first])
    assert bad.exit_code == 1 and "the sweeps overlap" in bad.output and "Traceback" not in bad.output
