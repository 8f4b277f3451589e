from pathlib import Path

import pytest

from cmr_ray.config import ConfigError, flatten, load_config

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted((ROOT / "experiments").glob("*.yaml"))


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_every_shipped_experiment_loads(path):
    cfg = load_config(path)
    assert set(cfg) == {"data", "model", "train", "eval", "sweep"}
    assert cfg["sweep"]["experiment"]


def write(tmp_path, text, name="exp.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def one_line(excinfo):
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


def test_unknown_key_names_file_and_key(tmp_path):
    p = write(tmp_path, "train:\n  epoks: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = one_line(e)
    assert str(p) in msg and "train.epoks" in msg and "epochs" in msg


def test_unknown_section(tmp_path):
    p = write(tmp_path, "trian:\n  epochs: 3\n")
    with pytest.raises(ConfigError, match="unknown key 'trian'"):
        load_config(p)


@pytest.mark.parametrize(
    "text, key, expected",
    [
        ("train:\n  epochs: three\n", "train.epochs", "an integer"),
        ("train:\n  epochs: 0\n", "train.epochs", ">= 1"),
        ("model:\n  temperature: hot\n", "model.temperature", "a number"),
        ("model:\n  learn_temperature: 1\n", "model.learn_temperature", "true or false"),
        ("data:\n  frames: 65\n", "data.frames", "<= 64"),
        ("model:\n  video: resnet\n", "model.video", "one of"),
        ("data:\n  views: 'cine:sax+5ch'\n", "data.views", "unknown view '5ch'"),
        ("data:\n  views: 'flair:sax'\n", "data.views", "unknown sequence 'flair'"),
    ],
)
def test_bad_values_name_key_and_expectation(tmp_path, text, key, expected):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = one_line(e)
    assert str(p) in msg and key in msg and expected in msg


def test_missing_file_and_missing_base(tmp_path):
    with pytest.raises(ConfigError, match="cannot read file"):
        load_config(tmp_path / "nope.yaml")
    p = write(tmp_path, "base: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="'base' names 'nowhere.yaml'"):
        load_config(p)


def test_base_chain_and_overrides(tmp_path):
    write(tmp_path, "train:\n  epochs: 7\n  lr: 0.01\n", "b.yaml")
    p = write(tmp_path, "base: b.yaml\ntrain:\n  lr: 0.002\n")
    cfg = load_config(p, ["train.batch_size=8", "data.views=cine:sax"])
    assert cfg["train"]["epochs"] == 7 and cfg["train"]["lr"] == 0.002
    assert cfg["train"]["batch_size"] == 8 and cfg["data"]["views"] == "cine:sax"
    assert cfg["sweep"]["experiment"] == "exp"
    with pytest.raises(ConfigError, match="--set: unknown key 'train.bogus'"):
        load_config(p, ["train.bogus=1"])


def test_sweep_grid_and_trials_are_validated(tmp_path):
    p = write(tmp_path, "sweep:\n  grid:\n    model.temperature: [0.05, x]\n")
    with pytest.raises(ConfigError, match="sweep.grid.model.temperature"):
        load_config(p)
    p = write(tmp_path, "sweep:\n  trials:\n    - {data.views: 'cine:sax+9ch'}\n")
    with pytest.raises(ConfigError, match=r"sweep.trials\[0\].data.views.*unknown view '9ch'"):
        load_config(p)
    p = write(tmp_path, "sweep:\n  grid:\n    model.nope: [1]\n")
    with pytest.raises(ConfigError, match="unknown setting 'model.nope'"):
        load_config(p)


def test_flatten_gives_stable_dotted_keys():
    flat = flatten(load_config())
    assert flat["data.views"].startswith("cine:sax")
    assert flat["model.temperature"] == 0.05
    assert all(k.count(".") == 1 for k in flat)


def test_yaml_is_loaded_safely(tmp_path):
    p = write(tmp_path, "train: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_paper_preset_is_one_override_and_keeps_swept_settings(tmp_path):
    p = write(tmp_path, "data:\n  views: 'cine:sax'\n  frames: 16\nmodel:\n  temperature: 0.1\n")
    small = load_config(p)
    paper = load_config(p, ["preset=paper"])
    assert paper["model"]["hidden_size"] == 768 and paper["data"]["image_size"] == 224
    assert paper["train"]["use_gpu"] is True and small["train"]["use_gpu"] is False
    for key in (("data", "views"), ("data", "frames"), ("model", "temperature")):
        assert paper[key[0]][key[1]] == small[key[0]][key[1]]
    with pytest.raises(ConfigError, match="'preset' expected one of paper, small"):
        load_config(p, ["preset=huge"])
    # --set after the preset still wins
    assert load_config(p, ["preset=paper", "train.workers=8"])["train"]["workers"] == 8


# ---------------------------------------------------------------- names owned by the code (issue 16, item 7)

@pytest.mark.parametrize(
    "text, key, expected",
    [
        ("sweep:\n  metric: val/rsun\n", "sweep.metric", "val/rsum"),          # a typo: no trial logs it
        ("sweep:\n  metric: test/rsum\n", "sweep.metric", "val/rsum"),         # final, not per epoch
        ("sweep:\n  mode: maximise\n", "sweep.mode", "one of auto, max, min"),
        ("eval:\n  probes: [hcm, hmc]\n", "eval.probes", "acdc"),
        ("eval:\n  baselines: [zeroshot, moco]\n", "eval.baselines", "simclr"),
        ("eval:\n  few_shot: [0, 4]\n", "eval.few_shot", "whole numbers >= 1"),
        ("eval:\n  few_shot: [2.5]\n", "eval.few_shot", "whole numbers >= 1"),
        ("sweep:\n  baselines: [simclr, byol]\n", "sweep.baselines", "zeroshot"),
        ("sweep:\n  grid:\n    eval.probes: [[hcm], [lvnc]]\n", "sweep.grid.eval.probes", "acdc"),
        ("sweep:\n  trials:\n    - {eval.few_shot: [-1]}\n", "sweep.trials[0].eval.few_shot", ">= 1"),
    ],
)
def test_names_the_code_does_not_know_are_config_errors(tmp_path, text, key, expected):
    """Each of these passed `load_config` (and `cmr-ray validate`) before and failed only after
    a trial had trained, or (sweep.metric) silently evaluated the last checkpoint."""
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = one_line(e)
    assert str(p) in msg and f"'{key}'" in msg and expected in msg, msg


def test_sweep_metric_from_set_names_set(tmp_path):
    with pytest.raises(ConfigError, match="--set: key 'sweep.metric'"):
        load_config(None, ["sweep.metric=val/rsum5"])


def test_sweep_metrics_are_what_validation_reports():
    """The metric list comes from the retrieval code, not a copy of its keys."""
    from cmr_ray.config import sweep_metrics
    from cmr_ray.eval.retrieval import retrieval_metrics

    names = sweep_metrics()
    assert {f"val/{k}" for k in retrieval_metrics([[1.0, 0.0], [0.0, 1.0]])} <= set(names)
    assert {"val/rsum", "val/loss", "train/loss"} <= set(names)
    for m in names:  # each one is accepted
        assert load_config(None, [f"sweep.metric={m}"])["sweep"]["metric"] == m


@pytest.mark.parametrize("metric, mode, want", [
    ("val/rsum", "auto", "max"), ("val/t2v_r5", "auto", "max"), ("val/video_spread", "auto", "max"),
    ("val/loss", "auto", "min"), ("train/loss_ratio", "auto", "min"), ("val/v2t_medr", "auto", "min"),
    ("val/loss", "max", "max"), ("val/rsum", "min", "min"),
])
def test_sweep_mode_is_derived_from_the_metric_unless_set(metric, mode, want):
    from cmr_ray.config import sweep_mode

    cfg = load_config(None, [f"sweep.metric={metric}", f"sweep.mode={mode}"])
    assert sweep_mode(cfg) == want


def test_asha_gets_the_sweeps_mode():
    """ASHA's mode was hard-coded 'max': a sweep on val/loss stopped its best trials."""
    pytest.importorskip("ray.tune")
    from cmr_ray.tune.sweep import _scheduler

    for metric, want in (("val/loss", "min"), ("val/rsum", "max")):
        sched = _scheduler(load_config(None, ["sweep.scheduler=asha", f"sweep.metric={metric}"]))
        assert (sched._metric, sched._mode) == (metric, want)
