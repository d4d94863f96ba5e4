"""Check a configuration value against a settings dataclass field's type, and say what is allowed.

The types come from the dataclasses' annotations (``int``, ``float``, ``bool``, ``str``,
``X | None``, ``tuple[X, ...]``, ``tuple[A, B, C]``, ``Literal[...]``), so a field added to
a settings class is checked without any change here.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Union

from gbifxdl.errors import ConfigError


class BadValue(ValueError):
    """A value that does not fit a type; the message says what is allowed."""


def field_types(cls: type) -> dict[str, Any]:
    """Return {field name: resolved type} of a dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}


def coerce(value: Any, kind: Any) -> Any:
    """Return ``value`` converted to ``kind`` (lists become tuples, ints floats); raise BadValue."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return value
    if origin in (Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if value is None and len(options) < len(args):
            return None
        for option in options:
            try:
                return coerce(value, option)
            except BadValue:
                continue
        raise BadValue(describe(kind))
    if origin is Literal:
        if value in args:
            return value
        raise BadValue(describe(kind))
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise BadValue(describe(kind))
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise BadValue(describe(kind))
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise BadValue(describe(kind))
    if kind is str:
        if isinstance(value, str):
            return value
        raise BadValue(describe(kind))
    if origin is tuple:
        return _coerce_tuple(value, kind, args)
    return value  # a type this checker does not know: the dataclass checks it


def _coerce_tuple(value: Any, kind: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    if len(args) == 2 and args[1] is Ellipsis:
        if not isinstance(value, (list, tuple)):
            try:  # one item where a list is expected: a list of one
                return (coerce(value, args[0]),)
            except BadValue:
                raise BadValue(describe(kind)) from None
        try:
            return tuple(coerce(v, args[0]) for v in value)
        except BadValue:
            raise BadValue(describe(kind)) from None
    if not isinstance(value, (list, tuple)) or len(value) != len(args):
        raise BadValue(describe(kind))
    try:
        return tuple(coerce(v, a) for v, a in zip(value, args))
    except BadValue:
        raise BadValue(describe(kind)) from None


def describe(kind: Any) -> str:
    """Return what values of ``kind`` look like in a TOML file, e.g. 'a whole number'."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (Union, types.UnionType):
        options = [describe(a) for a in args if a is not type(None)]
        text = " or ".join(options)
        return text + (" (or leave the key out)" if type(None) in args else "")
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plural(describe(args[0]))}"
        parts = [describe(a) for a in args]
        if len(set(parts)) == 1:
            return f"a list of {len(args)} {_plural(parts[0])}"
        return f"a list of {len(args)}: " + ", ".join(parts)
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "a quoted string"}
    return names.get(kind, getattr(kind, "__name__", str(kind)))


def _plural(text: str) -> str:
    for single, many in (("a whole number", "whole numbers"), ("a number", "numbers"),
                         ("a quoted string", "quoted strings"), ("true or false", "true/false values")):  # fmt: skip
        text = text.replace(single, many)
    return text


def check_section(cls: type, values: dict[str, Any], *, where: str) -> dict[str, Any]:
    """Return ``values`` checked and converted against ``cls``'s field types.

    ``where`` names the place (e.g. "config file F: [fetch]") in the one-line error.
    """
    kinds = field_types(cls)
    unknown = sorted(set(values) - set(kinds))
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(kinds))}"
        )
    checked = {}
    for key, value in values.items():
        try:
            checked[key] = coerce(value, kinds[key])
        except BadValue as exc:
            raise ConfigError(f"{where} {key} = {show(value)}: expected {exc}") from None
    return checked


def show(value: Any) -> str:
    """Return a value as it would be written in TOML (shortened when long)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = '"' + value.replace('"', '\\"') + '"'
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(show(v) for v in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k} = {show(v)}" for k, v in value.items()) + "}"
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
