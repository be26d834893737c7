"""Helpers shared by every config dataclass: strict loading from dicts, dotted `--set` overrides, and the
command-line flags of a config (`add_config_arguments`).

The dataclasses themselves live next to what they configure (`sinklab.model.config`,
`sinklab.train.config`); unknown keys are always errors, never silently dropped.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import json
import math
import types
import typing
from typing import Any, TypeVar

C = TypeVar("C")


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def from_dict(cls: type[C], data: dict[str, Any], *, where: str = "") -> C:
    """Build dataclass `cls` from a nested dict; unknown keys raise an error naming the accepted ones."""
    types_ = _field_types(cls)
    if not isinstance(data, dict):
        section = f"config section {where.rstrip('.')!r}" if where else "the config"
        raise ValueError(
            f"{section} must be a mapping (a JSON object) with keys among {', '.join(sorted(types_))}; "
            f"got {type(data).__name__} {data!r:.80}"
        )
    unknown = sorted(set(data) - set(types_))
    if unknown:
        raise ValueError(
            f"unknown config key(s) {', '.join(repr(where + k) for k in unknown)}; "
            f"accepted under {where or 'the top level'!r}: {', '.join(sorted(types_))}"
        )
    kwargs = {}
    for key, value in data.items():
        tp = types_[key]
        if _is_dataclass_type(tp) and not isinstance(value, tp):
            # a section given as a scalar or list fails here, naming the section, not as a TypeError later
            value = from_dict(tp, value, where=f"{where}{key}.")
        elif isinstance(value, list) and typing.get_origin(tp) is tuple:
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def check_fields(obj: Any, prefix: str) -> None:
    """Check every field of dataclass `obj` against its annotation, normalising where it is lossless.

    Called first in each config's `__post_init__`, so a value of the wrong type (a scalar for a pair, a
    string for a number) or a non-finite float is an error naming the key, whichever way the config was
    built. Integral floats become ints (a JSON file's 1e3) and lists become tuples.
    """
    for name, tp in _field_types(type(obj)).items():
        if _is_dataclass_type(tp):
            continue  # a section validates itself
        value = getattr(obj, name)
        ok, fixed = _conforms(value, tp)
        if not ok:
            raise ValueError(f"{prefix}{name} must be {_describe(tp)}, got {value!r}")
        if fixed is not value:
            setattr(obj, name, fixed)


def _conforms(value: Any, tp: Any) -> tuple[bool, Any]:
    """(whether `value` fits type `tp`, the value normalised to it)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            ok, fixed = (value is None, value) if arg is type(None) else _conforms(value, arg)
            if ok:
                return True, fixed
        return False, value
    if origin is tuple:
        if not isinstance(value, tuple | list):
            return False, value
        inner = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(inner) != len(value):
            return False, value
        checked = [_conforms(v, t) for v, t in zip(value, inner, strict=True)]
        if not all(ok for ok, _ in checked):
            return False, value
        return True, tuple(fixed for _, fixed in checked)
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return True, int(value)
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return number and math.isfinite(value), value
    if tp is str:
        return isinstance(value, str), value
    return True, value  # anything else (Any, dicts) is the dataclass's own business


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        parts = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plural(args[0])} (e.g. [0.3, 0.1])"
        return f"a list of {len(args)} {_plural(args[0])} (e.g. [0.9, 0.95])"
    return {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}.get(
        tp, str(tp)
    )


def _plural(tp: Any) -> str:
    return {int: "integers", float: "finite numbers", str: "strings"}.get(tp, str(tp))


def check_choice(name: str, value: object, accepted: tuple[str, ...]) -> None:
    """`value` must be one of `accepted` (the error lists them)."""
    if value not in accepted:
        raise ValueError(f"{name} must be one of {', '.join(accepted)}; got {value!r}")


def check_number(name: str, value: float, *, zero_ok: bool = False) -> None:
    """A finite number > 0 (>= 0 with `zero_ok`)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not zero_ok):
        raise ValueError(f"{name} must be {'>= 0' if zero_ok else '> 0'}, got {value}")


def check_integer(name: str, value: object, *, minimum: int = 0, optional: bool = False) -> None:
    """An integer >= `minimum` (or None with `optional`)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"{name} must be an integer >= {minimum}{' or null' if optional else ''}, got {value!r}"
        )


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
            return int(text)
        except ValueError:
            pass
        try:  # 2e3 is an integer written as a float; 1.5e0 and inf are not
            value = float(text)
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise ValueError(f"{name}: expected an integer (such as 200 or 2e3), got {text!r}")
    if tp is float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):  # nan and inf parse as floats but no setting accepts them
            raise ValueError(f"{name}: expected a finite number, got {text!r}")
        return value
    if tp is str:
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f"{name}: expected JSON for type {tp}, got {text!r}") from None
    if origin is tuple and isinstance(value, list):
        value = tuple(value)
    elif origin is tuple and len(args) == 2 and args[1] is Ellipsis and isinstance(value, int | float):
        value = (value,)  # one threshold for a list of them
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


