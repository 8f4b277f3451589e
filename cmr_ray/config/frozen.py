"""Frozen config objects: each section is a frozen dataclass that also reads like a mapping.

    cfg.train.epochs              # the way to read a value (typed: an int)
    cfg["train"]["epochs"]        # the same value, for code that walks sections by name
    cfg.replace("train.epochs", 3)            # a changed, validated copy
    cfg.with_overrides({"data.frames": 16})   # several keys at once
    cfg.to_dict()                 # plain nested dicts and lists (YAML, JSON, MLflow)

Nothing in a loaded config changes in place: assigning an attribute or an item, or changing
one of its lists or mappings, raises `FrozenConfigError` saying how to make a changed copy.
Lists and mappings inside a config are `FrozenList`/`FrozenDict`: they compare, print, pickle
and JSON-encode as the plain ones do.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

HOW = "make a changed copy with cfg.replace('section.key', value) or cfg.with_overrides({...})"


class FrozenConfigError(dataclasses.FrozenInstanceError, TypeError):
    """A loaded config was changed in place (attribute, item, or one of its lists/mappings)."""


def _refuse(what: str):
    raise FrozenConfigError(f"the config is frozen: cannot {what}; {HOW}")


class _Unchangeable:
    """What FrozenList and FrozenDict share: a copy is the object itself (nothing can change
    it), and it pickles as its plain base type's contents rebuilt into the frozen type."""

    __slots__ = ()

    _plain: type  # list or dict

    def __reduce__(self):
        return (type(self), (self._plain(self),))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


class FrozenList(_Unchangeable, list):
    """A list that refuses changes (equal to, and printed like, the plain list)."""

    __slots__ = ()
    _plain = list

    def _refuse(self, *args, **kwargs):
        _refuse("change a list in it")

    append = extend = insert = pop = remove = clear = sort = reverse = _refuse
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse


class FrozenDict(_Unchangeable, dict):
    """A dict that refuses changes (equal to, and printed like, the plain dict)."""

    __slots__ = ()
    _plain = dict

    def _refuse(self, *args, **kwargs):
        _refuse("change a mapping in it")

    update = pop = popitem = clear = setdefault = _refuse
    __setitem__ = __delitem__ = __ior__ = _refuse


def freeze(v: Any) -> Any:
    """Lists and dicts (nested) as FrozenList/FrozenDict; other values as they are."""
    if isinstance(v, Section):
        return v
    if isinstance(v, Mapping):
        return FrozenDict({k: freeze(x) for k, x in v.items()})
    if isinstance(v, (list, tuple)):
        return FrozenList(freeze(x) for x in v)
    return v


def thaw(v: Any) -> Any:
    """The plain value: sections, FrozenDict, FrozenList (nested) as dicts and lists."""
    if isinstance(v, Mapping):
        return {k: thaw(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [thaw(x) for x in v]
    return v


class Section(Mapping):
    """Base of the config's frozen dataclasses: attribute access, plus read-only mapping
    access (`s["key"]`, `s.get`, `dict(s)`, `**s`) for code that walks keys by name."""

    def __getitem__(self, key):
        if isinstance(key, str) and key in self.__dataclass_fields__:
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self):
        return iter(self.__dataclass_fields__)

    def __len__(self):
        return len(self.__dataclass_fields__)

    def __setitem__(self, key, value):
        _refuse(f"set {key!r}")

    def __delitem__(self, key):
        _refuse(f"delete {key!r}")

    def __eq__(self, other):
        if isinstance(other, Mapping):
            return self.to_dict() == thaw(other)
        return NotImplemented

    __hash__ = None  # lists inside: not hashable, like the dicts it replaces

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def to_dict(self) -> dict:
        """Plain nested dicts and lists (for YAML, JSON and MLflow)."""
        return {k: thaw(getattr(self, k)) for k in self.__dataclass_fields__}


def _setattr(self, name, value):
    _refuse(f"set {name!r}")


def _delattr(self, name):
    _refuse(f"delete {name!r}")


def frozen_section(cls):
    """`@dataclass(frozen=True)` whose refusals say how to make a changed copy."""
    cls = dataclasses.dataclass(frozen=True, eq=False, repr=True)(cls)
    cls.__setattr__, cls.__delattr__ = _setattr, _delattr
    return cls


def _yaml_representers() -> None:
    """`yaml.safe_dump` writes a config, its sections, lists and mappings as plain YAML."""
    import yaml

    rep = yaml.representer.SafeRepresenter
    yaml.add_representer(FrozenList, rep.represent_list, Dumper=yaml.SafeDumper)
    yaml.add_representer(FrozenDict, rep.represent_dict, Dumper=yaml.SafeDumper)
    yaml.add_multi_representer(Section, lambda d, s: d.represent_dict(s.to_dict()), Dumper=yaml.SafeDumper)


_yaml_representers()
