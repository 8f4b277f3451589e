"""Experiment configuration: one YAML schema, validated on load.

An experiment file is a small YAML over a base::

    base: base.yaml            # optional, relative to this file; bases may chain
    preset: paper              # optional: cmr_ray/presets/NAME.yaml over the file (sizes, resources)
    data:  {views: "cine:sax", frames: 8}
    model: {temperature: 0.05}
    sweep: {trials: [{data.views: "cine:sax"}, {data.views: "cine:sax+4ch"}]}

`load_config(path, overrides)` merges the chain of bases, applies `--set key=value`
overrides (dotted keys), and validates every key and value.  A problem raises
`ConfigError` whose message is one line naming the file, the key and what was expected.
`flatten(cfg)` gives the stable dotted keys used as MLflow params.
"""
from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path
from typing import Any

import yaml

from cmr_ray.model.presets import DEFAULT_TEXT_MODEL
from cmr_ray.views import ViewComboError, parse_combo

PRESET_DIR = Path(__file__).parent / "presets"


class ConfigError(ValueError):
    """A config problem, stated in one line: file, key, what was expected."""


@dataclasses.dataclass(frozen=True)
class Field:
    kind: str  # str, int, float, bool, list, dict, path, combo, choice
    default: Any
    help: str
    choices: tuple = ()
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    check: Any = None  # value -> None, or what was expected instead (a kind's own checks first)


def _f(kind, default, help, **kw):
    return Field(kind, default, help, **kw)


# What the training loop (`cmr_ray.train.loop`) reports every epoch beside the validation
# retrieval metrics, and a sweep may rank checkpoints and trials by.
EPOCH_SCORES = ("val/loss", "val/video_spread", "train/loss", "train/loss_ratio")


def sweep_metrics() -> tuple[str, ...]:
    """The per-epoch metrics every trial logs with its checkpoints, so `sweep.metric` may name
    them: `val/` + each key of `cmr_ray.eval.retrieval.metrics_from_ranks` (val/rsum,
    val/t2v_r5, ...), and `EPOCH_SCORES`."""
    from cmr_ray.eval.retrieval import metrics_from_ranks

    return tuple(f"val/{k}" for k in metrics_from_ranks([1], [1])) + EPOCH_SCORES


def metric_mode(metric: str) -> str:
    """'min' for a metric that is better low (a loss, a median or mean rank), else 'max'."""
    return "min" if metric.endswith(("loss", "loss_ratio", "medr", "meanr")) else "max"


def sweep_mode(cfg: dict) -> str:
    """`sweep.mode`, or when it is 'auto' the mode that suits `sweep.metric` (`metric_mode`)."""
    mode = cfg["sweep"].get("mode", "auto")
    return metric_mode(cfg["sweep"]["metric"]) if mode == "auto" else mode


def _known(what: str) -> tuple:
    """Names owned by the code that uses them, looked up when a value is checked: probe
    tasks (`cmr_ray.eval.probe.TASKS`), baselines (`cmr_ray.eval.evaluation.BASELINES`),
    per-epoch metrics (`sweep_metrics`)."""
    if what == "probes":
        from cmr_ray.eval.probe import TASKS

        return TASKS
    if what == "baselines":
        from cmr_ray.eval.evaluation import BASELINES

        return BASELINES
    return sweep_metrics()


def _transfer_problem(v) -> str | None:
    """`eval.transfer`'s check, owned by `cmr_ray.eval.transfer.config_problem`."""
    from cmr_ray.eval.transfer import config_problem

    return config_problem(v)


def _external_problem(v) -> str | None:
    """`eval.external`'s check, owned by `cmr_ray.eval.external.config_problem`."""
    from cmr_ray.eval.external import config_problem

    return config_problem(v)


