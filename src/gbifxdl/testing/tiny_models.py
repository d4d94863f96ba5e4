"""Tiny ONNX models written with the standard library alone: the demo's model step (issue 21).

The demo shows a model step without asking for the ``onnx`` package (a build tool the users
of gbifxdl never need: ``gbifxdl[infer]`` is ONNX Runtime alone), so its model is written
here as the protocol-buffer bytes of an ONNX ``ModelProto`` (the few fields a graph of
standard operators needs, as ``onnx.proto`` numbers them). ``tests/test_run_models.py``
checks the bytes against ``onnx.checker`` and runs them through ONNX Runtime.

:func:`exposure_model` is the demo's: a classifier of how dark a photo is, from its mean
colour: label ``too_dark`` when the mean luminance (Rec. 601 weights, pixels 0..1) is below
``threshold``, ``photo`` otherwise, with softmax scores ``gain`` x the distance to it; its
sidecar is :data:`SIDECAR`.
"""

from __future__ import annotations

import struct

FLOAT = 1  # TensorProto.DataType.FLOAT
_INT, _INTS = 2, 7  # AttributeProto.AttributeType
OPSET = 13
LUMA = (0.299, 0.587, 0.114)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _int(field: int, n: int) -> bytes:
    return _varint(field << 3) + _varint(n)


def _len(field: int, data: bytes | str) -> bytes:
    data = data.encode() if isinstance(data, str) else data
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _tensor(name: str, dims: tuple[int, ...], values: list[float]) -> bytes:
    """A TensorProto of float32 ``values``: dims (1), data_type (2), name (8), raw_data (9)."""
    return (b"".join(_int(1, d) for d in dims) + _int(2, FLOAT) + _len(8, name)
            + _len(9, struct.pack(f"<{len(values)}f", *values)))


def _value_info(name: str, dims: tuple[int | str, ...]) -> bytes:
    """A ValueInfoProto: name (1), type (2) = TypeProto.tensor_type (1) = elem_type (1), shape (2) of dims."""
    shape = b"".join(_len(1, _len(2, d) if isinstance(d, str) else _int(1, d)) for d in dims)
    return _len(1, name) + _len(2, _len(1, _int(1, FLOAT) + _len(2, shape)))


def _node(op: str, inputs: tuple[str, ...], outputs: tuple[str, ...], **attributes: int | tuple[int, ...]) -> bytes:
    """A NodeProto: input (1), output (2), name (3), op_type (4), attribute (5: name 1, i 3, ints 8, type 20)."""
    attrs = b""
    for key, value in attributes.items():
        if isinstance(value, tuple):
            attrs += _len(5, _len(1, key) + b"".join(_int(8, v) for v in value) + _int(20, _INTS))
        else:
            attrs += _len(5, _len(1, key) + _int(3, value) + _int(20, _INT))
    return (b"".join(_len(1, i) for i in inputs) + b"".join(_len(2, o) for o in outputs)
            + _len(3, f"{op}_{outputs[0]}") + _len(4, op) + attrs)


def exposure_model_bytes(side: int = 32, threshold: float = 0.4, gain: float = 40.0) -> bytes:
    """Return the ONNX bytes of the exposure classifier: images (N, 3, side, side) -> logits (N, 2)."""
    weights = [0.0, -gain * LUMA[0], 0.0, -gain * LUMA[1], 0.0, -gain * LUMA[2]]  # (3, 2): photo, too_dark
    nodes = [_node("ReduceMean", ("images",), ("mean",), axes=(2, 3), keepdims=0),
             _node("MatMul", ("mean", "weights"), ("scaled",)),
             _node("Add", ("scaled", "bias"), ("logits",))]
    # GraphProto: node (1), name (2), initializer (5), input (11), output (12)
    graph = (b"".join(_len(1, n) for n in nodes) + _len(2, "exposure")
             + _len(5, _tensor("weights", (3, 2), weights)) + _len(5, _tensor("bias", (2,), [0.0, gain * threshold]))
             + _len(11, _value_info("images", ("N", 3, side, side))) + _len(12, _value_info("logits", ("N", 2))))
    # ModelProto: ir_version (1), producer_name (2), graph (7), opset_import (8: domain 1, version 2)
    return _int(1, 7) + _len(2, "gbifxdl demo") + _len(7, graph) + _len(8, _len(1, "") + _int(2, OPSET))


# the sidecar of exposure_model_bytes's model (README "Models"): a classifier of 32 x 32 squashed images
SIDECAR = {"kind": "classifier", "input_size": 32, "resize": "squash", "labels": ["photo", "too_dark"],
           "output": "logits"}
