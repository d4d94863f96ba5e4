"""The run's model steps: the ``[[models]]`` of the configuration file, run between fetch and curate.

Each step is one :func:`gbifxdl.infer.infer` call. What decides a step's output is what
decides the model's results (the model file's sha256, its sidecar's and its label matrix's,
its name and kind): :func:`with_digests` reads them when the run starts, so a run of a
finished dataset whose models did not change does nothing, and a changed model makes the
run measure that model again (``infer`` keeps the others' results) and curate again.
Batch size, device and decode processes change no output.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gbifxdl._io import sha256_file
from gbifxdl.errors import ConfigError


@dataclass(frozen=True)
class ModelStep:
    """One ``[[models]]`` step: a model (with its JSON sidecar beside it) run over every image."""

    model: str = ""  # the .onnx file; its sidecar is the same name with .json
    name: str | None = None  # its name in the dataset and in the curate rules (default: the file's stem)
    kind: str | None = None  # classifier, embedder or detector (default: the sidecar's)
    labels: str | None = None  # embedders: an .npz of label names and text embeddings, for zero-shot labels
    batch_size: int = 32
    device: str = "cpu"  # "cuda": pip install 'gbifxdl[gpu]'; without the CUDA provider an error
    workers: int | None = None  # decode processes (default: the CPUs less one, at most 4)
    # filled by the run from the files (never written in the configuration): what decides the results
    sha256: str = ""
    sidecar_sha256: str = ""
    labels_sha256: str = ""

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("[[models]]: each model step needs model = \"FILE.onnx\"")
        where = f"[[models]] {self.model}:"
        if not self.model.endswith(".onnx"):
            raise ConfigError(f"{where} give an ONNX model (a .onnx file) with its JSON sidecar beside it")
        if self.kind is not None and self.kind not in ("classifier", "embedder", "detector"):
            raise ConfigError(f"{where} kind = {self.kind!r}: one of classifier, embedder, detector")
        if self.device not in ("cpu", "cuda"):
            raise ConfigError(f"{where} device = {self.device!r}: cpu or cuda")
        if self.batch_size < 1 or (self.workers is not None and self.workers < 0):
            raise ConfigError(f"{where} batch_size must be at least 1 and workers at least 0")
        name = self.step_name
        if not name or name.startswith(".") or "/" in name or "\\" in name:
            raise ConfigError(f"{where} name = {name!r}: a plain name (no slashes, not starting with a dot)")

    @property
    def step_name(self) -> str:
        """Return the model's name in the dataset: ``name``, or the model file's stem."""
        return self.name or Path(self.model).stem

    def outputs(self) -> dict[str, Any]:
        """Return what decides this step's results (compared between runs)."""
        return {"kind": self.kind, "sha256": self.sha256, "sidecar_sha256": self.sidecar_sha256,
                "labels_sha256": self.labels_sha256}


CONFIG_KEYS = tuple(f.name for f in dataclasses.fields(ModelStep) if not f.name.endswith("sha256"))


def check_steps(steps: tuple[ModelStep, ...]) -> None:
    """Raise a one-line ConfigError when two steps share a name."""
    seen: set[str] = set()
    for step in steps:
        if step.step_name in seen:
            raise ConfigError(f"[[models]]: two steps are named {step.step_name!r}; give one of them name = \"...\"")
        seen.add(step.step_name)


def with_digests(steps: tuple[ModelStep, ...]) -> tuple[ModelStep, ...]:
    """Return the steps with the sha256 of each model, sidecar and label matrix read from the files."""
    check_steps(steps)
    out = []
    for step in steps:
        model = Path(step.model)
        sidecar = model.with_suffix(".json")
        for path, what in ((model, "model"), (sidecar, "sidecar"), (Path(step.labels) if step.labels else None, "labels")):
            if path is not None and not path.is_file():
                raise ConfigError(f"[[models]] {step.step_name}: no {what} file {path}"
                                  + (" (the model's JSON sidecar, beside it: README \"Models\")" if what == "sidecar" else ""))
        out.append(dataclasses.replace(
            step, sha256=sha256_file(model), sidecar_sha256=sha256_file(sidecar),
            labels_sha256=sha256_file(step.labels) if step.labels else ""))
    return tuple(out)


def output_settings(steps: tuple[ModelStep, ...]) -> dict[str, Any]:
    """Return {"NAME.key": value} of what decides every step's results."""
    return {f"{step.step_name}.{key}": value for step in steps for key, value in step.outputs().items()}