SCHEMA: dict[str, dict[str, Field]] = {
    "data": {
        "source": _f("choice", "synthetic", "'synthetic' (embedded default cohort) or 'dicom' (dicom_dir + reports)", choices=("synthetic", "dicom")),
        "dicom_dir": _f("path", None, "directory of DICOM studies (source: dicom)", nullable=True),
        "reports": _f("path", None, "reports CSV (accession_number, report_text)", nullable=True),
        "labels": _f("path", None, "labels CSV (optional)", nullable=True),
        "store": _f("path", "cmr_store/synthetic-small", "clip store directory or s3:// URI"),
        "synth_studies": _f("int", 800, "studies in the synthetic cohort", min=10),
        "synth_seed": _f("int", 0, "seed of the synthetic cohort", min=0),
        "synth_preset": _f("choice", "small", "synthetic cohort preset", choices=("small", "paper")),
        "image_size": _f("int", 64, "clip frame size in pixels (square, aspect kept by padding)", min=16, max=512),
        "views": _f("combo", "cine:sax+2ch+3ch+4ch|lge:sax+2ch+3ch+4ch", "view combo, e.g. cine:sax+4ch|lge:sax"),
        "frames": _f("int", 8, "frames sampled from the clip", min=1, max=64),
        "val_fraction": _f("float", 0.1, "fraction of patients in the validation split", min=0.0, max=0.5),
        "test_fraction": _f("float", 0.25, "fraction of patients in the test split", min=0.0, max=0.5),
        "clip_percentiles": _f("list", [1.0, 99.0], "intensity percentiles clipped per series"),
    },
    "model": {
        "video": _f("choice", "timesformer", "video tower", choices=("timesformer", "framemean")),
        "preset": _f("choice", "small", "video tower size preset", choices=("small", "paper")),
        "hidden_size": _f("int", 128, "video tower width", min=8),
        "layers": _f("int", 2, "video tower depth", min=1),
        "heads": _f("int", 4, "attention heads", min=1),
        "patch_size": _f("int", 16, "patch size in pixels", min=2),
        "input_norm": _f("choice", "clip", "standardise each clip to zero mean, unit variance before the video tower ('none': raw [0, 1] grey levels)", choices=("clip", "none")),
        "pool": _f("choice", "cls", "video pooling: the CLS token or the mean of patch tokens", choices=("cls", "mean")),
        "text_model": _f("str", DEFAULT_TEXT_MODEL, f"Hugging Face encoder name or local path; {DEFAULT_TEXT_MODEL!r} is the packaged offline MiniLM"),
        "text_max_length": _f("int", 128, "token limit (capped at the model's own)", min=8),
        "embed_dim": _f("int", 128, "shared embedding dimension", min=8),
        "temperature": _f("float", 0.05, "InfoNCE temperature (initial value when learnable)", min=0.001, max=10.0),
        "learn_temperature": _f("bool", False, "learn the logit scale (clamped at 100)"),
        "freeze_text": _f("bool", True, "freeze the text encoder"),
        "freeze_video": _f("bool", False, "freeze the video encoder"),
        "grad_checkpointing": _f("bool", False, "gradient checkpointing in the video tower"),
        "video_init": _f("str", "", "video tower start: a Hugging Face name (local cache only) or local directory of a ViT or TimeSformer checkpoint of the tower's width, depth, heads and patch size; '' for random weights"),
        "head": _f("choice", "linear", "projection heads: 'linear' (no bias) or 'relu_linear' (ReLU then Linear with bias, the authors' code)", choices=("linear", "relu_linear")),
    },
    "train": {
        "epochs": _f("int", 20, "training epochs (when train.steps is 0)", min=1),
        "steps": _f("int", 0, "optimizer steps in all (0: train.epochs full epochs); the last epoch stops when they are spent", min=0),
        "batch_size": _f("int", 64, "batch per worker", min=2),
        "accum_steps": _f("int", 1, "contrastive gradient accumulation steps (cached embeddings)", min=1),
        "lr": _f("float", 5e-4, "AdamW learning rate", min=0.0),
        "text_lr": _f("float", 0.0, "AdamW learning rate of the text encoder when it trains (model.freeze_text false); 0: train.lr", min=0.0),
        "weight_decay": _f("float", 0.05, "AdamW weight decay", min=0.0),
        "warmup_fraction": _f("float", 0.1, "fraction of steps in linear warm-up", min=0.0, max=1.0),
        "workers": _f("int", 1, "Ray Train workers", min=1),
        "cpus_per_worker": _f("float", 1.0, "CPUs per Ray Train worker", min=0.01),
        "use_gpu": _f("bool", False, "one GPU per worker; bf16 autocast"),
        "seed": _f("int", 0, "training seed", min=0),
        "cache_split_mb": _f("float", 2048.0, "keep a split's pruned columns in Ray's object store when they fit (MB; 0: read every epoch)", min=0.0),
        "torch_threads": _f("int", 0, "torch intra-op threads per worker (0: Ray's default)", min=0),
        "mask_duplicate_impressions": _f("bool", True, "do not count identical impressions as negatives"),
        "augment": _f("bool", True, "anatomically sane augmentation (no left-right flip)"),
        "hflip": _f("bool", False, "allow left-right flip (mirrors the heart; off by default)"),
        "augment_on": _f("choice", "cpu", "where training augmentation runs: 'cpu' (the data tasks) or 'device' (the model's device, on the uint8 batch; the CPU only draws the parameters)", choices=("cpu", "device")),
        "storage_path": _f("path", "ray_results", "Ray Train/Tune storage (local dir or s3://)"),
        "name": _f("str", "cmr-clip", "run name; a run with the same name and storage resumes"),
        "keep_checkpoints": _f("int", 2, "checkpoints kept, by validation RSUM", min=1),
        "max_failures": _f("int", 2, "worker failures tolerated (restart from last checkpoint)", min=0),
    },
    "eval": {
        "probes": _f("list", ["nicm", "icm", "amyl", "hcm", "acdc"], "labels probed on frozen video embeddings",
                     choices=lambda: _known("probes")),
        "few_shot": _f("list", [1, 2, 4, 8, 16], "examples per class for few-shot probes ([]: none)", min=1),
        "few_shot_seeds": _f("int", 3, "seeds averaged per few-shot size", min=1),
        "prototype_shots": _f("list", [1, 4, 16], "examples per class for few-shot by class prototypes, nearest "
                              "prototype by cosine, findings and diagnoses (cmr_ray/eval/prototypes.py; []: none)", min=1),
        "prototype_episodes": _f("int", 1000, "episodes drawn per prototype few-shot size; mean and std reported", min=1),
        "prototype_seed": _f("int", 0, "seed of the prototype episodes (the same draws for every model)", min=0),
        "zero_shot_prompts": _f("bool", True, "CLIP-style zero-shot classification by text prompts"),
        "baselines": _f("list", ["zeroshot"], "baselines through the same probe: zeroshot, simclr",
                        choices=lambda: _known("baselines")),
        "plots": _f("bool", True, "write t-SNE, recall@k and confusion plots"),
        "chunk_size": _f("int", 4096, "rows per similarity chunk", min=1),
        "batch_size": _f("int", 32, "clips per embedding batch", min=1),
        "simclr_temperature": _f("float", 0.1, "NT-Xent temperature of the SimCLR baseline", min=0.001),
        "bootstrap": _f("int", 1000, "resamples of the test studies for the 95% intervals (_lo, _hi) of every "
                        "test and probe metric (0: none)", min=0),
        "transfer": _f("dict", {}, "public transfer sets: name -> clip store (`prepare --format acdc`) or 'synthetic' "
                       "(the ACDC-layout stand-in, built once); 5-class probe on cine SAX (cmr_ray/eval/transfer.py)",
                       check=_transfer_problem),
        "external": _f("str", "", "another site's clip store, or 'synthetic' (the other-site synthetic cohort, built "
                       "once beside data.store); every model scored there, nothing fitted there: keys external/... "
                       "(cmr_ray/eval/external.py; '': none)", check=_external_problem),
        "external_studies": _f("int", 150, "studies in the synthetic external cohort (eval.external: synthetic)", min=10),
    },
    "sweep": {
        "experiment": _f("str", "", "MLflow experiment name (default: the file's stem)"),
        "grid": _f("dict", {}, "dotted key -> list of values; the cartesian product is swept"),
        "trials": _f("list", [], "explicit trials: list of {dotted key: value}; combined with grid"),
        "seeds": _f("list", [], "training seeds: every row (trial × grid point) runs once per seed with train.seed "
                    "set to it, each its own child run; the report pools a row's seeds ([]: train.seed only)", min=0),
        "max_concurrent": _f("int", 0, "concurrent trials (0: from the cluster's CPUs/GPUs)", min=0),
        "trial_cpus": _f("float", 0.1, "CPUs reserved by each trial's driver function", min=0.0),
        "scheduler": _f("choice", "none", "early stopping", choices=("none", "asha")),
        "metric": _f("choice", "val/rsum", "per-epoch metric that picks each trial's best checkpoint, the best "
                     "trial and ASHA's stops (val/rsum, val/loss, val/t2v_r5, ...)", choices=lambda: _known("metrics")),
        "mode": _f("choice", "auto", "whether sweep.metric is better high (max) or low (min); auto: min for "
                   "losses and ranks (loss, medr, meanr), max otherwise", choices=("auto", "max", "min")),
        "register_model": _f("str", "cmr-clip", "registered model name for the best trial ('' to skip)"),
        "baselines": _f("list", [], "baselines computed once per sweep, each a child run: zeroshot, simclr",
                        choices=lambda: _known("baselines")),
        "baseline_trial": _f("dict", {}, "dotted key -> value over the experiment's config for the baselines, "
                             "like one trial (e.g. {data.frames: 16})"),
    },
}

