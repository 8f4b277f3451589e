"""Expanding `sweep` sections into trials: products, names, keys, validation, concurrency."""
from pathlib import Path

import pytest

from cmr_ray import paper
from cmr_ray.config import ConfigError, load_config
from cmr_ray.tune.grid import expand_trials, local_cpus, max_concurrent, sweep_key, trial_resources
from cmr_ray.views import PAPER_NAMES

REPO = Path(__file__).resolve().parents[2]


def _cfg(tmp_path, body: str):
    p = tmp_path / "exp.yaml"
    p.write_text(body)
    return load_config(p), str(p)


def test_trials_times_grid(tmp_path):
    cfg, src = _cfg(tmp_path, """
sweep:
  trials: [{data.views: "cine:sax"}, {data.views: "lge:sax"}]
  grid: {data.frames: [4, 8], model.temperature: [0.05, 0.1]}
""")
    trials = expand_trials(cfg, src)
    assert len(trials) == 2 * 2 * 2
    combos = {(t.cfg["data"]["views"], t.cfg["data"]["frames"], t.cfg["model"]["temperature"]) for t in trials}
    assert len(combos) == 8
    assert [t.index for t in trials] == list(range(8))
    assert trials[0].overrides == {"data.views": "cine:sax", "data.frames": 4, "model.temperature": 0.05}
    assert trials[0].name == "CINE_sax | 4 frames | τ=0.05 | seed 0"
    assert len({t.key for t in trials}) == 8 and len({t.name for t in trials}) == 8
    # the base config is untouched; each trial's config is resolved
    assert cfg["data"]["frames"] == 8 and trials[0].cfg["data"]["frames"] == 4


def test_keys_are_stable_and_follow_the_config(tmp_path):
    body = "sweep: {grid: {data.frames: [4, 8]}}\n"
    a = expand_trials(*_cfg(tmp_path, body))
    b = expand_trials(*_cfg(tmp_path, body))
    assert [t.key for t in a] == [t.key for t in b] and sweep_key(a) == sweep_key(b)
    c = expand_trials(load_config(tmp_path / "exp.yaml", ["train.epochs=3"]), "x")
    assert {t.key for t in c}.isdisjoint({t.key for t in a})
    assert sweep_key(c) != sweep_key(a)


def test_no_trials_means_one_base_trial(tmp_path):
    trials = expand_trials(*_cfg(tmp_path, "data: {frames: 4}\n"))
    assert len(trials) == 1 and trials[0].overrides == {} and trials[0].cfg["data"]["frames"] == 4


def test_extra_keys_keep_names_unique(tmp_path):
    trials = expand_trials(*_cfg(tmp_path, "sweep: {grid: {train.lr: [0.001, 0.0005]}}\n"))
    assert trials[0].name.endswith("train.lr=0.001") and trials[0].name != trials[1].name


@pytest.mark.parametrize("body, message", [
    ("sweep: {trials: [{data.frames: 4}], grid: {data.frames: [8]}}\n", "both set data.frames"),
    ("sweep: {trials: [{data.frames: 4}, {data.frames: 4}]}\n", "same trial twice"),
    ("sweep: {trials: [{data.views: 'cine:5ch'}]}\n", "unknown view"),
    ("sweep: {grid: {model.temperature: [0.05, -1]}}\n", "model.temperature"),
    ("sweep: {grid: {train.nope: [1]}}\n", "unknown setting 'train.nope'"),
])
def test_bad_sweeps_name_file_and_key(tmp_path, body, message):
    with pytest.raises(ConfigError) as e:
        expand_trials(*_cfg(tmp_path, body))
    assert message in str(e.value) and "exp.yaml" in str(e.value)


def test_max_concurrent_from_cluster():
    cfg = load_config(None, {"train.workers": 1, "train.cpus_per_worker": 0.9, "sweep.trial_cpus": 0.1})
    assert trial_resources(cfg) == {"CPU": pytest.approx(1.0)}
    assert max_concurrent(cfg, {"CPU": 6.0}, 11) == 2          # each trial leaves 2 CPUs for Ray Data
    assert max_concurrent(cfg, {"CPU": float(local_cpus(2))}, 11) == 1   # a 2-core machine: one trial
    assert max_concurrent(cfg, {"CPU": 2.0}, 11) == 1          # at least one
    assert max_concurrent(cfg, {"CPU": 16.0}, 3) == 3          # never more than the trials
    assert max_concurrent(cfg, {"CPU": 0.5}, 3) == 1           # at least one
    cfg = cfg.with_overrides({"train.workers": 2, "train.cpus_per_worker": 4, "train.use_gpu": True})
    assert max_concurrent(cfg, {"CPU": 64.0, "GPU": 8.0}, 20) == 4   # GPUs bind: 8 / 2
    assert max_concurrent(cfg, {"CPU": 24.0, "GPU": 8.0}, 20) == 2   # CPUs bind: 24 / (8.1 + 2)
    cfg = cfg.replace("sweep.max_concurrent", 3)
    assert max_concurrent(cfg, {"CPU": 64.0, "GPU": 8.0}, 20) == 3