def _field_comments(cls: type) -> dict[str, str]:
    """The trailing `# comment` of each field line in the class source (the documentation of the field)."""
    import ast
    import inspect
    import textwrap

    source = textwrap.dedent(inspect.getsource(cls))
    lines = source.splitlines()
    comments: dict[str, str] = {}
    for node in ast.parse(source).body[0].body:  # type: ignore[attr-defined]
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            text = " ".join(lines[node.lineno - 1 : node.end_lineno])
            if "#" in text:
                comments[node.target.id] = text.split("#", 1)[1].strip()
                continue
            above = []  # a comment block right above the field documents it too
            row = node.lineno - 2
            while row >= 0 and lines[row].strip().startswith("#"):
                above.insert(0, lines[row].strip().lstrip("#").strip())
                row -= 1
            comments[node.target.id] = " ".join(above)
    return comments


PIPE = "\\|"  # a literal | inside a Markdown table cell


def config_reference(cls: type, prefix: str = "") -> str:
    """A Markdown table of every key under `cls` (dotted, as `--set` takes it), its type, default and
    comment, generated from the dataclasses themselves (docs/train.md embeds it; a test keeps it current)."""
    rows: list[str] = []
    sections: list[tuple[str, type]] = []
    comments = _field_comments(cls)
    types_ = _field_types(cls)
    defaults = cls()
    for f in dataclasses.fields(cls):
        tp = types_[f.name]
        if _is_dataclass_type(tp):
            sections.append((f"{prefix}{f.name}.", tp))
            continue
        default = json.dumps(to_dict(defaults)[f.name])
        kind = getattr(tp, "__name__", str(tp)).replace("typing.", "")
        if not isinstance(tp, type):
            kind = str(tp).replace("typing.", "").replace("NoneType", "None")
        comment = comments.get(f.name, "").replace("|", PIPE)
        kind = kind.replace("|", PIPE)
        rows.append(f"| `{prefix}{f.name}` | {kind} | `{default}` | {comment} |")
    out = ""
    if rows:
        title = prefix.rstrip(".") or cls.__name__
        out += f"\n**{title}**\n\n| key | type | default | meaning |\n|---|---|---|---|\n"
        out += "\n".join(rows) + "\n"
    for sub_prefix, sub in sections:
        out += config_reference(sub, sub_prefix)
    return out


REFERENCE_START, REFERENCE_END = "<!-- config-reference -->", "<!-- /config-reference -->"


def rewrite_reference(page: str | Any) -> bool:
    """Replace the generated config reference in a docs page; True when it changed."""
    from pathlib import Path

    from sinklab.train.config import RunConfig

    path = Path(page)
    text = path.read_text()
    start, end = text.index(REFERENCE_START) + len(REFERENCE_START), text.index(REFERENCE_END)
    updated = text[:start] + "\n" + config_reference(RunConfig).strip("\n") + "\n" + text[end:]
    if updated != text:
        path.write_text(updated)
    return updated != text


if __name__ == "__main__":  # python -m sinklab.config [docs/train.md]: regenerate the config reference
    import sys

    target = sys.argv[1] if len(sys.argv) > 1 else "docs/train.md"
    print(f"{target}: {'updated' if rewrite_reference(target) else 'already current'}")


def add_config_arguments(
    parser: Any, cls: type, *, skip: tuple[str, ...] = (), types_: dict[str, Any] | None = None
) -> None:
    """One `--flag` per field of the config dataclass `cls`, from the field itself: its default, its type (a
    list for tuples and sequences, a switch for booleans) and its comment as the help, so that every default
    is written once (`config_from_args` builds the dataclass back). `types_` overrides a field's parser."""
    hints = _field_types(cls)
    comments = _field_comments(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        text = comments.get(f.name, "").replace("%", "%%")
        tp = hints[f.name]
        if tp is bool:
            parser.add_argument(flag, action="store_true", help=text)
            continue
        union = typing.get_origin(tp) in (typing.Union, types.UnionType)
        options = [a for a in typing.get_args(tp) if a is not type(None)] if union else [tp]
        kind, kw = options[0], {}
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if typing.get_origin(kind) in (tuple, list, collections.abc.Sequence):
            kind = typing.get_args(kind)[0]
            kw["nargs"] = "+"
            default = list(default) if isinstance(default, tuple | list) else default
        kw["type"] = (types_ or {}).get(f.name, kind if kind in (int, float, str) else str)
        if default is not None:
            text += f" (default {' '.join(map(str, default)) if isinstance(default, list) else default})"
        parser.add_argument(flag, default=default, help=text, **kw)


def config_from_args(args: Any, cls: type[C], skip: tuple[str, ...] = (), **fixed: Any) -> C:
    """The dataclass `cls` from the flags `add_config_arguments` added (validated as it is built)."""
    names = [f.name for f in dataclasses.fields(cls) if f.name not in skip]  # type: ignore[arg-type]
    return cls(**{n: getattr(args, n) for n in names}, **fixed)


def add_set_argument(parser: Any, help_text: str) -> None:
    """`--set KEY=VALUE`: several pairs after one flag, or the flag repeated (docs: command contracts)."""
    parser.add_argument(
        "--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE", help=help_text
    )
