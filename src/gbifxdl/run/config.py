"""The run configuration file (TOML), and the one place where it meets the command line.

Sections mirror the stages: ``[source]``, ``[wait]``, ``[select]``, ``[fetch]``,
``[curate]``; each key of the last four is a field of that stage's settings dataclass,
so the file and the Python API can never drift apart, and a new field is a new key.
Values are checked against the fields' types when the file is read.

:func:`merge` decides every value of ``gbifxdl run``: an option given on the command line
(or through its environment variable) wins; otherwise the file's value; otherwise the
default of the settings dataclass. :data:`RUN_OPTIONS` says where each option of ``run``
lands in the file.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from gbifxdl._config_types import check_section, show
from gbifxdl.errors import ConfigError, GbifxdlError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TOP = ""  # the file's top level (output, report), as a section name


@dataclass(frozen=True)
class TopOptions:
    """The keys at the top of the file."""

    output: str | None = None  # the dataset folder
    report: bool = True  # write README.md, ATTRIBUTION.csv and report.html


@dataclass(frozen=True)
class SourceOptions:
    """The ``[source]`` keys: where the occurrences come from, as the user writes it."""

    payload: str | None = None  # a predicate or full request body (JSON file)
    taxon: tuple[str | int, ...] = ()  # names or GBIF taxon keys
    country: tuple[str, ...] = ()
    year: str | int | None = None  # 2020, "2015-2024", "2015-", "-2010"
    basis_of_record: tuple[str, ...] = ()
    license: tuple[str, ...] = ()
    dataset_key: tuple[str, ...] = ()
    media_type: str = "StillImage"  # or "any"
    lenient: bool = False  # accept fuzzy and higher-rank name matches
    key: str | None = None  # an existing GBIF download
    archive: str | None = None  # an archive already on disk
    api_url: str | None = None
    format: str = "DWCA"
    notification: bool = False
    route: str = "download"  # "search": GBIF's occurrence search API, no account (up to 100,000 records); "auto"


SOURCE_KEYS = tuple(f.name for f in dataclasses.fields(SourceOptions))


@dataclass(frozen=True)
class ClusterOptions:
    """The ``[cluster]`` keys: where the fetch runs (nothing: this machine, without Dask)."""

    address: str | None = None  # "local:N" (N workers here), "slurm:N"/"pbs:N" (N batch jobs) or "tcp://HOST:8786"
    # batch jobs (address "slurm" or "pbs"; keys given in the address win): see gbifxdl.fetch._jobqueue
    jobs: int | None = None  # jobs kept running, one Dask worker each
    cores: int | None = None  # CPU cores each job asks for
    memory: str | None = None  # memory each job asks for, "16GB"
    walltime: str | None = None  # each job's time limit, "[D-]HH:MM:SS"
    queue: str | None = None  # partition (Slurm) or queue (PBS)
    account: str | None = None  # account the jobs are charged to
    interface: str | None = None  # the workers' network interface, "ib0"
    host: str | None = None  # the address the scheduler listens on (default: every interface)

    def job_keys(self) -> dict[str, Any]:
        """Return the batch-job keys that are set."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "address" and getattr(self, f.name) is not None}


def stage_classes() -> dict[str, type]:
    """Return {section: settings dataclass} of the stage sections, in pipeline order."""
    from gbifxdl.curate import CurateSettings
    from gbifxdl.fetch import FetchSettings
    from gbifxdl.run._job import WaitSettings
    from gbifxdl.select import SelectSettings

    return {"wait": WaitSettings, "select": SelectSettings, "fetch": FetchSettings, "curate": CurateSettings}


def section_classes() -> dict[str, type]:
    """Return {section: dataclass} of every part of the file, the top level included."""
    return {TOP: TopOptions, "source": SourceOptions, "cluster": ClusterOptions, **stage_classes()}


@dataclass(frozen=True)
class Binding:
    """Where one option of ``gbifxdl run`` lands: (section, key) targets, and how its value converts."""

    targets: tuple[tuple[str, str], ...]
    convert: Callable[[Any], Any] = lambda value: value


