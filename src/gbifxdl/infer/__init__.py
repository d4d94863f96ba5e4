"""Infer: run the user's ONNX models over a fetched dataset's images (issue 21), between fetch and curate.

``infer(DIR, "cleaner.onnx")`` runs one model, described by its JSON sidecar
(``cleaner.json``: kind, input size, resize mode, mean and std, labels, output layout), over
every image of the dataset folder, in both layouts, and writes its results, keyed by the
image's ``url_hash`` with the model's sha256, to ``DIR/.gbifxdl/models/cleaner/part-*.parquet``.
Inference only measures; what to keep is for curation to decide.

- :mod:`~gbifxdl.infer.stage`  the stage itself, :func:`infer`, and :class:`InferSummary`
- :mod:`~gbifxdl.infer.spec`   :class:`ModelSpec`, read from the sidecar by :func:`load_spec`; :class:`ModelError`
- ``_pre``: image bytes -> input tensor (in the decode processes); ``_engine``: the ONNX Runtime
  session (imported lazily); ``_decode``: outputs -> labels, embeddings, boxes, in numpy;
  ``_results``: the parts, resume and :func:`read_results`
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gbifxdl._lazy import lazy_getattr

if TYPE_CHECKING:
    from gbifxdl.infer._results import read_results
    from gbifxdl.infer.spec import ModelError, ModelSpec, load_spec
    from gbifxdl.infer.stage import InferSummary, infer

__all__ = ["InferSummary", "ModelError", "ModelSpec", "infer", "load_spec", "read_results"]

__getattr__ = lazy_getattr(__name__, {
    "infer": "gbifxdl.infer.stage",
    "InferSummary": "gbifxdl.infer.stage",
    "ModelSpec": "gbifxdl.infer.spec",
    "ModelError": "gbifxdl.infer.spec",
    "load_spec": "gbifxdl.infer.spec",
    "read_results": "gbifxdl.infer._results",
})
