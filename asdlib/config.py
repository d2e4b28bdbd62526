"""Typed settings: turn plain mappings (from YAML) into frozen dataclasses.

Every settings class in asdlib is a dataclass whose fields carry type hints and
defaults. :func:`parse` checks a mapping against such a class before any work
starts: unknown keys and values of the wrong type raise :class:`ConfigError`
naming the full key (``params.yaml: mse.q_max``), so a typo never silently falls
back to a default.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

T = TypeVar("T")


class ConfigError(ValueError):
    """A settings mapping does not match its dataclass."""


def parse(cls: type[T], data: Mapping[str, Any] | None, where: str = "", base: T | None = None) -> T:
    """Build dataclass ``cls`` from ``data``; ``where`` prefixes error messages.

    Keys missing from ``data`` keep the value of ``base`` when given, else the
    field's default. A nested dataclass given as a partial mapping is merged over
    the field's default instance, so ``train: {epochs: 3}`` keeps a default
    learning rate that differs from the nested class's own default; one left empty
    (``train:``, YAML's null) keeps the field's value whole.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields), key=str)  # str: a mapping built in code may mix key types
    if unknown:
        raise ConfigError(
            f"{_key(where, unknown[0])}: unknown key (allowed: {', '.join(sorted(fields))})"
        )
    values = {}
    for name, field in fields.items():
        current = _current(field, base)
        if name in data:
            tp = hints[name]
            if dataclasses.is_dataclass(current) and (data[name] is None or isinstance(data[name], Mapping)):
                values[name] = parse(type(current), data[name], _key(where, name), base=current)
            else:
                values[name] = _convert(tp, data[name], _key(where, name))
        elif current is not _MISSING:
            values[name] = current
        else:
            raise ConfigError(f"{_key(where, name)}: missing required key")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where or cls.__name__}: {exc}") from exc


_MISSING = object()


def _current(field: dataclasses.Field, base: Any) -> Any:
    """The value a field has before ``data`` is applied: from ``base``, else its default."""
    if base is not None:
        return getattr(base, field.name)
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return _MISSING


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, naming the file on any error.

    YAML 1.2, as DVC reads params.yaml: ``1e-3`` is a number and ``yes`` a string (YAML 1.1
    readers such as PyYAML say the opposite), and a key given twice is an error. Every key
    must be a string (``1: a`` is an error naming its place), as settings are named.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = YAML(typ="safe", pure=True).load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc})") from exc
    except YAMLError as exc:
        detail = str(exc).split("\n\nTo suppress")[0]  # ruamel's hint to turn its check off
        raise ConfigError(f"{path}: not valid YAML: {detail}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    _check_keys(data, str(path), "")
    return data


def _check_keys(data: Any, source: str, where: str) -> None:
    """Raise naming ``source`` and the key's place when a mapping in ``data`` has a key that is
    not a string (YAML reads ``1:`` as an integer key; settings names are strings)."""
    if isinstance(data, dict):
        for key, value in data.items():
            if not isinstance(key, str):
                raise ConfigError(f"{source}: {_key(where, str(key))}: keys must be strings, got "
                                  f"{type(key).__name__} {key!r} (quote it)")
            _check_keys(value, source, _key(where, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            _check_keys(value, source, f"{where}[{i}]")


def to_dict(obj: Any) -> Any:
    """Plain-data view of a settings dataclass (for hashing and provenance)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _key(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: expected {' or '.join(_type_name(a) for a in args)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: expected one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        item_type = args[0] if args else Any
        items = [_convert(item_type, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _convert(vt, v, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return parse(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a path string, got {value!r}")
        return Path(value)
    raise ConfigError(f"{key}: unsupported settings type {_type_name(tp)}")