def _text(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def _source(key: str) -> Binding:
    return Binding((("source", key),), _text)


# every option of `gbifxdl run` that a file can hold too (tests walk the command's
# parameters: an option must be here or in CLI_ONLY)
RUN_OPTIONS: dict[str, Binding] = {
    "payload": _source("payload"),
    "output": Binding(((TOP, "output"),), _text),
    **{name: _source(name) for name in ("taxon", "country", "year", "basis_of_record", "license",
                                        "dataset_key", "media_type", "lenient", "key", "archive", "api_url")},
    "source": _source("route"),
    "max_per_class": Binding((("select", "max_per_class"),)),
    "min_per_class": Binding((("select", "min_per_class"),)),
    "all_images": Binding((("select", "one_per_occurrence"),), lambda all_images: not all_images),
    "layout": Binding((("fetch", "layout"),)),
    "resize": Binding((("fetch", "resize"),)),
    "jpeg_quality": Binding((("fetch", "jpeg_quality"),)),
    "connections": Binding((("fetch", "connections"),)),
    "per_host": Binding((("fetch", "per_host"),)),
    "seed": Binding((("select", "seed"), ("curate", "seed"))),
    "cluster": Binding((("cluster", "address"),)),
    "no_report": Binding(((TOP, "report"),), lambda no_report: not no_report),
}  # fmt: skip
CLI_ONLY = frozenset({"config_path", "allow_changed_settings", "no_progress", "quiet"})


# keys that several stages read: each is written once, in its home section, and the run gives its
# value to the other sections (issue 20, item 14). key -> (home section, the other sections)
SHARED_KEYS: dict[str, tuple[str, tuple[str, ...]]] = {
    # the query's media type is the one select keeps; "any" asks GBIF for every occurrence, whatever its
    # media, and select still keeps still images (the media a dataset of images can use)
    "media_type": ("source", ("select",)),
    "class_column": ("select", ("fetch", "curate")),  # what a class is: caps, folders, splits
}


_SELECT_MEDIA = "StillImage"  # what select keeps when the query asks for any media type


def _shared_value(key: str, section: str, value: Any) -> Any:
    """Return a shared key's value as ``section``'s settings take it (select's media type: None for any)."""
    if key == "media_type" and section == "select" and isinstance(value, str) and value.lower() == "any":
        return _SELECT_MEDIA
    return value


def _comparable(key: str, value: Any) -> Any:
    """Return a shared key's value as compared between sections (media types ignore case)."""
    if key == "media_type":
        return _SELECT_MEDIA.lower() if value is None or str(value).lower() == "any" else str(value).lower()
    return value


def unify_shared(merged: Mapping[str, Any], where: Callable[[str, str, Any], str]) -> dict[str, Any]:
    """Return ``merged`` (the shape :func:`merge` returns) with every shared key's one value in each
    section that reads it. A shared key given in several sections must say the same everywhere;
    ``where(section, key, value)`` names a value's origin in the error."""
    out: dict[str, Any] = {k: dict(v) if isinstance(v, dict) else v for k, v in merged.items()}
    for key, (home, others) in SHARED_KEYS.items():
        given = [(s, out[s][key]) for s in (home, *others) if isinstance(out.get(s), dict) and key in out[s]]
        if not given:
            continue
        section, value = given[0]
        for other, seen in given[1:]:
            if _comparable(key, seen) != _comparable(key, value):
                raise ConfigError(f"{where(other, key, seen)} differs from {where(section, key, value)}: "
                                  f"write {key} once, in [{home}]; the run gives it to "
                                  + ", ".join(f"[{o}]" for o in others))
        for target in (home, *others):
            out.setdefault(target, {})[key] = _shared_value(key, target, value)
    return out


def read_config(path: str | Path) -> dict[str, Any]:
    """Return the TOML file's values, each checked against its field's type.

    The result has the file's shape: ``output`` and ``report`` at the top, a dict per section.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found; `gbifxdl init` writes one") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    classes = section_classes()
    top_keys = {f.name for f in dataclasses.fields(TopOptions)}
    allowed = top_keys | set(classes) - {TOP} | {MODELS}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"config file {path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    checked: dict[str, Any] = check_section(TopOptions, {k: data[k] for k in top_keys if k in data}, where=f"config file {path}:")
    for name, cls in classes.items():
        if name == TOP or name not in data:
            continue
        if not isinstance(data[name], dict):
            raise ConfigError(f"config file {path}: {name} = {show(data[name])}: expected a [{name}] section")
        checked[name] = check_section(cls, data[name], where=f"config file {path}: [{name}]")
    if MODELS in data:
        checked[MODELS] = read_model_steps(data[MODELS], f"config file {path}:")
    return checked


MODELS = "models"  # the [[models]] steps: an array of tables


def read_model_steps(value: Any, where: str) -> list[dict[str, Any]]:
    """Return the ``[[models]]`` tables checked against :class:`~gbifxdl.run._models.ModelStep`'s keys."""
    from gbifxdl.run._models import CONFIG_KEYS, ModelStep

    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"{where} models = {show(value)}: expected [[models]] tables, one per model")
    steps = []
    for number, table in enumerate(value, 1):
        here = f"{where} [[models]] #{number}"
        unknown = sorted(set(table) - set(CONFIG_KEYS))
        if unknown:
            raise ConfigError(f"{here}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(CONFIG_KEYS)}")
        if "model" not in table:
            raise ConfigError(f"{here}: no model = \"FILE.onnx\"")
        steps.append(check_section(ModelStep, table, where=here))
    return steps


