"""One ONNX Runtime session for a model: imported lazily, on the device asked for or not at all."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np

from gbifxdl.infer.spec import ModelError, ModelSpec

DEVICES = ("cpu", "cuda")
INSTALL = "pip install 'gbifxdl[infer]'"


def onnxruntime() -> Any:
    """Return the onnxruntime module, or say in one line how to install it."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelError(f"running models needs ONNX Runtime: {INSTALL} (or 'gbifxdl[gpu]' for CUDA)") from None
    return ort


def check_device(device: str) -> Any:
    """Return onnxruntime once ``device`` is known to be usable; a one-line ModelError otherwise (never a fallback).

    ``cuda`` needs an ONNX Runtime with the CUDA provider (``gbifxdl[gpu]``: onnxruntime-gpu, with
    NVIDIA's CUDA and cuDNN libraries from pip, which ONNX Runtime 1.21+ preloads).
    """
    if device not in DEVICES:
        raise ModelError(f"--device must be one of {', '.join(DEVICES)}, not {device!r}")
    ort = onnxruntime()
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ModelError("--device cuda: this ONNX Runtime has no CUDA provider (pip install 'gbifxdl[gpu]', "
                             "in place of onnxruntime); use --device cpu to run on the CPU")
        preload = getattr(ort, "preload_dlls", None)  # CUDA and cuDNN from NVIDIA's pip packages, when installed
        if preload is not None:
            with contextlib.suppress(Exception):  # a system CUDA is found by the session itself
                preload()
    return ort


class Session:
    """A model's session and the name and layout of its one image input."""

    def __init__(self, model_path: Path | bytes, spec: ModelSpec, device: str = "cpu", threads: int = 0,
                 name: str | None = None) -> None:
        # model_path: the .onnx file, or its bytes (on a Dask worker; ``name`` names it in messages)
        label = name or (str(model_path) if isinstance(model_path, Path) else "the model")
        ort = check_device(device)
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: ORT's warnings are not the user's business
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(model_path if isinstance(model_path, bytes) else str(model_path),
                                                sess_options=options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own untyped errors for bad models
            raise ModelError(f"{label}: ONNX Runtime cannot load it ({' '.join(str(exc).split())[:300]})") from None
        if device == "cuda" and "CUDAExecutionProvider" not in self.session.get_providers():
            raise ModelError(f"--device cuda: ONNX Runtime did not give {Path(label).name} the CUDA provider "
                             "(check CUDA and cuDNN); never falling back to the CPU silently")
        inputs = {i.name: i for i in self.session.get_inputs()}
        self.input_name = spec.input_name or next(iter(inputs))
        if self.input_name not in inputs:
            raise ModelError(f"{label}: no input named {self.input_name!r} (it has {', '.join(inputs)})")
        shape = inputs[self.input_name].shape
        h, w = spec.input_size
        want = [3, h, w] if spec.layout == "NCHW" else [h, w, 3]
        if len(shape) != 4 or any(isinstance(s, int) and s != t for s, t in zip(shape[1:], want)):
            raise ModelError(f"{label}: its input {self.input_name!r} is {shape}; the sidecar makes "
                             f"[batch, {', '.join(map(str, want))}] (input_size, layout)")
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        self.providers = self.session.get_providers()

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Return the model's first output for ``batch`` (a model with a fixed batch size gets one image at a time)."""
        if self.fixed_batch and len(batch) != self.fixed_batch:
            if self.fixed_batch != 1:
                raise ModelError(f"the model takes batches of exactly {self.fixed_batch}; export it with a "
                                 "dynamic batch axis or 1")
            return np.concatenate([self.run(batch[i:i + 1]) for i in range(len(batch))])
        return self.session.run(None, {self.input_name: batch})[0]
