"""A model's raw outputs -> results per image, in numpy: top-k labels, embeddings, zero-shot labels, boxes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gbifxdl.infer._pre import Geometry
from gbifxdl.infer.spec import ModelError, ModelSpec


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def classify(output: np.ndarray, labels: tuple[str, ...], top_k: int, logits: bool
             ) -> list[tuple[list[str], list[float]]]:
    """Return each image's ``top_k`` labels and probabilities, most likely first (ties: the earlier label)."""
    scores = output.reshape(output.shape[0], -1).astype(np.float64)
    if scores.shape[1] != len(labels):
        raise ModelError(f"the model gives {scores.shape[1]} scores per image, its sidecar names {len(labels)} labels")
    probs = softmax(scores) if logits else scores
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
    return [([labels[j] for j in row], [float(probs[i, j]) for j in row]) for i, row in enumerate(order)]


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = x.reshape(x.shape[0], -1).astype(np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm == 0, 1.0, norm)


@dataclass(frozen=True)
class LabelMatrix:
    """Names and their (text) embeddings, for zero-shot labels from an embedder."""

    names: tuple[str, ...]
    vectors: np.ndarray  # (labels, dims), L2-normalised
    logit_scale: float = 100.0  # CLIP's: probabilities are softmax(scale * cosine)


def load_labels(path: str | Path) -> LabelMatrix:
    """Read a label matrix ``.npz``: ``names`` (n strings), ``embeddings`` (n x d), optional ``logit_scale``."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "names" not in npz or "embeddings" not in npz:
                raise ModelError(f"{path}: a label matrix holds 'names' and 'embeddings' (has {', '.join(npz.files)})")
            names, vectors = npz["names"], npz["embeddings"]
            scale = float(npz["logit_scale"]) if "logit_scale" in npz else 100.0
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable .npz label matrix ({' '.join(str(exc).split())})") from None
    if names.ndim != 1 or vectors.ndim != 2 or len(names) != len(vectors) or not len(names):
        raise ModelError(f"{path}: 'names' must be n names and 'embeddings' n rows (have {names.shape}, "
                         f"{vectors.shape})")
    if not np.issubdtype(vectors.dtype, np.number):
        raise ModelError(f"{path}: 'embeddings' must be numbers")
    return LabelMatrix(tuple(str(n) for n in names), l2_normalise(vectors), scale)


def zero_shot(embeddings: np.ndarray, labels: LabelMatrix) -> list[tuple[str, float]]:
    """Return each (normalised) embedding's nearest label and its probability among the labels."""
    if embeddings.shape[1] != labels.vectors.shape[1]:
        raise ModelError(f"the model's embeddings have {embeddings.shape[1]} dimensions, the label matrix's "
                         f"{labels.vectors.shape[1]}")
    probs = softmax(labels.logit_scale * (embeddings.astype(np.float64) @ labels.vectors.T.astype(np.float64)))
    best = probs.argmax(axis=1)
    return [(labels.names[j], float(probs[i, j])) for i, j in enumerate(best)]


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Return the indexes kept by greedy non-maximum suppression (boxes as x1, y1, x2, y2), best first."""
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = (xx2 - xx1).clip(0) * (yy2 - yy1).clip(0)
        union = areas[i] + areas[rest] - inter
        order = rest[inter <= iou * np.where(union > 0, union, 1)]
    return keep


def detect(output: np.ndarray, geometries: list[Geometry], conf: float, iou: float, max_det: int,
           classes: int | None = None) -> list[tuple[list[list[float]], list[float], list[int]]]:
    """Decode an Ultralytics YOLO export's output: per image, boxes, confidences and classes.

    The output is (batch, 4 + classes [+ mask coefficients], anchors) -- rows cx, cy, w, h in
    input pixels, then one score per class; a segmentation export's mask coefficients
    follow and are not read (``classes``, the sidecar's label count, says where they start). Boxes are suppressed per class (non-maximum suppression), mapped
    back through the letterbox to the image, clipped, and given MegaDetector-style as
    normalised [x, y, w, h] (top-left corner, width, height, each 0..1).
    """
    if output.ndim != 3 or output.shape[1] < 5:
        raise ModelError(f"a detector's output must be (batch, 4 + classes, anchors), not {tuple(output.shape)}")
    ncls = classes or output.shape[1] - 4
    if ncls > output.shape[1] - 4:
        raise ModelError(f"the detector gives {output.shape[1] - 4} scores per box, its sidecar names {ncls} labels")
    results = []
    for pred, geo in zip(output.astype(np.float32), geometries):
        w0, h0, sx, sy, ox, oy = geo
        cls_scores = pred[4:4 + ncls].T  # (anchors, classes)
        classes = cls_scores.argmax(axis=1)
        scores = cls_scores[np.arange(len(classes)), classes]
        mask = scores >= conf
        c, s, classes = pred[:4, mask].T, scores[mask], classes[mask]
        xyxy = np.stack([c[:, 0] - c[:, 2] / 2, c[:, 1] - c[:, 3] / 2,
                         c[:, 0] + c[:, 2] / 2, c[:, 1] + c[:, 3] / 2], axis=1) if len(c) else np.zeros((0, 4))
        keep = []
        for k in np.unique(classes):  # per class, then the best overall
            idx = np.flatnonzero(classes == k)
            keep.extend(idx[j] for j in nms(xyxy[idx], s[idx], iou))
        keep = sorted(keep, key=lambda j: (-s[j], j))[:max_det]
        boxes = []
        for j in keep:
            x1, y1, x2, y2 = xyxy[j]
            x1, x2 = np.clip([(x1 - ox) / sx, (x2 - ox) / sx], 0, w0)
            y1, y2 = np.clip([(y1 - oy) / sy, (y2 - oy) / sy], 0, h0)
            boxes.append([float(x1 / w0), float(y1 / h0), float((x2 - x1) / w0), float((y2 - y1) / h0)])
        results.append((boxes, [float(s[j]) for j in keep], [int(classes[j]) for j in keep]))
    return results


def rows(spec: ModelSpec, output: np.ndarray | None, keys: list[str], errors: list[str | None],
         geometries: list[Any], sha: str, labels: LabelMatrix | None) -> list[dict[str, Any]]:
    """Return one result row per image of a batch: decoded outputs in order, error rows where decoding failed."""
    ok = [i for i, e in enumerate(errors) if e is None]
    decoded: list[dict[str, Any]] = []
    if ok and output is not None:
        if len(output) != len(ok):
            raise ModelError(f"the model gave {len(output)} results for a batch of {len(ok)} images")
        if spec.kind == "classifier":
            for top, probs in classify(output, spec.labels, spec.top_k, spec.output == "logits"):
                decoded.append({"label": top[0], "score": probs[0], "top_labels": top, "top_scores": probs})
        elif spec.kind == "embedder":
            vectors = l2_normalise(output)
            shots = zero_shot(vectors, labels) if labels else [(None, None)] * len(vectors)
            for vec, (name, score) in zip(vectors.astype(np.float16), shots):
                decoded.append({"embedding": vec, "label": name, "score": score})
        else:
            for boxes, scores, classes in detect(
                    output, [geometries[i] for i in ok], spec.conf_threshold, spec.iou_threshold,
                    spec.max_detections, len(spec.labels) or None):
                names = [spec.labels[c] if spec.labels else str(c) for c in classes]
                decoded.append({"boxes": boxes, "scores": scores, "labels": names})
    out, it = [], iter(decoded)
    for key, error in zip(keys, errors):
        row = {"url_hash": key, "model_sha256": sha, "error": error}
        if error is None:
            row.update(next(it))
        out.append(row)
    return out
