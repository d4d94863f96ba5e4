"""`gbifxdl run --config F`: the command line wins, then the file, then the defaults; bad values are one line.

The precedence test walks `run`'s click parameters, so an option added to `run` is tested
(or fails the test until it has a place in the configuration file).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest

from gbifxdl.cli.run import merged_options, run, settings_from_context
from gbifxdl.run.config import CLI_ONLY, RUN_OPTIONS, TOP, read_config, section_classes, stage_classes, toml_value


def _toml(values: dict[str, Any]) -> str:
    """Return a TOML file holding ``values`` ({section or TOP: {key: value}})."""
    lines = [f"{k} = {toml_value(v)}" for k, v in values.get(TOP, {}).items()]
    for section, keys in values.items():
        if section != TOP:
            lines += [f"[{section}]"] + [f"{k} = {toml_value(v)}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


def _samples(param: click.Parameter) -> tuple[Any, Any, list[str], list[str]]:
    """Return (value A, value B, args giving A, args giving B) for a parameter, A != B."""
    flag = param.opts[0] if param.opts else None
    if isinstance(param, click.Option) and param.is_flag:
        return False, True, [], [flag]  # a flag can only be given as set: A is "file says unset"
    if isinstance(param.type, click.Choice):
        choices = list(param.type.choices)
        a, b = choices[-1], choices[0]
        return a, b, [flag, a], [flag, b]
    if isinstance(param.type, click.types.IntParamType):
        return 7, 9, [flag, "7"], [flag, "9"]
    if param.name == "year":
        return "2001", "2002-2003", [flag, "2001"], [flag, "2002-2003"]
    if param.name == "taxon":
        return ("797",), ("7017",), [flag, "797"], [flag, "7017"]
    if getattr(param, "multiple", False):
        return ("AA",), ("BB", "CC"), [flag, "AA"], [flag, "BB", flag, "CC"]
    if isinstance(param, click.Argument):
        return "a.json", "b.json", [], ["b.json"]
    return "va", "vb", [flag, "va"], [flag, "vb"]


def _context(args: list[str], config: dict[str, Any] | None, tmp_path: Path) -> click.Context:
    if config is not None:
        path = tmp_path / "run.toml"
        path.write_text(_toml(config))
        args = [*args, "--config", str(path)]
    return run.make_context("run", list(args))


def _with_file_value(binding: Any, value: Any) -> dict[str, Any]:
    converted = binding.convert(value)
    converted = list(converted) if isinstance(converted, tuple) else converted
    config: dict[str, Any] = {}
    for section, key in binding.targets:
        config.setdefault(section, {})[key] = converted
    return config


def _lookup(merged: dict[str, Any], section: str, key: str) -> Any:
    return merged.get(key, "<absent>") if section == TOP else merged.get(section, {}).get(key, "<absent>")


PARAMS = [p for p in run.params if p.name not in CLI_ONLY]


def test_every_option_of_run_has_a_place_in_the_file() -> None:
    names = {p.name for p in run.params}
    assert names == set(RUN_OPTIONS) | CLI_ONLY, "a new option of `run` needs a binding in config.RUN_OPTIONS"
    classes = section_classes()
    for binding in RUN_OPTIONS.values():
        for section, key in binding.targets:
            assert key in {f.name for f in dataclasses.fields(classes[section])}, (section, key)


@pytest.mark.parametrize("param", PARAMS, ids=[p.name for p in PARAMS])
def test_command_line_beats_file_beats_default(param: click.Parameter, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("GBIF_API_URL", raising=False)
    binding = RUN_OPTIONS[param.name]
    a, b, args_a, args_b = _samples(param)

    # the file's value alone is used
    file_value = b if isinstance(param, click.Option) and param.is_flag else a
    merged = merged_options(_context([], _with_file_value(binding, file_value), tmp_path))
    for section, key in binding.targets:
        assert _lookup(merged, section, key) == binding.convert(file_value), (section, key)

    # the command line beats the file
    merged = merged_options(_context(args_b, _with_file_value(binding, a), tmp_path))
    for section, key in binding.targets:
        assert _lookup(merged, section, key) == binding.convert(b), (section, key)

    # neither: the key is absent, so the settings' default applies
    merged = merged_options(_context([], {}, tmp_path))
    for section, key in binding.targets:
        assert _lookup(merged, section, key) == "<absent>"


@pytest.mark.parametrize("param", [p for p in PARAMS if any(s in stage_classes() for s, _ in RUN_OPTIONS[p.name].targets)],
                         ids=lambda p: p.name)  # fmt: skip
def test_stage_options_reach_the_settings(param: click.Parameter, tmp_path: Path) -> None:
    binding = RUN_OPTIONS[param.name]
    a, b, args_a, args_b = _samples(param)
    base = ["--key", "0000001-250101000000000", "-o", str(tmp_path / "ds")]
    classes = stage_classes()
    defaults = {name: cls() for name, cls in classes.items()}
    file_value = b if isinstance(param, click.Option) and param.is_flag else a
    from_file = settings_from_context(_context(base, _with_file_value(binding, file_value), tmp_path))
    from_cli = settings_from_context(_context([*base, *args_b], _with_file_value(binding, a), tmp_path))
    neither = settings_from_context(_context(base, None, tmp_path))
    for section, key in binding.targets:
        assert getattr(getattr(from_file, section), key) == binding.convert(file_value)
        assert getattr(getattr(from_cli, section), key) == binding.convert(b)
        assert getattr(getattr(neither, section), key) == getattr(defaults[section], key)


def test_media_type_from_the_file_reaches_the_predicate(tmp_path: Path) -> None:
    base = ["-o", str(tmp_path / "ds")]
    config = {"source": {"taxon": [797], "media_type": "Sound"}}
    predicate = settings_from_context(_context(base, config, tmp_path)).source.predicate
    assert {"type": "equals", "key": "MEDIA_TYPE", "value": "Sound"} in predicate["predicates"]
    predicate = settings_from_context(_context([*base, "--media-type", "any"], config, tmp_path)).source.predicate
    assert predicate == {"type": "equals", "key": "TAXON_KEY", "value": "797"}
    predicate = settings_from_context(_context(base, {"source": {"taxon": [797]}}, tmp_path)).source.predicate
    assert {"type": "equals", "key": "MEDIA_TYPE", "value": "StillImage"} in predicate["predicates"]


def test_lenient_from_the_file_accepts_a_fuzzy_name(tmp_path: Path) -> None:
    from gbifxdl.query import NameMatchError
    from gbifxdl.testing.local import LocalGbifSettings, local_gbif

    with local_gbif(LocalGbifSettings(n_occurrences=10, n_hosts=1)) as local:
        source = {"taxon": ["Vanesa atalanta"], "media_type": "any", "api_url": local.api_url}
        base = ["-o", str(tmp_path / "ds")]
        with pytest.raises(NameMatchError):
            settings_from_context(_context(base, {"source": source}, tmp_path))
        settings = settings_from_context(_context(base, {"source": {**source, "lenient": True}}, tmp_path))
    assert settings.source.predicate == {"type": "equals", "key": "TAXON_KEY", "value": "1898286"}


BAD = [
    ("[fetch]\nresize = \"big\"\n", ['[fetch] resize = "big"', "whole number"]),
    ("[fetch]\nlayout = \"tiles\"\n", ['[fetch] layout = "tiles"', "'folders' or 'webdataset'"]),
    ("[fetch]\njpeg_quality = 0\n", ["[fetch] jpeg_quality = 0", "between 1 and 100"]),
    ("[curate]\nfractions = [0.5, 0.5]\n", ["[curate] fractions = [0.5, 0.5]", "a list of 3 numbers"]),
    ("[curate]\ncross_class_duplicates = \"maybe\"\n", ['cross_class_duplicates = "maybe"', "keep-one"]),
    ("[select]\nmax_per_class = 2.5\n", ["[select] max_per_class = 2.5", "whole number"]),
    ("[select]\nlicenses = [1, 2]\n", ["[select] licenses = [1, 2]", "list of quoted strings"]),
    ("[wait]\ntimeout = \"1d\"\n", ['[wait] timeout = "1d"', "a number"]),
    # issue 20, item 1: checked before the request is posted, named as every other setting is
    ("[wait]\nmin_interval = -1\n", ["[wait] min_interval = -1", "above 0"]),
    ("[wait]\nmin_interval = 60\nmax_interval = 10\n", ["[wait] max_interval = 10", "at least min_interval"]),
    ("[source]\nlenient = \"yes\"\n", ['[source] lenient = "yes"', "true or false"]),
    ("[source]\nmedia_type = 3\n", ["[source] media_type = 3", "quoted string"]),
    ("report = 1\n", ["report = 1", "true or false"]),
    ("[fetch]\nresise = 5\n", ["[fetch]: unknown setting(s) resise", "resize"]),
    ("fetch = 5\n", ["fetch = 5", "[fetch] section"]),
    ("[fetch\n", ["not valid TOML"]),
]


@pytest.mark.slow
@pytest.mark.parametrize(("text", "expected"), BAD, ids=[t.splitlines()[-1] for t, _ in BAD])
def test_a_bad_value_in_the_file_is_one_line(tmp_path: Path, text: str, expected: list[str]) -> None:
    (tmp_path / "bad.toml").write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GBIF_")}
    done = subprocess.run([sys.executable, "-m", "gbifxdl", "run", "--config", "bad.toml", "--key", "k", "-o", "x"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "bad.toml" in lines[0] and all(e in lines[0] for e in expected), lines[0]
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("section", ["wait", "select", "fetch", "curate"])
def test_every_setting_is_type_checked(tmp_path: Path, section: str) -> None:
    """A table where any setting expects a value: each key of each stage is refused by name."""
    from gbifxdl.errors import ConfigError

    for f in dataclasses.fields(stage_classes()[section]):
        path = tmp_path / f"{section}-{f.name}.toml"
        path.write_text(f"[{section}]\n{f.name} = {{ a = 1 }}\n")
        with pytest.raises(ConfigError) as caught:
            read_config(path)
        message = str(caught.value)
        assert f"[{section}] {f.name} = {{a = 1}}: expected " in message and "\n" not in message


def test_defaults_of_the_file_equal_the_settings_defaults(tmp_path: Path) -> None:
    settings = settings_from_context(_context(["--key", "0000001-250101000000000", "-o", "ds"], {}, tmp_path))
    for name, cls in stage_classes().items():
        assert getattr(settings, name) == cls()
    assert settings.report is True and settings.source.format == "DWCA" and settings.source.notification is False


def test_the_cluster_comes_from_the_command_line_or_the_cluster_section(tmp_path: Path) -> None:
    from gbifxdl.errors import ConfigError

    base = ["--key", "0000001-250101000000000", "-o", str(tmp_path / "ds")]
    assert settings_from_context(_context(base, {}, tmp_path)).cluster is None
    from_file = settings_from_context(_context(base, {"cluster": {"address": "tcp://10.0.0.1:8786"}}, tmp_path))
    assert from_file.cluster == "tcp://10.0.0.1:8786"
    from_cli = settings_from_context(_context([*base, "--cluster", "local:2"],
                                              {"cluster": {"address": "tcp://10.0.0.1:8786"}}, tmp_path))
    assert from_cli.cluster == "local:2"
    with pytest.raises(ConfigError, match="cluster 'laptop': expected local:N"):
        settings_from_context(_context([*base, "--cluster", "laptop"], {}, tmp_path))


def test_a_key_several_stages_read_is_written_once_and_reaches_each(tmp_path: Path) -> None:
    # issue 20, item 14: `init` wrote class_column in [select], [fetch] and [curate] and media_type in
    # [source] and [select]; a user who changed one of them got a dataset whose caps, folders and
    # splits disagreed on what a class is. One key, one place; the run gives its value to each stage.
    from gbifxdl.cli.run import _stage_sections
    from gbifxdl.errors import ConfigError
    from gbifxdl.run.config import SHARED_KEYS, default_config_text

    text = default_config_text(_stage_sections())
    assert "\n[cluster]\n" in text and "# address = " in text
    for key in SHARED_KEYS:
        assert len([line for line in text.splitlines() if line.startswith(f"{key} = ")]) == 1, key
    base = ["--key", "0000001-250101000000000", "-o", "ds"]
    settings = settings_from_context(_context(base, {"select": {"class_column": "genusKey"},
                                                     "source": {"media_type": "any"}}, tmp_path))
    assert settings.select.class_column == settings.fetch.class_column == settings.curate.class_column == "genusKey"
    assert settings.select.media_type == "StillImage"  # GBIF asked for any media; select keeps images
    images = settings_from_context(_context(base, {"source": {"media_type": "StillImage"}}, tmp_path))
    assert images.select.media_type == "StillImage"
    same = {"select": {"class_column": "genusKey"}, "curate": {"class_column": "genusKey"}}
    assert settings_from_context(_context(base, same, tmp_path)).fetch.class_column == "genusKey"
    differ = {"select": {"class_column": "genusKey"}, "fetch": {"class_column": "familyKey"}}
    with pytest.raises(ConfigError) as caught:
        settings_from_context(_context(base, differ, tmp_path))
    message = str(caught.value)
    assert "[fetch] class_column" in message and "[select]" in message and "\n" not in message
