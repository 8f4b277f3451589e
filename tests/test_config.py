from pathlib import Path

import pytest

from cmr_ray.config import ConfigError, flatten, from_dict, load_config

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


def test_a_mapping_in_a_file_replaces_its_base_mapping_whole(tmp_path):
    """Sections merge key by key, but a key whose value is a mapping is one value: a file that
    says `eval.transfer: {}` over a base with transfer sets has none (views_per_view.yaml and
    views_meanpool.yaml rely on it), and a baseline_trial is not patched key by key."""
    write(tmp_path, "eval:\n  transfer: {acdc: synthetic}\n  external: synthetic\n"
                    "sweep:\n  baseline_trial: {data.views: 'cine:sax', data.frames: 16}\n"
                    "model:\n  temperature: 0.1\n", "b.yaml")
    p = write(tmp_path, "base: b.yaml\neval:\n  transfer: {}\nsweep:\n  baseline_trial: {data.frames: 8}\n"
                        "model:\n  pool: mean\n")
    cfg = load_config(p)
    assert dict(cfg["eval"]["transfer"]) == {}
    assert cfg["eval"]["external"] == "synthetic"
    assert dict(cfg["sweep"]["baseline_trial"]) == {"data.frames": 8}
    assert cfg["model"]["temperature"] == 0.1 and cfg["model"]["pool"] == "mean"
    for name in ("views_per_view.yaml", "views_meanpool.yaml", "views_seeds_3rows.yaml"):
        assert dict(load_config(ROOT / "experiments" / name)["eval"]["transfer"]) == {}, name


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


def test_the_whole_run_preset_sets_the_size_keys():
    """One name per concept: `preset` is the whole-run preset (cmr_ray/presets/); it sets the
    tower's `model.size` and the synthetic cohort's `data.synth_protocol`."""
    small, paper = load_config(), load_config(None, ["preset=paper"])
    assert (small.model.size, small.data.synth_protocol) == ("custom", "small")
    assert (paper.model.size, paper.data.synth_protocol) == ("vit_b16", "paper")
    assert not any("preset" in k for k in flatten(paper))  # the MLflow params


@pytest.mark.parametrize(
    "text, old, new",
    [
        ("model:\n  preset: paper\n", "model.preset", "'model.size' (small is now custom, paper is now vit_b16)"),
        ("data:\n  synth_preset: paper\n", "data.synth_preset", "'data.synth_protocol'"),
    ],
)
def test_a_renamed_key_in_a_file_is_refused_with_its_new_name(tmp_path, text, old, new):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert one_line(e) == f"{p}: key '{old}' was renamed to {new}"


