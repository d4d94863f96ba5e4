"""Curation rules on model results, as written by the user: parsed and checked before anything runs.

``gbifxdl infer`` only measures; these rules decide. They are text, the same on the command
line, in the configuration file's ``[curate]`` section and in :class:`CurateSettings`:

- a label rule (``keep`` / ``drop``): ``MODEL.label in [a, b]``, ``MODEL.label not in [a, b]``,
  ``MODEL.label == a`` or ``MODEL.label != a``; MODEL is the model's results folder name
  (the ``.onnx`` file's stem, or ``gbifxdl infer --name``);
- a number per model (``min_score``, ``max_outlier``): ``MODEL=0.8``.

Every problem is a one-line :class:`ConfigError` that shows the rule and how to write it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gbifxdl.errors import ConfigError

_LABEL = re.compile(r"^\s*(?P<model>[^\s=\[\]]+)\.label\s*(?P<op>not\s+in|in|==|!=)\s*(?P<value>.*?)\s*$")
_NUMBER = re.compile(r"^\s*(?P<model>[^\s=]+)\s*=\s*(?P<value>\S+)\s*$")
LABEL_HELP = "write MODEL.label in [a, b] (or not in, ==, !=), e.g. 'cleaner.label in [adult]'"


@dataclass(frozen=True)
class LabelRule:
    """One keep or drop rule: images whose label of ``model`` is (``inside``) or is not in ``labels``."""

    text: str
    action: str  # "keep" or "drop"
    model: str
    labels: frozenset[str]
    inside: bool

    def matches(self, label: str) -> bool:
        """Return whether an image with ``label`` satisfies the rule's condition."""
        return (label in self.labels) == self.inside


def _labels(value: str, text: str, setting: str) -> frozenset[str]:
    if value.startswith("["):
        if not value.endswith("]"):
            raise ConfigError(f"{setting}={text!r}: the list of labels has no closing ']'; {LABEL_HELP}")
        items = [v.strip().strip("'\"") for v in value[1:-1].split(",")]
    else:
        items = [value.strip("'\"")]
    items = [v for v in items if v]
    if not items:
        raise ConfigError(f"{setting}={text!r}: no label given; {LABEL_HELP}")
    return frozenset(items)


def label_rule(text: str, action: str) -> LabelRule:
    """Return the rule ``text`` of setting ``action`` (``keep`` or ``drop``), or raise a one-line ConfigError."""
    found = _LABEL.match(text) if isinstance(text, str) else None
    if found is None:
        raise ConfigError(f"{action}={text!r} is not a rule; {LABEL_HELP}")
    op = " ".join(found["op"].split())
    labels = _labels(found["value"], text, action)
    if op in ("==", "!=") and len(labels) > 1:
        raise ConfigError(f"{action}={text!r}: {op} takes one label; use 'in [...]' for several")
    return LabelRule(text.strip(), action, found["model"], labels, op in ("in", "=="))


def model_number(text: str, setting: str, low: float, high: float, example: str) -> tuple[str, float]:
    """Return (model, number) of ``MODEL=NUMBER`` with the number in [low, high], or raise a one-line ConfigError."""
    found = _NUMBER.match(text) if isinstance(text, str) else None
    value = None
    if found is not None:
        try:
            value = float(found["value"])
        except ValueError:
            value = None
    if found is None or value is None:
        raise ConfigError(f"{setting}={text!r}; write MODEL=NUMBER, e.g. {example!r}")
    if not low <= value <= high:
        raise ConfigError(f"{setting}={text!r}: {value:g} is outside {low:g}..{high:g}; e.g. {example!r}")
    return found["model"], value


def model_numbers(texts: tuple[str, ...], setting: str, low: float, high: float, example: str) -> dict[str, float]:
    """Return {model: number} of every ``MODEL=NUMBER`` of a setting (a model named twice is an error)."""
    out: dict[str, float] = {}
    for text in texts:
        model, value = model_number(text, setting, low, high, example)
        if model in out:
            raise ConfigError(f"{setting} names model {model!r} twice; give one number per model")
        out[model] = value
    return out


@dataclass(frozen=True)
class Rules:
    """Every model rule of one curation, parsed."""

    labels: tuple[LabelRule, ...] = ()
    min_score: dict[str, float] | None = None
    max_outlier: dict[str, float] | None = None
    crop: str | None = None
    crop_padding: float = 0.0
    crop_square: bool = False
    no_detection: str = "keep"

    @property
    def models(self) -> list[str]:
        """Return every model the rules name, in the order first named."""
        names = [r.model for r in self.labels] + list(self.min_score or {}) + list(self.max_outlier or {})
        names += [self.crop] if self.crop else []
        return list(dict.fromkeys(names))

    def __bool__(self) -> bool:
        return bool(self.models)


NO_DETECTION = ("keep", "drop")


def parse(keep: tuple[str, ...], drop: tuple[str, ...], min_score: tuple[str, ...], max_outlier: tuple[str, ...],
          crop: str | None, crop_padding: float, crop_square: bool, no_detection: str) -> Rules:
    """Return the parsed rules of curation settings, or raise a one-line ConfigError."""
    if no_detection not in NO_DETECTION:
        raise ConfigError(f"no_detection={no_detection!r}; use keep (the image uncropped) or drop")
    if not 0 <= crop_padding <= 10:
        raise ConfigError(f"crop_padding={crop_padding}; use a share of the box added on every side, 0..10 (e.g. 0.1)")
    if crop is not None and (not crop or any(c in crop for c in "/\\=[] ")):
        raise ConfigError(f"crop={crop!r}; name a detector's results folder, e.g. flat_bug_M")
    return Rules(
        labels=tuple(label_rule(t, "keep") for t in keep) + tuple(label_rule(t, "drop") for t in drop),
        min_score=model_numbers(min_score, "min_score", 0.0, 1.0, "cleaner=0.8"),
        max_outlier=model_numbers(max_outlier, "max_outlier", 0.0, 2.0, "bioclip=0.5"),
        crop=crop, crop_padding=float(crop_padding), crop_square=bool(crop_square), no_detection=no_detection,
    )
