"""Experiment configuration: one typed, frozen object per YAML section, validated on load.

An experiment file is a small YAML over a base::

    base: base.yaml            # optional, relative to this file; bases may chain
    preset: paper              # optional: cmr_ray/presets/NAME.yaml over the file (sizes, resources)
    data:  {views: "cine:sax", frames: 8}
    model: {temperature: 0.05}
    train: {lr: 1e-3}          # numbers as people type them (YAML 1.1 reads 1e-3 as a string)
    sweep: {trials: [{data.views: "cine:sax"}, {data.views: "cine:sax+4ch"}]}

Reading it::

    cfg = load_config("experiments/views.yaml", ["train.epochs=3"])   # --set overrides
    cfg.train.epochs                       # 3, an int: no casting at the call site
    cfg.data.views                         # attribute access is the way to read
    cfg["train"]["epochs"]                 # mapping access also works (read-only)
    cfg2 = cfg.replace("data.store", "/abs/store")   # a changed, validated copy
    cfg3 = cfg.with_overrides({"data.frames": 16, "model.temperature": 0.1})
    flatten(cfg)                           # {'data.views': ..., ...}: the MLflow params
    to_yaml(cfg)                           # the YAML saved with runs and checkpoints

A config never changes in place (`FrozenConfigError`).  Every problem in a file (unknown
keys, bad values, bad sweep trials) is collected: `ConfigError` has one line per problem,
each naming the file, the key and what was expected.  `json_schema()` (`cmr-ray validate
--schema`) is the JSON Schema of an experiment file.  The sections and what each key means:
`cmr_ray/config/schema.py`.
"""
from cmr_ray.config.frozen import FrozenConfigError, FrozenDict, FrozenList, thaw
from cmr_ray.config.jsonschema import json_schema
from cmr_ray.config.load import (
    PRESET_DIR,
    ConfigError,
    apply_overrides,
    defaults,
    flatten,
    from_dict,
    load_config,
    load_saved_config,
    parse_override,
    presets,
    to_yaml,
)
from cmr_ray.config.schema import (
    EPOCH_SCORES,
    SCHEMA,
    SECTIONS,
    Config,
    DataConfig,
    EvalConfig,
    Field,
    ModelConfig,
    SweepConfig,
    TrainConfig,
    metric_mode,
    sweep_metrics,
    sweep_mode,
)

__all__ = [
    "Config", "ConfigError", "DataConfig", "EPOCH_SCORES", "EvalConfig", "Field", "FrozenConfigError", "FrozenDict",
    "FrozenList", "ModelConfig", "PRESET_DIR", "SCHEMA", "SECTIONS", "SweepConfig", "TrainConfig", "apply_overrides",
    "defaults", "flatten", "from_dict", "json_schema", "load_config", "load_saved_config", "metric_mode",
    "parse_override", "presets", "sweep_metrics", "sweep_mode", "thaw", "to_yaml",
]