SECTIONS = tuple(SCHEMA)


def defaults() -> dict:
    return {s: {k: copy.deepcopy(f.default) for k, f in fields.items()} for s, fields in SCHEMA.items()}


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "grid":
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read file ({e.strerror or e})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} not valid YAML ({getattr(e, 'problem', e)})") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping of sections {SECTIONS}, got {type(doc).__name__}")
    return doc


def _resolve_base(path: Path, doc: dict, seen: tuple = ()) -> dict:
    """Merge `base:` chains; bases are looked up beside the file, then in the presets."""
    base = doc.pop("base", None)
    if base is None:
        return doc
    if not isinstance(base, str):
        raise ConfigError(f"{path}: key 'base' expected a file name, got {base!r}")
    cand = (path.parent / base)
    if not cand.exists() and (PRESET_DIR / base).exists():
        cand = PRESET_DIR / base
    if not cand.exists():
        raise ConfigError(f"{path}: key 'base' names {base!r}, which does not exist")
    cand = cand.resolve()
    if cand in seen:
        raise ConfigError(f"{path}: key 'base' makes a cycle through {cand}")
    parent = _resolve_base(cand, _read_yaml(cand), seen + (cand,))
    preset = parent.pop("preset", None)
    _check_doc(cand, parent)
    if preset is not None:
        parent["preset"] = preset  # a base may name a preset; the file above may replace it
    return _merge(parent, doc)


