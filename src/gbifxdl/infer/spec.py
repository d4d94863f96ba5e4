"""A model and how to feed it: the ``.onnx`` file and its JSON sidecar (issue 21).

The sidecar sits beside the model with the same stem (``cleaner.onnx`` -> ``cleaner.json``)::

    {
      "kind": "classifier",            # classifier | embedder | detector
      "input_name": "images",          # optional: the model's first input
      "input_size": [224, 224],        # [height, width] (or one number: square)
      "resize": "centre-crop",         # letterbox | centre-crop | squash
      "mean": [0.485, 0.456, 0.406],   # on pixels scaled to 0..1, RGB; default 0
      "std": [0.229, 0.224, 0.225],    # default 1
      "layout": "NCHW",                # or NHWC
      "labels": ["adult", "larva"],    # classifier: one name per output
      "output": "logits",              # classifier: logits | probabilities; embedder: embedding
      "top_k": 3                       # classifier: labels kept per image
    }

Every problem with a sidecar or a model is a :class:`ModelError`, one line naming the file
and the field.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gbifxdl.errors import ConfigError

KINDS = ("classifier", "embedder", "detector")
RESIZE_MODES = ("letterbox", "centre-crop", "squash")
OUTPUTS = {"classifier": ("logits", "probabilities"), "embedder": ("embedding",), "detector": ("yolo",)}
_ALIASES = {"center-crop": "centre-crop", "centre_crop": "centre-crop", "center_crop": "centre-crop"}
_FIELDS = {"kind", "input_name", "input_size", "resize", "mean", "std", "layout", "labels", "output", "top_k",
           "pad_value", "conf_threshold", "iou_threshold", "max_detections"}


class ModelError(ConfigError):
    """A model, its sidecar or its label matrix cannot be used as given."""


@dataclass(frozen=True)
class ModelSpec:
    """What a model is and how its input is made; read from the sidecar by :func:`load_spec`."""

    kind: str
    input_size: tuple[int, int]  # (height, width)
    resize: str = "squash"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    layout: str = "NCHW"
    input_name: str | None = None
    labels: tuple[str, ...] = ()
    output: str = ""
    top_k: int = 1
    pad_value: int = 114  # letterbox padding, as Ultralytics pads
    conf_threshold: float = 0.25  # detector
    iou_threshold: float = 0.45  # detector
    max_detections: int = 100  # detector

    def to_json(self) -> dict[str, Any]:
        """Return the spec as the JSON object a sidecar would hold (with every default filled)."""
        out = asdict(self)
        out["input_size"] = list(self.input_size)
        for name in ("mean", "std", "labels"):
            out[name] = list(out[name])
        return out


def sidecar_path(model_path: Path) -> Path:
    """Return where the sidecar of ``model_path`` is: beside it, same stem, ``.json``."""
    return model_path.with_suffix(".json")


def _triple(value: Any, name: str, where: Path) -> tuple[float, float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value] * 3
    if (not isinstance(value, list) or len(value) != 3
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise ModelError(f"{where}: {name!r} must be three numbers (R, G, B), not {value!r}")
    return (float(value[0]), float(value[1]), float(value[2]))


def parse_spec(data: Any, where: Path, kind: str | None = None) -> ModelSpec:
    """Return the :class:`ModelSpec` a sidecar's JSON object describes; ``kind`` overrides its kind."""
    if not isinstance(data, dict):
        raise ModelError(f"{where}: a model sidecar is a JSON object, not {type(data).__name__}")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ModelError(f"{where}: unknown field {unknown[0]!r} (known: {', '.join(sorted(_FIELDS))})")
    kind = kind or data.get("kind")
    if kind not in KINDS:
        raise ModelError(f"{where}: 'kind' must be one of {', '.join(KINDS)} (or give --kind), not {kind!r}")
    if data.get("kind") not in (None, kind):
        raise ModelError(f"{where}: the sidecar says kind {data['kind']!r}, the command {kind!r}; change one")
    size = data.get("input_size")
    if isinstance(size, int) and not isinstance(size, bool):
        size = [size, size]
    if (not isinstance(size, list) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        raise ModelError(f"{where}: 'input_size' must be [height, width] in pixels (or one number), not {size!r}")
    resize = _ALIASES.get(data.get("resize", "letterbox" if kind == "detector" else "squash"),
                          data.get("resize", "letterbox" if kind == "detector" else "squash"))
    if resize not in RESIZE_MODES:
        raise ModelError(f"{where}: 'resize' must be one of {', '.join(RESIZE_MODES)}, not {data['resize']!r}")
    layout = data.get("layout", "NCHW")
    if layout not in ("NCHW", "NHWC"):
        raise ModelError(f"{where}: 'layout' must be NCHW or NHWC, not {layout!r}")
    std = _triple(data.get("std", 1.0), "std", where)
    if any(s == 0 for s in std):
        raise ModelError(f"{where}: 'std' must not hold a zero")
    labels = data.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(v, str) for v in labels):
        raise ModelError(f"{where}: 'labels' must be a list of names")
    if kind == "classifier" and not labels:
        raise ModelError(f"{where}: a classifier needs 'labels', one name per output")
    output = data.get("output", OUTPUTS[kind][0])
    if output not in OUTPUTS[kind]:
        raise ModelError(f"{where}: 'output' of a {kind} must be one of {', '.join(OUTPUTS[kind])}, not {output!r}")
    top_k = data.get("top_k", 1)
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise ModelError(f"{where}: 'top_k' must be a whole number of at least 1, not {top_k!r}")
    name = data.get("input_name")
    if name is not None and not isinstance(name, str):
        raise ModelError(f"{where}: 'input_name' must be a string")
    numbers = {}
    for key, low, high in (("pad_value", 0, 255), ("conf_threshold", 0, 1), ("iou_threshold", 0, 1),
                           ("max_detections", 1, None)):
        if key in data:
            value = data[key]
            if (not isinstance(value, (int, float)) or isinstance(value, bool) or value < low
                    or (high is not None and value > high)):
                raise ModelError(f"{where}: {key!r} must be a number from {low} to {high or 'any'}, not {value!r}")
            numbers[key] = value
    return ModelSpec(kind=kind, input_size=(size[0], size[1]), resize=resize,
                     mean=_triple(data.get("mean", 0.0), "mean", where), std=std, layout=layout,
                     input_name=name, labels=tuple(labels), output=output, top_k=min(top_k, max(len(labels), 1)),
                     **numbers)  # type: ignore[arg-type]


def load_spec(model_path: str | Path, kind: str | None = None) -> ModelSpec:
    """Return the spec of ``model_path`` read from its sidecar (``kind`` overrides the sidecar's)."""
    model_path = Path(model_path)
    if model_path.suffix != ".onnx":
        raise ModelError(f"{model_path}: give an ONNX model (a .onnx file)")
    if not model_path.is_file():
        raise ModelError(f"{model_path}: no such model file")
    side = sidecar_path(model_path)
    if not side.is_file():
        raise ModelError(f"{model_path}: its sidecar {side.name} is missing (kind, input_size, resize, mean, std, "
                         "labels; see the README's Models section)")
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{side}: not readable JSON ({' '.join(str(exc).split())})") from None
    return parse_spec(data, side, kind)