def test_renamed_keys_are_refused_wherever_they_are_named(tmp_path):
    from cmr_ray.config import apply_overrides

    p = write(tmp_path, "model:\n  preset: small\ndata:\n  synth_preset: small\n"
                        "sweep:\n  grid:\n    model.preset: [small, paper]\n  trials: [{data.synth_preset: paper}]\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, ["model.preset=paper", "data.synth_preset=paper"])
    assert e.value.problems == [
        f"{p}: key 'model.preset' was renamed to 'model.size' (small is now custom, paper is now vit_b16)",
        f"{p}: key 'data.synth_preset' was renamed to 'data.synth_protocol'",
        "--set: key 'model.preset' was renamed to 'model.size' (small is now custom, paper is now vit_b16)",
        "--set: key 'data.synth_preset' was renamed to 'data.synth_protocol'",
        f"{p}: key 'sweep.grid' names 'model.preset', which was renamed to 'model.size' (small is now custom, "
        "paper is now vit_b16)",
        f"{p}: key 'sweep.trials[0]' names 'data.synth_preset', which was renamed to 'data.synth_protocol'",
    ]
    with pytest.raises(ConfigError, match="^config: key 'model.preset' was renamed to 'model.size'"):
        load_config().with_overrides({"model.preset": "paper"})
    with pytest.raises(ConfigError, match="^config: key 'data.synth_preset' was renamed to 'data.synth_protocol'$"):
        from_dict({"data": {"synth_preset": "small"}})
    assert apply_overrides(load_config(), {"model.size": "vit_b16"}).model.size == "vit_b16"


def test_a_config_saved_before_the_rename_reads_with_the_new_names(tmp_path, capsys):
    """A checkpoint's or model's config.yaml is the platform's record of a run: one saved with
    the old names is read with the new ones, and says so; an experiment file is refused."""
    import yaml

    from cmr_ray.config import defaults, load_saved_config, to_yaml

    old = defaults()
    del old["model"]["size"], old["data"]["synth_protocol"]
    old["model"]["preset"], old["data"]["synth_preset"], old["train"]["epochs"] = "paper", "paper", 3
    p = write(tmp_path, yaml.safe_dump(old, sort_keys=False), name="config.yaml")
    cfg = load_saved_config(p)
    assert (cfg.model.size, cfg.data.synth_protocol, cfg.train.epochs) == ("vit_b16", "paper", 3)
    note = capsys.readouterr().err
    assert note == (f"{p}: saved before keys were renamed; read model.preset: paper as model.size: vit_b16, "
                    "data.synth_preset: paper as data.synth_protocol: paper\n")
    with pytest.raises(ConfigError, match="'model.preset' was renamed to 'model.size'"):
        load_config(p)
    now = write(tmp_path, to_yaml(cfg), name="now.yaml")
    assert load_saved_config(now) == cfg and capsys.readouterr().err == ""


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


# ---------------------------------------------------------------- one typed, frozen config (issue 17)

def test_values_are_typed_and_read_as_attributes():
    from cmr_ray.config import Config, TrainConfig

    cfg = load_config(None, ["train.epochs=3", "train.cpus_per_worker=2"])
    assert isinstance(cfg, Config) and isinstance(cfg.train, TrainConfig)
    assert cfg.train.epochs == 3 and type(cfg.train.epochs) is int
    assert type(cfg.train.cpus_per_worker) is float and type(cfg.train.use_gpu) is bool
    assert type(cfg.model.temperature) is float and type(cfg.data.views) is str
    assert cfg.train.epochs is cfg["train"]["epochs"] and cfg.train.get("epochs") == 3
    assert dict(cfg.train)["epochs"] == 3 and set(cfg) == {"data", "model", "train", "eval", "sweep"}


@pytest.mark.parametrize("how", ["set", "yaml"])
def test_numbers_as_people_type_them(tmp_path, how):
    """YAML 1.1 (PyYAML) reads 1e-3 as the string '1e-3'; a float key takes it, an int key 1e3."""
    values = {"train.lr": "1e-3", "model.temperature": "5E-2", "train.epochs": "1e1", "data.synth_studies": "1.2e3"}
    if how == "set":
        cfg = load_config(None, [f"{k}={v}" for k, v in values.items()])
    else:
        p = write(tmp_path, "train:\n  lr: 1e-3\n  epochs: 1e1\nmodel:\n  temperature: 5E-2\ndata:\n  synth_studies: 1.2e3\n")
        cfg = load_config(p)
    assert cfg.train.lr == 0.001 and type(cfg.train.lr) is float
    assert cfg.model.temperature == 0.05
    assert cfg.train.epochs == 10 and type(cfg.train.epochs) is int
    assert cfg.data.synth_studies == 1200 and type(cfg.data.synth_studies) is int
    with pytest.raises(ConfigError, match="'train.epochs' expected an integer"):
        load_config(None, ["train.epochs=2.5e0"])
    with pytest.raises(ConfigError, match="'train.lr' expected a number"):
        load_config(None, ["train.lr=1e-3x"])


def test_an_empty_set_value_is_the_empty_string():
    """`--set sweep.register_model=` turns registration off, as a user means; YAML alone
    would read null and the str key would refuse it.  `=null` is still null."""
    cfg = load_config(None, ["sweep.register_model=", "eval.external= "])
    assert cfg.sweep.register_model == "" and cfg.eval.external == ""
    with pytest.raises(ConfigError, match="'sweep.register_model' expected a str value \\(not null\\)"):
        load_config(None, ["sweep.register_model=null"])
    with pytest.raises(ConfigError, match="'train.lr' expected a number"):
        load_config(None, ["train.lr="])


def test_sweep_trials_take_typed_numbers_too(tmp_path):
    from cmr_ray.tune.grid import expand_trials

    p = write(tmp_path, "sweep:\n  grid:\n    train.lr: [1e-3, 1e-4]\n")
    trials = expand_trials(load_config(p), src=str(p))
    assert [t.cfg.train.lr for t in trials] == [1e-3, 1e-4]


def test_every_mistake_in_a_file_is_one_line(tmp_path):
    p = write(tmp_path, "train:\n  epoks: 3\n  lr: fast\nmodel:\n  video: resnet\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    lines = str(e.value).splitlines()
    assert len(lines) == 3 and e.value.problems == lines
    assert all(line.startswith(f"{p}: ") for line in lines)
    assert "'train.epoks'" in lines[0] and "'train.lr'" in lines[1] and "'model.video'" in lines[2]


def test_mistakes_in_base_file_and_set_are_all_reported(tmp_path):
    write(tmp_path, "data:\n  frames: 99\n", "b.yaml")
    p = write(tmp_path, "base: b.yaml\nsweep:\n  trials:\n    - {data.views: 'cine:sax+9ch'}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, ["train.bogus=1", "train.epochs=zero"])
    msg = str(e.value)
    assert len(e.value.problems) == 4, msg
    for key in ("data.frames", "sweep.trials[0].data.views", "train.bogus", "train.epochs"):
        assert key in msg


def test_cli_validate_prints_one_line_per_mistake(tmp_path):
    from click.testing import CliRunner

    from cmr_ray.cli import main

    p = write(tmp_path, "train:\n  epochs: 0\n  batch_size: one\ndata:\n  frames: 100\n")
    res = CliRunner().invoke(main, ["validate", str(p)])
    assert res.exit_code == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 3 and all(ln.startswith(f"error {p}: key '") for ln in lines), res.stderr


def test_config_is_frozen_and_changes_make_copies():
    import copy
    import pickle

    from cmr_ray.config import FrozenConfigError

    cfg = load_config()
    for change in (lambda: setattr(cfg.train, "epochs", 3), lambda: cfg["train"].__setitem__("epochs", 3),
                   lambda: setattr(cfg, "train", None), lambda: cfg.eval.probes.append("x"),
                   lambda: cfg.eval.transfer.update(a="b"), lambda: cfg.sweep.grid.__setitem__("k", [1])):
        with pytest.raises(FrozenConfigError, match=r"frozen.*cfg.replace"):
            change()
    with pytest.raises(TypeError):  # item assignment: a TypeError, like any read-only mapping
        cfg["train"]["epochs"] = 3
    new = cfg.replace("train.epochs", 3)
    assert new.train.epochs == 3 and cfg.train.epochs == 20
    assert cfg.with_overrides({"data.frames": 16, "train.lr": "1e-3"}).train.lr == 0.001
    with pytest.raises(ConfigError, match="'train.epochs' expected a value >= 1"):
        cfg.replace("train.epochs", 0)
    assert copy.deepcopy(cfg) == cfg and pickle.loads(pickle.dumps(new)) == new
    assert pickle.loads(pickle.dumps(cfg)).eval.probes == cfg.eval.probes


def test_config_dumps_as_plain_yaml_and_json_and_loads_back(tmp_path):
    import json

    import yaml

    from cmr_ray.config import to_yaml

    cfg = load_config(None, ["train.lr=1e-3", "sweep.trials=[{data.views: 'cine:sax'}]", "sweep.experiment=config"])
    text = to_yaml(cfg)
    assert "!!python" not in text and yaml.safe_load(text) == cfg.to_dict()
    assert yaml.safe_load(yaml.safe_dump(cfg)) == cfg.to_dict()
    assert json.loads(json.dumps(cfg.to_dict())) == cfg.to_dict()
    p = write(tmp_path, text, "config.yaml")
    assert load_config(p) == cfg
    assert cfg.sweep.trials == [{"data.views": "cine:sax"}]


def test_old_checkpoint_config_still_loads(tmp_path):
    """A checkpoint written before the typed config: config.yaml is a plain YAML dump of nested dicts."""
    import torch
    import yaml

    from cmr_ray.config import defaults
    from cmr_ray.train.checkpoint import read_state

    old = defaults()
    old["train"]["epochs"], old["model"]["temperature"] = 3, 0.1
    old["sweep"]["experiment"] = "smoke"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    torch.save({"model": {}, "epoch": 1}, tmp_path / "model.pt")
    state, cfg = read_state(tmp_path)
    assert state["epoch"] == 1
    assert cfg.train.epochs == 3 and cfg.model.temperature == 0.1 and cfg.to_dict() == old
    # ... and one saved before model.preset / data.synth_preset were renamed
    before = yaml.safe_dump(old, sort_keys=False).replace("  size: custom", "  preset: small")
    (tmp_path / "config.yaml").write_text(before.replace("  synth_protocol: small", "  synth_preset: small"))
    assert "preset: small" in (tmp_path / "config.yaml").read_text()
    assert read_state(tmp_path)[1].to_dict() == old


def test_json_schema_lists_every_section_and_key():
    import json

    from cmr_ray.config import SCHEMA, json_schema

    schema = json.loads(json.dumps(json_schema()))
    assert schema["$schema"].startswith("https://json-schema.org/") and schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert {"base", "preset", *SCHEMA} == set(schema["properties"])
    for section, fields in SCHEMA.items():
        body = schema["properties"][section]
        assert body["type"] == "object" and body["additionalProperties"] is False and body["description"]
        assert set(body["properties"]) == set(fields)
        for key, f in fields.items():
            prop = body["properties"][key]
            assert prop["description"] == f.help and prop["default"] == f.default and "type" in prop
    train = schema["properties"]["train"]["properties"]
    assert train["epochs"]["type"] == "integer" and train["epochs"]["minimum"] == 1
    assert train["lr"]["type"] == "number" and train["use_gpu"]["type"] == "boolean"
    assert schema["properties"]["model"]["properties"]["video"]["enum"] == ["timesformer", "framemean"]
    assert schema["properties"]["model"]["properties"]["size"]["enum"] == ["custom", "vit_b16"]
    assert schema["properties"]["data"]["properties"]["synth_protocol"]["enum"] == ["small", "paper"]
    assert "preset" not in schema["properties"]["model"]["properties"]
    assert "synth_preset" not in schema["properties"]["data"]["properties"]


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_shipped_experiments_validate_against_the_json_schema(path):
    import yaml

    from cmr_ray.config import json_schema

    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(json_schema())
    jsonschema.validate(yaml.safe_load(path.read_text()), json_schema())


def test_json_schema_refuses_what_load_config_refuses():
    from cmr_ray.config import json_schema

    jsonschema = pytest.importorskip("jsonschema")
    v = jsonschema.Draft202012Validator(json_schema())
    assert not list(v.iter_errors({"train": {"epochs": 1}, "data": {"views": "cine:sax"}}))
    assert len(list(v.iter_errors({"train": {"epoks": 1, "epochs": 0}, "model": {"video": "resnet"}}))) == 3
    assert len(list(v.iter_errors({"model": {"preset": "paper"}, "data": {"synth_preset": "paper"}}))) == 2


def test_cli_validate_schema_prints_json():
    import json

    from click.testing import CliRunner

    from cmr_ray.cli import main

    res = CliRunner().invoke(main, ["validate", "--schema"])
    assert res.exit_code == 0, res.output
    assert set(json.loads(res.stdout)["properties"]) >= {"data", "model", "train", "eval", "sweep"}


def test_config_import_is_light():
    import subprocess
    import sys

    code = ("import sys, cmr_ray.config as c; c.load_config(None, ['train.epochs=2']); "
            "print(sorted(m for m in ('torch', 'ray', 'mlflow', 'pydantic') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_train_and_sweep_refuse_a_file_with_every_mistake_on_its_own_line(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from cmr_ray.cli import main

    p = write(tmp_path, "train:\n  epochs: 0\ndata:\n  frames: 100\n")
    monkeypatch.chdir(tmp_path)
    for command in ("train", "sweep"):
        res = CliRunner().invoke(main, [command, p.name])
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert res.exit_code == 2 and len(lines) == 2, res.stderr
        assert all(ln.startswith(f"Error: {p.name}: key '") for ln in lines), res.stderr