def _check_value(src, key: str, f: Field, v: Any) -> Any:
    def bad(expected):
        return ConfigError(f"{src}: key '{key}' expected {expected}, got {v!r}")

    if v is None:
        if f.nullable:
            return None
        raise bad(f"a {f.kind} value (not null)")
    if f.kind == "bool":
        if not isinstance(v, bool):
            raise bad("true or false")
    elif f.kind == "int":
        if isinstance(v, bool) or not isinstance(v, int):
            raise bad("an integer")
    elif f.kind == "float":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise bad("a number")
        v = float(v)
    elif f.kind in ("str", "path"):
        if not isinstance(v, str) or (f.kind == "path" and not v):
            raise bad("a string" if f.kind == "str" else "a path")
    choices = f.choices() if callable(f.choices) else f.choices
    if f.kind == "choice":
        if v not in choices:
            raise bad("one of " + ", ".join(map(str, choices)))
    elif f.kind == "combo":
        if not isinstance(v, str):
            raise bad("a view combo string such as 'cine:sax+4ch|lge:sax'")
        try:
            parse_combo(v)
        except ViewComboError as e:
            raise ConfigError(f"{src}: key '{key}' {e}") from None
    elif f.kind == "list":
        if not isinstance(v, list):
            raise bad("a list")
        if choices and any(x not in choices for x in v):
            raise bad("a list of " + ", ".join(map(str, choices)))
        if f.min is not None and any(isinstance(x, bool) or not isinstance(x, int) or x < f.min for x in v):
            raise bad(f"a list of whole numbers >= {f.min:g}")
        return v
    elif f.kind == "dict":
        if not isinstance(v, dict):
            raise bad("a mapping")
    if f.check is not None and (expected := f.check(v)):
        raise bad(expected)
    if f.min is not None and isinstance(v, (int, float)) and v < f.min:
        raise bad(f"a value >= {f.min}")
    if f.max is not None and isinstance(v, (int, float)) and v > f.max:
        raise bad(f"a value <= {f.max}")
    return v


