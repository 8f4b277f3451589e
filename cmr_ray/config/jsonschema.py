"""The experiment file's JSON Schema (`cmr-ray validate --schema`), for editors that check
YAML as it is typed (e.g. `# yaml-language-server: $schema=cmr-ray.schema.json`).

Made from the same fields `load_config` checks (`cmr_ray.config.schema`): every section and
key with its type, default and description, choices and bounds.  `load_config` remains the
full check (view combos, names owned by code, sweep trials).
"""
from __future__ import annotations

import dataclasses
import inspect

from cmr_ray.config.schema import SECTION_TYPES, Field

_TYPES = {"int": "integer", "float": "number", "bool": "boolean", "str": "string", "path": "string",
          "combo": "string", "choice": "string", "list": "array", "dict": "object"}


def _property(f: Field) -> dict:
    prop: dict = {"type": _TYPES[f.kind], "description": f.help, "default": f.default}
    choices = f.choices() if callable(f.choices) else f.choices
    if f.kind == "choice" and choices:
        prop["enum"] = list(choices)
    if f.kind == "path":
        prop["minLength"] = 1
    if f.kind in ("int", "float"):
        if f.min is not None:
            prop["minimum"] = f.min
        if f.max is not None:
            prop["maximum"] = f.max
    if f.kind == "list":
        if choices:
            prop["items"] = {"enum": list(choices)}
        elif f.min is not None:
            prop["items"] = {"type": "integer", "minimum": f.min}
    if f.nullable:
        prop["type"] = [prop["type"], "null"]
    return prop


def json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of an experiment file."""
    from cmr_ray.config.load import presets

    sections = {}
    for name, cls in SECTION_TYPES.items():
        sections[name] = {
            "type": "object",
            "description": inspect.getdoc(cls).splitlines()[0],
            "additionalProperties": False,
            "properties": {fld.name: _property(fld.metadata["spec"]) for fld in dataclasses.fields(cls)},
        }
    sweep = sections["sweep"]["properties"]
    sweep["grid"]["additionalProperties"] = {"type": "array", "minItems": 1}
    sweep["trials"]["items"] = {"type": "object"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://cmr-ray/experiment.schema.json",
        "title": "cmr-ray experiment",
        "description": "An experiment file: a small YAML over an optional base; every key has a default.",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "base": {"type": "string", "description": "a file this one is laid over (relative to it, or a preset file)"},
            "preset": {"type": "string", "enum": presets(), "description": "the whole-run preset: sizes and resources from cmr_ray/presets/NAME.yaml"},
            **sections,
        },
    }
