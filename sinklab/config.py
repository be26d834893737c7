"""Helpers shared by every config dataclass: strict loading from dicts and dotted `--set` overrides.

The dataclasses themselves live next to what they configure (`sinklab.model.config`,
`sinklab.train.config`); unknown keys are always errors, never silently dropped.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, TypeVar

C = TypeVar("C")


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def from_dict(cls: type[C], data: dict[str, Any], *, where: str = "") -> C:
    """Build dataclass `cls` from a nested dict; unknown keys raise an error naming the accepted ones."""
    if not isinstance(data, dict):
        raise TypeError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    types_ = _field_types(cls)
    unknown = sorted(set(data) - set(types_))
    if unknown:
        raise ValueError(
            f"unknown config key(s) {', '.join(repr(where + k) for k in unknown)}; "
            f"accepted under {where or 'the top level'!r}: {', '.join(sorted(types_))}"
        )
    kwargs = {}
    for key, value in data.items():
        tp = types_[key]
        if _is_dataclass_type(tp) and isinstance(value, dict):
            value = from_dict(tp, value, where=f"{where}{key}.")
        elif isinstance(value, list) and typing.get_origin(tp) is tuple:
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def _coerce(text: str, tp: Any, name: str) -> Any:
    """Parse a `--set` value to the field's type (JSON where the type is not a plain scalar)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null") and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(text, arg, name)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError("; ".join(errors))
    if tp is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name}: expected true/false, got {text!r}")
    if tp is int:
        try:
            return int(float(text)) if "e" in text.lower() else int(text)
        except ValueError:
            raise ValueError(f"{name}: expected an integer, got {text!r}") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{name}: expected a number, got {text!r}") from None
    if tp is str:
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f"{name}: expected JSON for type {tp}, got {text!r}") from None
    if origin is tuple and isinstance(value, list):
        value = tuple(value)
    return value


def apply_overrides(cfg: C, overrides: list[str]) -> C:
    """Return a copy of `cfg` with `key.sub=value` overrides applied (validated again on rebuild)."""
    data = to_dict(cfg)
    cls = type(cfg)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        path, text = item.split("=", 1)
        keys = path.strip().split(".")
        node_cls: Any = cls
        node = data
        for i, key in enumerate(keys):
            types_ = _field_types(node_cls)
            if key not in types_:
                where = ".".join(keys[:i]) or "the top level"
                raise ValueError(
                    f"unknown config key {path!r}; accepted under {where!r}: {', '.join(sorted(types_))}"
                )
            tp = types_[key]
            if i == len(keys) - 1:
                if _is_dataclass_type(tp):
                    raise ValueError(f"{path!r} is a section; set one of its keys, e.g. {path}.KEY=VALUE")
                node[key] = _coerce(text.strip(), tp, path)
            else:
                if not _is_dataclass_type(tp):
                    raise ValueError(f"{'.'.join(keys[: i + 1])!r} is not a section")
                node_cls = tp
                node = node[key]
    return from_dict(cls, data)