def test_shipped_experiments():
    views = expand_trials(load_config(REPO / "experiments/views.yaml"), "views.yaml")
    assert len(views) == 10                                     # Table 4's ten trained rows
    names = [t.name.split(" | ")[0] for t in views]
    assert set(names) <= set(PAPER_NAMES)
    assert [(n, t.cfg["data"]["frames"]) for n, t in zip(names, views)] == paper.trained_rows()
    frames = expand_trials(load_config(REPO / "experiments/frames.yaml"), "frames.yaml")
    assert [t.cfg["data"]["frames"] for t in frames] == [1, 4, 8, 16, 32, 64]
    temps = expand_trials(load_config(REPO / "experiments/temperature.yaml"), "temperature.yaml")
    assert [t.cfg["model"]["temperature"] for t in temps] == [0.01, 0.02, 0.05, 0.1, 0.2]
    smoke = load_config(REPO / "experiments/smoke.yaml")
    assert len(expand_trials(smoke, "smoke.yaml")) >= 3 and smoke["train"]["epochs"] <= 2
    assert smoke["data"]["store"] != load_config(REPO / "experiments/base.yaml")["data"]["store"]


def test_seeds_repeat_every_row(tmp_path):
    cfg, src = _cfg(tmp_path, """
sweep:
  seeds: [0, 1, 2]
  trials: [{data.views: "cine:sax"}, {data.views: "lge:sax"}]
  grid: {data.frames: [4, 8]}
""")
    trials = expand_trials(cfg, src)
    assert len(trials) == 2 * 2 * 3
    assert [t.index for t in trials] == list(range(12))
    assert [t.row for t in trials] == [r for r in range(4) for _ in range(3)]       # a row's seeds together
    assert [t.cfg["train"]["seed"] for t in trials] == [0, 1, 2] * 4
    assert [t.overrides["train.seed"] for t in trials] == [0, 1, 2] * 4
    assert len({t.key for t in trials}) == 12 and len({t.name for t in trials}) == 12
    assert trials[1].name == "CINE_sax | 4 frames | τ=0.05 | seed 1"
    for row in range(4):                    # the seeds of a row differ in train.seed only
        same = [t for t in trials if t.row == row]
        assert len({t.cfg["data"]["views"] for t in same}) == 1 and len({t.cfg["data"]["frames"] for t in same}) == 1
        assert all(t.cfg.replace("train.seed", 0) == same[0].cfg for t in same)
    # no seeds: one trial per row with the config's train.seed, as before
    plain = expand_trials(*_cfg(tmp_path, "train: {seed: 7}\nsweep: {grid: {data.frames: [4, 8]}}\n"))
    assert [t.cfg["train"]["seed"] for t in plain] == [7, 7] and [t.row for t in plain] == [0, 1]
    assert "train.seed" not in plain[0].overrides


@pytest.mark.parametrize("body, message", [
    ("sweep: {seeds: 3}\n", "key 'sweep.seeds' expected a list"),
    ("sweep: {seeds: [0, x]}\n", "key 'sweep.seeds' expected a list of whole numbers >= 0"),
    ("sweep: {seeds: [0, 1.5]}\n", "key 'sweep.seeds' expected a list of whole numbers >= 0"),
    ("sweep: {seeds: [0, -1]}\n", "key 'sweep.seeds' expected a list of whole numbers >= 0"),
    ("sweep: {seeds: [true]}\n", "key 'sweep.seeds' expected a list of whole numbers >= 0"),
    ("sweep: {seeds: [0, 1, 0]}\n", "key 'sweep.seeds' expected distinct seeds, got [0, 1, 0]"),
])
def test_bad_seeds_are_one_line_naming_the_key(tmp_path, body, message):
    p = tmp_path / "exp.yaml"
    p.write_text(body)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert message in str(e.value) and str(p) in str(e.value) and "\n" not in str(e.value)


def test_bad_seeds_from_set_and_seed_set_twice(tmp_path):
    with pytest.raises(ConfigError, match=r"key 'sweep.seeds' expected distinct seeds"):
        load_config(None, ["sweep.seeds=[2, 2]"])
    for body in ("sweep: {seeds: [0, 1], grid: {train.seed: [3]}}\n",
                 "sweep: {seeds: [0, 1], trials: [{train.seed: 3}]}\n"):
        with pytest.raises(ConfigError) as e:
            expand_trials(*_cfg(tmp_path, body))
        assert "key 'sweep.seeds' and a trial or 'sweep.grid' both set train.seed" in str(e.value)
        assert "exp.yaml" in str(e.value) and "\n" not in str(e.value)


def test_views_seeds_is_table4_with_three_seeds():
    views = expand_trials(load_config(REPO / "experiments/views.yaml"), "views.yaml")
    seeded_cfg = load_config(REPO / "experiments/views_seeds.yaml")
    seeded = expand_trials(seeded_cfg, "views_seeds.yaml")
    assert load_config(REPO / "experiments/views.yaml")["sweep"]["seeds"] == []     # the default stays one seed
    assert {t.cfg["train"]["seed"] for t in views} == {0}
    assert seeded_cfg["sweep"]["seeds"] == [0, 1, 2] and seeded_cfg["sweep"]["experiment"] == "views_seeds"
    assert len(seeded) == 3 * len(views)
    for i, v in enumerate(views):
        same = seeded[3 * i: 3 * i + 3]
        assert [t.cfg["train"]["seed"] for t in same] == [0, 1, 2] and {t.row for t in same} == {i}
        assert all(t.name.rsplit(" | ", 1)[0] == v.name.rsplit(" | ", 1)[0] for t in same)
        assert all(t.cfg["data"] == v.cfg["data"] for t in same)       # same cohort, same split
    assert seeded_cfg["sweep"]["baselines"] == load_config(REPO / "experiments/views.yaml")["sweep"]["baselines"]