def model_steps(values: list[dict[str, Any]] | None) -> tuple[Any, ...]:
    """Return the ModelStep of each checked ``[[models]]`` table (a bad value said in one line)."""
    from gbifxdl.run._models import ModelStep, check_steps

    steps = []
    for number, table in enumerate(values or (), 1):
        try:
            steps.append(ModelStep(**table))
        except GbifxdlError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"[[models]] #{number} ({table.get('model')}): {_one_line(exc)}") from None
    check_steps(tuple(steps))
    return tuple(steps)


def merge(config: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """Return the file's values overridden by the options given on the command line.

    ``config`` is what :func:`read_config` returns; ``given`` holds only the options the
    user gave (by name of ``run``'s parameters). The result has the file's shape; a key
    absent from it takes the settings' default.
    """
    merged: dict[str, Any] = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    for name, value in given.items():
        if name in CLI_ONLY:
            continue
        binding = RUN_OPTIONS.get(name)
        if binding is None:
            raise ConfigError(f"option {name!r} of `gbifxdl run` has no place in the configuration")  # a bug
        converted = binding.convert(value)
        for section, key in binding.targets:
            if section == TOP:
                merged[key] = converted
            else:
                merged.setdefault(section, {})[key] = converted
    return merged


def build_section(cls: type, values: Mapping[str, Any], *, section: str,
                  origin: Callable[[str, Any], str] | None = None) -> Any:
    """Return ``cls`` built from ``values`` (defaults elsewhere); an invalid value is named in one line.

    ``origin(key, value)`` says where a value came from (e.g. "config file F: [fetch] resize = 0"
    or "--resize 0"); by default "[section] key = value".
    """
    origin = origin or (lambda key, value: f"[{section}] {key} = {show(value)}")
    try:
        return cls(**values)
    except (GbifxdlError, TypeError, ValueError) as exc:
        problem = _one_line(exc)
    for key, value in values.items():  # name the key at fault, when one alone is
        try:
            cls(**{key: value})
        except (GbifxdlError, TypeError, ValueError) as exc:
            raise ConfigError(f"{origin(key, value)}: {_one_line(exc)}") from None
    raise ConfigError(f"{'; '.join(origin(k, v) for k, v in values.items())}: {problem}")


def settings_from(cls: type, values: Mapping[str, Any], *, section: str, base: Any = None) -> Any:
    """Return a settings dataclass built from ``values`` (checked, lists as tuples) over ``base``."""
    checked = check_section(cls, dict(values), where=f"[{section}]")
    if base is not None:
        checked = {**{f.name: getattr(base, f.name) for f in dataclasses.fields(cls)}, **checked}
    return build_section(cls, checked, section=section)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


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
        'media_type = "StillImage"            # or "any"',
        "# lenient = false                    # accept fuzzy and higher-rank name matches",
        '# key = "0026011-250827131500795"   # an existing GBIF download',
        '# archive = "path/to/KEY.zip"       # an archive already on disk',
        '# api_url = "https://api.gbif.org/v1"',
        '# format = "DWCA"',
        "# notification = false               # ask GBIF to e-mail when the archive is ready",
        '# route = "download"                 # "search": no account, up to 100,000 records or capped; "auto"',
        "# Credentials never go here: use GBIF_USER / GBIF_PWD / GBIF_EMAIL, a .env file or ~/.netrc.",
    ]
    lines += ["", "[cluster]",
              '# address = "local:4"                # fetch on a Dask cluster: N local workers, or a running',
              '#                                    # scheduler "tcp://HOST:8786" (pip install \'gbifxdl[dask]\'),',
              '#                                    # or "slurm" / "pbs": workers as batch jobs (\'gbifxdl[slurm]\')',
              "# jobs = 4                           # batch jobs kept running, one Dask worker each",
              "# cores = 8                          # CPU cores each job asks for (its image processes)",
              '# memory = "16GB"                    # memory each job asks for',
              '# walltime = "02:00:00"              # each job\'s limit; workers retire before it, new jobs replace them',
              '# queue = "short"                    # partition (Slurm) or queue (PBS)',
              '# account = "mylab"                  # account the jobs are charged to',
              '# interface = "ib0"                  # the workers\' network interface',
              '# host = "10.0.0.5"                  # the address the scheduler listens on (default: all)']
    for name, obj in sections.items():
        lines += ["", f"[{name}]"]
        for f in dataclasses.fields(obj):
            home = SHARED_KEYS.get(f.name, (name, ()))[0]
            if home != name:  # written once, in its home section
                lines.append(f"# {f.name}: see [{home}]")
                continue
            value = getattr(obj, f.name)
            rendered = toml_value(value)
            lines.append(f"{f.name} = {rendered}" if rendered is not None else f"# {f.name} =   (unset)")
    lines += MODELS_EXAMPLE
    return "\n".join(lines) + "\n"


