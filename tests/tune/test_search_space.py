"""Search spaces beyond a grid (`sweep.search`, `sweep.num_samples`), and Tune's
`param_space` carrying every swept key, so Tune's own tables show the hyperparameters."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest import write_experiment

from cmr_ray.config import ConfigError, load_config
from cmr_ray.tune.grid import expand_trials, search_points, swept_keys, tune_domain

REPO = Path(__file__).resolve().parents[2]


def _cfg(*sets):
    return load_config(None, list(sets))


def test_search_draws_are_seeded_in_range_and_of_the_keys_type():
    sets = ["sweep.search={model.temperature: {loguniform: [0.01, 0.2]}, data.frames: {randint: [4, 9]}, "
            "data.views: {choice: ['cine:sax', 'lge:sax']}}", "sweep.num_samples=40"]
    a, b = search_points(_cfg(*sets)), search_points(_cfg(*sets))
    other = search_points(_cfg(*sets, "sweep.search_seed=1"))
    assert a == b and a != other and len(a) == 40
    temps = [p["model.temperature"] for p in a]
    assert all(0.01 <= t <= 0.2 and type(t) is float for t in temps)
    # log-uniform: about as many draws below the geometric midpoint as above it
    assert 10 <= sum(t < math.sqrt(0.01 * 0.2) for t in temps) <= 30
    assert {p["data.frames"] for p in a} <= set(range(4, 9)) and all(type(p["data.frames"]) is int for p in a)
    assert {p["data.views"] for p in a} == {"cine:sax", "lge:sax"}


def test_search_maps_onto_tunes_own_domains():
    from ray.tune.search.sample import Categorical, Float, Integer, LogUniform

    d = tune_domain({"loguniform": [0.01, 0.2]})
    assert isinstance(d, Float) and isinstance(d.get_sampler(), LogUniform) and (d.lower, d.upper) == (0.01, 0.2)
    assert isinstance(tune_domain({"randint": [1, 5]}), Integer)
    assert isinstance(tune_domain({"choice": [1, 2]}), Categorical)


def test_each_draw_meets_every_grid_point_and_keys_are_stable():
    sets = ["sweep.search={model.temperature: {loguniform: [0.01, 0.2]}}", "sweep.num_samples=3",
            "sweep.grid={data.frames: [4, 8]}", "sweep.trials=[]"]
    trials = expand_trials(_cfg(*sets))
    assert len(trials) == 6 and [t.row for t in trials] == list(range(6))
    assert [t.cfg.data.frames for t in trials] == [4, 8] * 3
    temps = [t.cfg.model.temperature for t in trials]
    assert temps[0] == temps[1] != temps[2] == temps[3] != temps[4]
    assert all(f"τ={t.cfg.model.temperature:g}" in t.name for t in trials)
    assert [t.key for t in trials] == [t.key for t in expand_trials(_cfg(*sets))]   # --resume finds them again
    assert swept_keys(trials)[:4] == ["data.views", "data.frames", "model.temperature", "train.seed"]


def test_bad_search_specs_are_one_line_each():
    with pytest.raises(ConfigError) as e:
        _cfg("sweep.search={model.temperature: {loguniform: [0, 0.2]}, data.frames: {uniform: [1, 3]}, "
             "train.lr: {normal: [0, 1]}, nope.key: {choice: [1]}, data.views: {choice: ['cine:sax', 'bad:x']}}")
    lines = str(e.value).splitlines()
    assert len(lines) == 5, lines
    assert any("'sweep.search.model.temperature'" in x and "lo > 0" in x for x in lines)
    assert any("'sweep.search.data.frames'" in x and "use randint or choice" in x for x in lines)
    assert any("'sweep.search.train.lr'" in x and "one distribution" in x for x in lines)
    assert any("unknown setting 'nope.key'" in x for x in lines)
    assert any("'sweep.search.data.views'" in x and "bad" in x for x in lines)


def test_search_ranges_are_checked_against_the_keys_bounds_and_people_typed_numbers():
    with pytest.raises(ConfigError, match="sweep.search.data.frames"):
        _cfg("sweep.search={data.frames: {randint: [0, 4]}}")  # frames >= 1
    cfg = _cfg("sweep.search={train.lr: {loguniform: ['1e-4', '1e-3']}}", "sweep.num_samples=2")
    assert cfg.sweep.search["train.lr"] == {"loguniform": [1e-4, 1e-3]}


def test_num_samples_without_a_search_and_a_key_set_twice_are_refused():
    with pytest.raises(ConfigError, match="'sweep.num_samples' is 3 but 'sweep.search' is empty"):
        _cfg("sweep.num_samples=3")
    with pytest.raises(ConfigError, match="sweep.search' and 'sweep.grid' both set model.temperature"):
        expand_trials(_cfg("sweep.search={model.temperature: {uniform: [0.01, 0.2]}}",
                           "sweep.grid={model.temperature: [0.1]}", "sweep.trials=[]"))
    with pytest.raises(ConfigError, match="drew the same values twice"):
        expand_trials(_cfg("sweep.search={data.frames: {choice: [4, 8]}}", "sweep.num_samples=5", "sweep.trials=[]"))


def test_param_space_gives_tune_each_trials_swept_values():
    from ray.tune.search.variant_generator import generate_variants

    from cmr_ray.tune.sweep import param_space

    trials = expand_trials(load_config(REPO / "experiments" / "views.yaml"))
    order = [t.key for t in reversed(trials)][:4]
    resolved = [spec for _, spec in generate_variants(param_space(trials, order))]
    assert [r["key"] for r in resolved] == order
    by_key = {t.key: t for t in trials}
    for r in resolved:
        t = by_key[r["key"]]
        assert (r["data.views"], r["data.frames"], r["model.temperature"], r["train.seed"]) == \
            (t.cfg.data.views, t.cfg.data.frames, t.cfg.model.temperature, t.cfg.train.seed)


def test_a_trial_refuses_a_param_space_that_is_not_its_config():
    from cmr_ray.tune.trainable import check_param_space

    cfg = _cfg("data.frames=8")
    check_param_space({"key": "k", "data.frames": 8, "data.views": cfg.data.views}, cfg)
    with pytest.raises(RuntimeError, match="data.frames=4 but the trial's config has 8"):
        check_param_space({"key": "k", "data.frames": 4}, cfg)


def test_asha_spans_a_step_budgeted_trials_epochs():
    from cmr_ray.tune.sweep import _scheduler

    sched = _scheduler(_cfg("sweep.scheduler=asha", "train.epochs=10"), epochs=18)
    rungs = sorted(r[0] for r in sched._brackets[0]._rungs)
    assert sched._max_t == 19 and rungs[0] == 6  # a third of 18 epochs; the final (evaluation) report is never cut


def test_temperature_search_file_loads_and_draws_its_samples():
    cfg = load_config(REPO / "experiments" / "temperature_search.yaml")
    trials = expand_trials(cfg, src="temperature_search.yaml")
    lo, hi = cfg.sweep.search["model.temperature"]["loguniform"]
    assert len(trials) == cfg.sweep.num_samples >= 6 and cfg.sweep.scheduler == "asha"
    assert all(lo <= t.cfg.model.temperature <= hi for t in trials)
    assert len({t.cfg.model.temperature for t in trials}) == len(trials)


@pytest.mark.integration
def test_sampled_sweep_shows_its_hyperparameters_to_tune_and_resumes(workdir, fakes, ray_local):
    from ray import tune

    from cmr_ray import tracking
    from cmr_ray.tune import run_sweep

    exp = write_experiment(workdir, name="search", extra="max_concurrent: 1, trials: [], scheduler: asha, "
                                                         "num_samples: 4, search_seed: 3, "
                                                         "search: {model.temperature: {loguniform: [0.01, 0.3]}}")
    out = run_sweep(exp, ["train.epochs=4"], train_fn=fakes.fake_train, eval_fn=fakes.fake_eval,
                    model_loader=fakes.fake_loader)
    c = tracking.client()
    kids = {r.info.run_id: r for r in c.search_runs(
        [out["experiment_id"]], f"tags.`mlflow.parentRunId` = '{out['parent_run_id']}'")}
    assert len(kids) == 4 and all(r.info.status == "FINISHED" for r in kids.values())
    temps = sorted(float(r.data.params["model.temperature"]) for r in kids.values())
    assert len(set(temps)) == 4 and all(0.01 <= t <= 0.3 for t in temps)
    outcomes = {r.data.tags["cmr.outcome"] for r in kids.values()}
    assert "completed" in outcomes  # ASHA may stop the weak draws; the strongest runs to the end

    # Tune's own results see the hyperparameters as columns, with the values MLflow has
    (run_dir,) = [p for p in (workdir / "ray_results").iterdir() if p.name.startswith("sweep-search-")]
    df = tune.ExperimentAnalysis(str(run_dir)).dataframe()
    for col in ("config/data.views", "config/data.frames", "config/model.temperature", "config/train.seed"):
        assert col in df.columns, list(df.columns)
    assert sorted(df["config/model.temperature"].round(6)) == [round(t, 6) for t in temps]

    again = run_sweep(exp, ["train.epochs=4"], resume=True, train_fn=fakes.fake_train, eval_fn=fakes.fake_eval,
                      model_loader=fakes.fake_loader)
    assert again["parent_run_id"] == out["parent_run_id"] and set(again["runs"].values()) == set(kids)
