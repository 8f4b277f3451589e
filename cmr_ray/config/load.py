"""Loading an experiment file: base chains, presets, `--set` overrides, every value checked.

Every problem found in the files and overrides is collected before failing: `ConfigError`
carries one line per problem (`.problems`), each naming the file, the key and what was
expected (for a renamed key, `RENAMED`, its new name).  Only a file that cannot be read or
parsed, or a `base:` that cannot be followed, stops the reading at once.  A config saved
with a checkpoint or model is read by `load_saved_config`.
"""
from __future__ import annotations

import copy
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from cmr_ray.config.frozen import Section, freeze, thaw
from cmr_ray.config.schema import SCHEMA, SECTION_TYPES, SECTIONS, Config, Field
from cmr_ray.config.search import spec_problem, values_to_check
from cmr_ray.views import ViewComboError, parse_combo

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets"

# Keys that were renamed, old -> (new, {old value: new value}).  `preset` is only the whole-run
# preset (cmr_ray/presets/NAME.yaml), which sets these keys; an old name is refused with its
# new one (in a file, a --set, a sweep grid or trial), never read as the new.
RENAMED = {
    "model.preset": ("model.size", {"small": "custom", "paper": "vit_b16"}),
    "data.synth_preset": ("data.synth_protocol", {}),
}


def _renamed(key: str) -> str | None:
    """What to say of a renamed `key` ('was renamed to ...'), or None for any other key."""
    if key not in RENAMED:
        return None
    new, values = RENAMED[key]
    said = ", ".join(f"{a} is now {b}" for a, b in values.items())
    return f"was renamed to '{new}'" + (f" ({said})" if said else "")


class ConfigError(ValueError):
    """Config problems, one line each (file, key, what was expected); `.problems` lists them."""

    def __init__(self, message: str | list[str]):
        problems = list(message) if isinstance(message, (list, tuple)) else (str(message).splitlines() or [""])
        super().__init__("\n".join(problems))
        self.problems = problems


class _Problems(list):
    """Collects one-line problems; `.check(fn, *args)` runs a check and keeps its ConfigError."""

    def check(self, fn, *args, default=None):
        try:
            return fn(*args)
        except ConfigError as e:
            self.extend(p for p in e.problems if p not in self)
            return default

    def raise_any(self) -> None:
        if self:
            raise ConfigError(list(self))


def defaults() -> dict:
    """Every key's default, as plain nested dicts."""
    return {s: {k: copy.deepcopy(f.default) for k, f in fields.items()} for s, fields in SCHEMA.items()}