# `gbifxdl init`'s example of a model step, commented out (README "Models")
MODELS_EXAMPLE = [
    "",
    "# Models (pip install 'gbifxdl[infer]'): each [[models]] step runs an ONNX model over every fetched",
    "# image between fetch and curate; [curate] decides on the results, e.g.",
    '#   keep = ["cleaner.label in [adult]"]  min_score = ["cleaner=0.8"]  crop = "flat_bug"',
    "# A rerun measures nothing twice; a changed model file is measured again, alone.",
    "# [[models]]",
    '# model = "cleaner.onnx"              # its sidecar, cleaner.json, beside it: kind, input size, labels...',
    '# name = "cleaner"                    # its name in the rules (default: the file\'s stem)',
    '# kind = "classifier"                 # or "detector", "embedder" (default: the sidecar\'s)',
    '# labels = "labels.npz"               # embedders: label names and text embeddings, for zero-shot labels',
    "# batch_size = 32",
    '# device = "cpu"                      # "cuda": pip install \'gbifxdl[gpu]\'; no CUDA provider is an error',
    "# workers = 3                         # decode processes",
]


def toml_value(value: Any) -> str | None:
    """Return ``value`` written as TOML (None for a value TOML cannot hold: leave the key out)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (tuple, list)):
        items = [toml_value(v) for v in value]
        return "[" + ", ".join(i for i in items if i is not None) + "]"
    return json.dumps(str(value))
