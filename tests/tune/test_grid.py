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
    cfg = load_config(None)
    cfg["train"].update(workers=1, cpus_per_worker=0.9)
    cfg["sweep"]["trial_cpus"] = 0.1
    assert trial_resources(cfg) == {"CPU": pytest.approx(1.0)}
    assert max_concurrent(cfg, {"CPU": 6.0}, 11) == 2          # each trial leaves 2 CPUs for Ray Data
    assert max_concurrent(cfg, {"CPU": float(local_cpus(2))}, 11) == 1   # a 2-core machine: one trial
    assert max_concurrent(cfg, {"CPU": 2.0}, 11) == 1          # at least one
    assert max_concurrent(cfg, {"CPU": 16.0}, 3) == 3          # never more than the trials
    assert max_concurrent(cfg, {"CPU": 0.5}, 3) == 1           # at least one
    cfg["train"].update(workers=2, cpus_per_worker=4, use_gpu=True)
    assert max_concurrent(cfg, {"CPU": 64.0, "GPU": 8.0}, 20) == 4   # GPUs bind: 8 / 2
    assert max_concurrent(cfg, {"CPU": 24.0, "GPU": 8.0}, 20) == 2   # CPUs bind: 24 / (8.1 + 2)
    cfg["sweep"]["max_concurrent"] = 3
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