def _merge(base: dict, over: dict) -> dict:
    """`over` on `base`: sections merge key by key, and a key's value replaces the base's whole,
    a mapping too (`eval.transfer: {}` clears the base's transfer sets; `sweep.grid`,
    `sweep.search` and `sweep.baseline_trial` are each one value, not a patch)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k].update(copy.deepcopy(v))
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


def _resolve_base(path: Path, doc: dict, problems: _Problems, seen: tuple = ()) -> dict:
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
    parent = _resolve_base(cand, _read_yaml(cand), problems, seen + (cand,))
    preset = parent.pop("preset", None)
    _check_doc(cand, parent, problems)
    if preset is not None:
        parent["preset"] = preset  # a base may name a preset; the file above may replace it
    return _merge(parent, doc)


# YAML 1.1 (PyYAML) reads 1e-3 and 5E4 as strings: numbers as people type them are numbers.
_NUMBER = re.compile(r"[+-]?(\d[\d_]*\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _as_number(v: Any) -> Any:
    if isinstance(v, str) and _NUMBER.fullmatch(v.strip()):
        return float(v.strip().replace("_", ""))
    return v


def _check_value(src, key: str, f: Field, v: Any) -> Any:
    """The value, typed (`1e-3` a float, `1e3` an int where the key wants one), or a
    ConfigError naming `src` and `key`."""
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
        n = _as_number(v)
        if isinstance(n, float) and n.is_integer():
            n = int(n)
        if isinstance(n, bool) or not isinstance(n, int):
            raise bad("an integer")
        v = n
    elif f.kind == "float":
        n = _as_number(v)
        if isinstance(n, bool) or not isinstance(n, (int, float)):
            raise bad("a number")
        v = float(n)
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


def _check_doc(src, doc: dict, problems: _Problems) -> None:
    """Check (and type) every key of a file's sections in place; a bad key or value is
    noted in `problems` and left out, so the rest is checked too."""
    for section in list(doc):
        body = doc[section]
        if section not in SCHEMA:
            problems.append(f"{src}: unknown key '{section}' (expected one of: base, preset, {', '.join(SECTIONS)})")
            del doc[section]
            continue
        if not isinstance(body, dict):
            problems.append(f"{src}: key '{section}' expected a mapping, got {body!r}")
            del doc[section]
            continue
        for key in list(body):
            if renamed := _renamed(f"{section}.{key}"):
                problems.append(f"{src}: key '{section}.{key}' {renamed}")
                del body[key]
                continue
            if key not in SCHEMA[section]:
                problems.append(f"{src}: unknown key '{section}.{key}' (expected one of: {', '.join(SCHEMA[section])})")
                del body[key]
                continue
            v = problems.check(_check_value, src, f"{section}.{key}", SCHEMA[section][key], body[key], default=problems)
            if v is problems:
                del body[key]
            else:
                body[key] = v


def _check_sweep(src, cfg: dict, problems: _Problems) -> None:
    sweep = cfg["sweep"]
    if len(set(sweep.get("seeds") or [])) != len(sweep.get("seeds") or []):
        problems.append(f"{src}: key 'sweep.seeds' expected distinct seeds, got {sweep['seeds']!r}")
    rows = [("sweep.grid", k, vals) for k, vals in sweep["grid"].items()]
    for i, trial in enumerate(sweep["trials"]):
        if not isinstance(trial, dict):
            problems.append(f"{src}: key 'sweep.trials[{i}]' expected a mapping of dotted keys, got {trial!r}")
            continue
        rows += [(f"sweep.trials[{i}]", k, [v]) for k, v in trial.items()]
    rows += [("sweep.baseline_trial", k, [v]) for k, v in sweep["baseline_trial"].items()]
    for key, spec in list(sweep["search"].items()):
        field = _swept_field(src, "sweep.search", key, problems)
        if field is None:
            continue
        if isinstance(spec, dict) and len(spec) == 1 and "choice" not in spec:
            (name, args), = spec.items()  # a range's ends as people type them (5e-4)
            if isinstance(args, list):
                spec = sweep["search"][key] = {name: [_as_number(a) for a in args]}
        if (expected := spec_problem(spec, field.kind)) is not None:
            problems.append(f"{src}: key 'sweep.search.{key}' expected {expected}, got {spec!r}")
            continue
        rows.append(("sweep.search", key, values_to_check(spec)))
    if sweep["num_samples"] > 1 and not sweep["search"]:
        problems.append(f"{src}: key 'sweep.num_samples' is {sweep['num_samples']} but 'sweep.search' is empty; "
                        "repeat rows with sweep.seeds instead")
    for where, key, vals in rows:
        if not isinstance(vals, list) or not vals:
            problems.append(f"{src}: key '{where}.{key}' expected a non-empty list of values, got {vals!r}")
            continue
        field = _swept_field(src, where, key, problems)
        if field is None:
            continue
        for v in vals:
            problems.check(_check_value, src, f"{where}.{key}", field, v)


def _swept_field(src, where: str, key, problems: _Problems) -> Field | None:
    """The Field of a dotted key a sweep sets (never a `sweep.` key), or None and a problem."""
    section, _, name = str(key).partition(".")
    if renamed := _renamed(str(key)):
        problems.append(f"{src}: key '{where}' names '{key}', which {renamed}")
        return None
    if section not in SCHEMA or section == "sweep" or name not in SCHEMA[section]:
        problems.append(f"{src}: key '{where}' names unknown setting '{key}'")
        return None
    return SCHEMA[section][name]


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` from --set; the value is parsed as YAML (so 0.1, 1e-3, true, [1, 2] work).
    An empty value (`--set sweep.register_model=`) is the empty string, as a user who types
    nothing after `=` means, not YAML's null (`=null` still gives null)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or ("." not in key and key != "preset"):
        raise ConfigError(f"--set {text!r}: expected section.key=value (e.g. train.epochs=3) or preset=NAME")
    return key, (yaml.safe_load(raw) if raw.strip() else "")


def presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _apply_preset(cfg: dict, name: Any, src, problems: _Problems) -> dict:
    """A preset (cmr_ray/presets/NAME.yaml) changes sizes and resources over the experiment."""
    if name not in presets():
        problems.append(f"{src}: key 'preset' expected one of {', '.join(presets())}, got {name!r}")
        return cfg
    path = PRESET_DIR / f"{name}.yaml"
    doc = _read_yaml(path)
    _check_doc(path, doc, problems)
    return _merge(cfg, doc)


def _set_overrides(cfg: dict, overrides: dict, src, problems: _Problems) -> dict:
    cfg = copy.deepcopy(cfg)
    for key, v in overrides.items():
        section, _, name = str(key).partition(".")
        if renamed := _renamed(str(key)):
            problems.append(f"{src}: key '{key}' {renamed}")
            continue
        if section not in SCHEMA or name not in SCHEMA[section]:
            problems.append(f"{src}: unknown key '{key}'")
            continue
        v = problems.check(_check_value, src, key, SCHEMA[section][name], thaw(v), default=problems)
        if v is not problems:
            cfg[section][name] = v
    return cfg


def _build(cfg: dict) -> Config:
    """The frozen, typed config of a checked plain dict."""
    return Config(**{s: SECTION_TYPES[s](**{k: freeze(v) for k, v in cfg[s].items()}) for s in SECTIONS})


def apply_overrides(cfg: Config | dict, overrides: dict, src="--set") -> Config:
    """A validated copy of `cfg` with dotted keys changed; every bad key or value is one line of
    the ConfigError.  (`Config.with_overrides` is the same.)"""
    plain = cfg.to_dict() if isinstance(cfg, Section) else _merge(defaults(), thaw(cfg))
    problems = _Problems()
    plain = _set_overrides(plain, overrides, src, problems)
    problems.raise_any()
    return _build(plain)


def from_dict(doc: dict, src="config") -> Config:
    """A Config from plain nested dicts (sections and keys as in a file), checked like a file."""
    doc = copy.deepcopy(thaw(doc))
    problems = _Problems()
    _check_doc(src, doc, problems)
    cfg = _merge(defaults(), doc)
    _check_sweep(src, cfg, problems)
    problems.raise_any()
    return _build(cfg)


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | dict | None = None) -> Config:
    """Defaults <- base chain <- file <- preset <- overrides, validated: a frozen `Config`
    (`cfg.train.epochs`).  Every problem is one line of the ConfigError."""
    problems = _Problems()
    cfg = defaults()
    preset = None
    if path is not None:
        path = Path(path)
        doc = _resolve_base(path, _read_yaml(path), problems)
        preset = doc.pop("preset", None)
        _check_doc(path, doc, problems)
        cfg = _merge(cfg, doc)
        if not cfg["sweep"]["experiment"]:
            cfg["sweep"]["experiment"] = path.stem
    if overrides and not isinstance(overrides, dict):
        overrides = dict(problems.check(parse_override, o, default=("", None)) for o in overrides)
        overrides.pop("", None)
    overrides = dict(overrides or {})
    if "preset" in overrides:
        preset = overrides.pop("preset")
        src = "--set"
    else:
        src = path
    if preset is not None:
        cfg = _apply_preset(cfg, preset, src, problems)
    if overrides:
        cfg = _set_overrides(cfg, overrides, "--set", problems)
    _check_sweep(path or "config", cfg, problems)
    problems.raise_any()
    return _build(cfg)


def load_saved_config(path: str | os.PathLike) -> Config:
    """A resolved config the platform saved with a checkpoint or model (`to_yaml`): as
    `load_config`, except that one saved before a key was renamed (`RENAMED`) is read with
    the new names, and says so in one line on stderr.  Such a file is a record of a finished
    run, not a file to edit; experiment files and --set still refuse the old names."""
    path = Path(path)
    doc = _read_yaml(path)
    moved = []
    for old, (new, values) in RENAMED.items():
        (s_old, k_old), (s_new, k_new) = old.split("."), new.split(".")
        body = doc.get(s_old)
        if isinstance(body, dict) and k_old in body:
            v = body.pop(k_old)
            doc.setdefault(s_new, {}).setdefault(k_new, values.get(v, v) if isinstance(v, str) else v)
            moved.append(f"{old}: {v} as {new}: {doc[s_new][k_new]}")
    if not moved:
        return load_config(path)
    print(f"{path}: saved before keys were renamed; read {', '.join(moved)}", file=sys.stderr)
    sweep = doc.get("sweep")
    if isinstance(sweep, dict) and not sweep.get("experiment"):
        sweep["experiment"] = path.stem  # as load_config names it
    return from_dict(doc, src=path)


def flatten(cfg: Config, sections=("data", "model", "train", "eval")) -> dict[str, Any]:
    """Stable dotted keys (the MLflow params): {'data.views': ..., 'model.temperature': ...}."""
    return {f"{s}.{k}": thaw(v) for s in sections for k, v in cfg[s].items()}


def to_yaml(cfg: Config) -> str:
    """The config as the YAML file that loads it back (saved with every run and checkpoint)."""
    return yaml.safe_dump(thaw(cfg), sort_keys=False)
