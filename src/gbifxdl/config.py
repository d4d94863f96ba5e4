"""The run configuration file (TOML): read it into settings, or write a commented one.

Sections mirror the stages: ``[source]``, ``[wait]``, ``[select]``, ``[fetch]``,
``[curate]``; each key of the last four is a field of that stage's settings dataclass,
so the file and the Python API can never drift apart.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Mapping

from gbifxdl.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SOURCE_KEYS = (
    "payload", "taxon", "country", "year", "basis_of_record", "license", "dataset_key",
    "media_type", "lenient", "key", "archive", "api_url", "format", "notification",
)  # fmt: skip


def read_config(path: str | Path) -> dict[str, Any]:
    """Return the parsed TOML file, checked for unknown sections."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found; `gbifxdl init` writes one") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    allowed = {"output", "report", "source", "wait", "select", "fetch", "curate"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"config file {path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    source = data.get("source", {})
    bad = sorted(set(source) - set(SOURCE_KEYS))
    if bad:
        raise ConfigError(f"config file {path}: unknown [source] key(s) {', '.join(bad)}; allowed: {', '.join(SOURCE_KEYS)}")
    return data


def settings_from(cls: type, values: Mapping[str, Any], *, section: str, base: Any = None) -> Any:
    """Build a settings dataclass from ``values``, coercing lists to tuples; reject unknown keys."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(
            f"[{section}]: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}"
        )
    current = base if base is not None else cls()
    changes = {}
    for key, value in values.items():
        default = getattr(current, key)
        if isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"[{section}] {key}: expected true or false, got {value!r}")
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        changes[key] = value
    try:
        return dataclasses.replace(current, **changes)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{section}]: {exc}") from None


def default_config_text(sections: Mapping[str, Any]) -> str:
    """Return a commented TOML configuration holding every option at its default."""
    lines = [
        "# gbifxdl run configuration: `gbifxdl run --config THIS_FILE`.",
        "# Every key is optional; options given on the command line win over this file.",
        "",
        'output = "dataset"          # the dataset folder (also holds the run state)',
        "report = true               # write README.md, ATTRIBUTION.csv and report.html",
        "",
        "[source]",
        "# Exactly one source: a payload file, builder options (taxon...), a key, or an archive.",
        '# payload = "payload.json"          # a GBIF predicate, or a full request body',
        'taxon = ["Nymphalidae"]              # names (matched with GBIF species match) or keys',
        '# country = ["DK", "GB"]',
        '# year = "2015-2024"',
        '# basis_of_record = ["HUMAN_OBSERVATION"]',
        '# license = ["CC0", "CC-BY"]',
        '# dataset_key = ["50c9509d-22c7-4a22-a47d-8c48425ef4a7"]',
        'media_type = "StillImage"',
        '# key = "0026011-250827131500795"   # an existing GBIF download',
        '# archive = "path/to/KEY.zip"       # an archive already on disk',
        '# api_url = "https://api.gbif.org/v1"',
        "# Credentials never go here: use GBIF_USER / GBIF_PWD / GBIF_EMAIL, a .env file or ~/.netrc.",
    ]
    for name, obj in sections.items():
        lines += ["", f"[{name}]"]
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            rendered = _toml_value(value)
            lines.append(f"{f.name} = {rendered}" if rendered is not None else f"# {f.name} =   (unset)")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (tuple, list)):
        items = [_toml_value(v) for v in value]
        return "[" + ", ".join(i for i in items if i is not None) + "]"
    return json.dumps(str(value))