def _check_doc(src, doc: dict) -> None:
    for section, body in doc.items():
        if section not in SCHEMA:
            raise ConfigError(f"{src}: unknown key '{section}' (expected one of: base, preset, {', '.join(SECTIONS)})")
        if not isinstance(body, dict):
            raise ConfigError(f"{src}: key '{section}' expected a mapping, got {body!r}")
        for key, v in body.items():
            if key not in SCHEMA[section]:
                raise ConfigError(
                    f"{src}: unknown key '{section}.{key}' (expected one of: {', '.join(SCHEMA[section])})"
                )
            body[key] = _check_value(src, f"{section}.{key}", SCHEMA[section][key], v)


def _check_sweep(src, cfg: dict) -> None:
    sweep = cfg["sweep"]
    if len(set(sweep.get("seeds") or [])) != len(sweep.get("seeds") or []):
        raise ConfigError(f"{src}: key 'sweep.seeds' expected distinct seeds, got {sweep['seeds']!r}")
    rows = [("sweep.grid", k, vals) for k, vals in sweep["grid"].items()]
    for i, trial in enumerate(sweep["trials"]):
        if not isinstance(trial, dict):
            raise ConfigError(f"{src}: key 'sweep.trials[{i}]' expected a mapping of dotted keys, got {trial!r}")
        rows += [(f"sweep.trials[{i}]", k, [v]) for k, v in trial.items()]
    rows += [("sweep.baseline_trial", k, [v]) for k, v in sweep["baseline_trial"].items()]
    for where, key, vals in rows:
        if not isinstance(vals, list) or not vals:
            raise ConfigError(f"{src}: key '{where}.{key}' expected a non-empty list of values, got {vals!r}")
        section, _, name = str(key).partition(".")
        if section not in SCHEMA or section == "sweep" or name not in SCHEMA[section]:
            raise ConfigError(f"{src}: key '{where}' names unknown setting '{key}'")
        for v in vals:
            _check_value(src, f"{where}.{key}", SCHEMA[section][name], v)


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` from --set; the value is parsed as YAML (so 0.1, true, [1, 2] work)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or ("." not in key and key != "preset"):
        raise ConfigError(f"--set {text!r}: expected section.key=value (e.g. train.epochs=3) or preset=NAME")
    return key, yaml.safe_load(raw)


def presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _apply_preset(cfg: dict, name: Any, src) -> dict:
    """A preset (cmr_ray/presets/NAME.yaml) changes sizes and resources over the experiment."""
    if name not in presets():
        raise ConfigError(f"{src}: key 'preset' expected one of {', '.join(presets())}, got {name!r}")
    path = PRESET_DIR / f"{name}.yaml"
    doc = _read_yaml(path)
    _check_doc(path, doc)
    return _merge(cfg, doc)


def apply_overrides(cfg: dict, overrides: dict, src="--set") -> dict:
    cfg = copy.deepcopy(cfg)
    for key, v in overrides.items():
        section, _, name = key.partition(".")
        if section not in SCHEMA or name not in SCHEMA[section]:
            raise ConfigError(f"{src}: unknown key '{key}'")
        cfg[section][name] = _check_value(src, key, SCHEMA[section][name], v)
    return cfg


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | dict | None = None) -> dict:
    """Defaults <- base chain <- file <- overrides, validated. Returns a plain nested dict."""
    cfg = defaults()
    preset = None
    if path is not None:
        path = Path(path)
        doc = _resolve_base(path, _read_yaml(path))
        preset = doc.pop("preset", None)
        _check_doc(path, doc)
        cfg = _merge(cfg, doc)
        if not cfg["sweep"]["experiment"]:
            cfg["sweep"]["experiment"] = path.stem
    if overrides and not isinstance(overrides, dict):
        overrides = dict(parse_override(o) for o in overrides)
    overrides = dict(overrides or {})
    if "preset" in overrides:
        preset = overrides.pop("preset")
        src = "--set"
    else:
        src = path
    if preset is not None:
        cfg = _apply_preset(cfg, preset, src)
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    _check_sweep(path or "config", cfg)
    return cfg


def flatten(cfg: dict, sections=("data", "model", "train", "eval")) -> dict[str, Any]:
    """Stable dotted keys: {'data.views': ..., 'model.temperature': ...}."""
    return {f"{s}.{k}": v for s in sections for k, v in cfg[s].items()}


def to_yaml(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False)
