"""Curation rules over model results: which images go, which are cropped, and each image's outlier score.

Reads what ``gbifxdl infer`` measured (``DIR/.gbifxdl/models/NAME/part-*.parquet``, keyed by
``url_hash``) and decides; no model runs here, so changing a threshold costs a read of the
results. Rules apply, in this order, to the images still kept after failed fetches, file
checks and review marks (and before duplicates, so a removed image is never the copy kept):
keep rules, drop rules, minimum scores (each removing as ``model:NAME``), the crop's
``no_detection`` (when set to drop), then outliers (``outlier:NAME``). An image a model has
not measured, or could not read (an error row), is judged by none of that model's rules.

The outlier score of an image is the cosine distance (0..2) from its embedding to its class's
mean embedding direction, among the images still kept when the rule applies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gbifxdl.curate._columns import Source, integers
from gbifxdl.curate._rules import Rules
from gbifxdl.errors import CurateError

NO_DETECTION = "no_detection"
RESULTS_META = b"gbifxdl.infer"  # the schema metadata key where read_results says what made the results
KINDS_OF = {"label": ("classifier", "embedder"), "min_score": ("classifier", "embedder", "detector"),
            "max_outlier": ("embedder",), "crop": ("detector",)}


@dataclass
class Outcome:
    """What the model rules decided, besides removals: crops, outlier scores, and what to tell."""

    crop_model: str | None = None
    crop_rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))  # rows cropped
    crop_boxes: np.ndarray = field(default_factory=lambda: np.empty((0, 4), dtype=np.int32))  # x, y, w, h pixels
    outliers: dict[str, np.ndarray] = field(default_factory=dict)  # model -> score per row (nan: none)
    models: list[dict[str, Any]] = field(default_factory=list)  # name, file, sha256, kind, images measured
    rules: list[dict[str, Any]] = field(default_factory=list)  # rule, reason, removed (and cropped)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Return what ``curate_summary.json`` keeps of it (the card, Croissant and the report read it)."""
        if not self.models:
            return {}
        return {"models": self.models, "rules": self.rules, "cropped": int(len(self.crop_rows)),
                "crop_model": self.crop_model}


@dataclass
class _Results:
    name: str
    kind: str
    table: pa.Table
    row: np.ndarray  # per dataset row: its result row (-1: none)
    judged: np.ndarray  # per dataset row: measured without error


def _load(root: Path, src: Source, name: str) -> tuple[_Results, dict[str, Any]]:
    import json

    from gbifxdl.infer import read_results

    try:
        table = read_results(root, name)
    except FileNotFoundError:
        raise CurateError(f"no results of model {name!r} in {root / '.gbifxdl' / 'models'}: run "
                          f"`gbifxdl infer {root} --model {name}.onnx` first, or fix the rule's model name") from None
    meta = json.loads((table.schema.metadata or {}).get(RESULTS_META, b"{}"))
    keys = table.column("url_hash").combine_chunks()
    row = src.gather(["url_hash"], lambda t: pc.fill_null(pc.index_in(pc.cast(t.column(0), pa.string()), value_set=keys),
                                                          -1).to_numpy(zero_copy_only=False).astype(np.int64))
    ok = pc.is_null(table.column("error")).to_numpy(zero_copy_only=False)
    judged = (row >= 0) & ok[np.maximum(row, 0)] if len(ok) else np.zeros(len(row), dtype=bool)
    kind = (meta.get("spec") or {}).get("kind") or ("detector" if "boxes" in table.column_names else
                                                    "embedder" if "embedding" in table.column_names else "classifier")
    return _Results(name, kind, table, row, judged), meta


def apply(root: Path, src: Source, classes: np.ndarray, reason: np.ndarray, code: Any, rules: Rules) -> Outcome:
    """Return the crops and scores the rules decide, setting in ``reason`` (via ``code(name)``) the
    reason of each kept image they remove."""
    out = Outcome()
    if not rules:
        return out
    loaded: dict[str, _Results] = {}
    for name in rules.models:
        res, meta = _load(root, src, name)
        loaded[name] = res
        out.models.append({"name": name, "file": meta.get("model") or f"{name}.onnx",
                           "sha256": meta.get("model_sha256") or "", "kind": res.kind,
                           "images": int(np.count_nonzero(res.judged))})
        unmeasured = int(np.count_nonzero((reason == 0) & ~res.judged))
        if unmeasured:
            out.warnings.append(f"{unmeasured} images kept have no result of model {name!r} (not measured, or "
                                f"unreadable to it) and are judged by none of its rules: run `gbifxdl infer` again")

    def need(name: str, setting: str) -> _Results:
        res = loaded[name]
        if res.kind not in KINDS_OF[setting]:
            raise CurateError(f"{setting} rule on model {name!r}: it is a {res.kind}; {setting} applies to "
                              + " or ".join(KINDS_OF[setting]) + " results")
        return res

    def remove(mask: np.ndarray, why: str, rule: str) -> int:
        rows = np.flatnonzero((reason == 0) & mask)
        reason[rows] = code(why)
        out.rules.append({"rule": rule, "reason": why, "removed": int(len(rows))})
        return len(rows)

    for rule in rules.labels:
        res = need(rule.model, "label")
        hit = pc.fill_null(pc.is_in(res.table.column("label"), value_set=pa.array(sorted(rule.labels), pa.string())),
                           False).to_numpy(zero_copy_only=False)
        has_label = pc.is_valid(res.table.column("label")).to_numpy(zero_copy_only=False)
        if res.table.num_rows and not has_label.any():
            raise CurateError(f"{rule.action}={rule.text!r}: model {rule.model!r} gave no label (an embedder run "
                              "without --labels); run `gbifxdl infer` again with a label matrix, or drop the rule")
        at = np.maximum(res.row, 0)
        judged = res.judged & has_label[at] if len(hit) else res.judged
        satisfied = (hit[at] == rule.inside) if len(hit) else np.zeros(len(at), dtype=bool)
        gone = judged & (~satisfied if rule.action == "keep" else satisfied)
        remove(gone, f"model:{rule.model}", f"{rule.action} {rule.text}")
    for name, low in (rules.min_score or {}).items():
        res = need(name, "min_score")
        if res.kind == "detector":
            if name != rules.crop:
                raise CurateError(f"min_score={name}={low:g}: {name!r} is a detector, whose minimum score applies to "
                                  f"its crop; add --crop {name}, or drop the rule")
            continue  # a detection threshold: see the crop below
        score = pc.fill_null(pc.cast(res.table.column("score"), pa.float64()), math.nan).to_numpy(zero_copy_only=False)
        at = np.maximum(res.row, 0)
        low_score = res.judged & (score[at] < low) if len(score) else np.zeros(len(at), dtype=bool)
        remove(low_score, f"model:{name}", f"min_score {name}={low:g}")
    if rules.crop:
        _crop(src, need(rules.crop, "crop"), rules, reason, remove, out)
    for name, high in (rules.max_outlier or {}).items():
        res = need(name, "max_outlier")
        scores = outlier_scores(res, classes, reason == 0)
        out.outliers[name] = scores
        remove(np.nan_to_num(scores, nan=-1.0) > high, f"outlier:{name}", f"max_outlier {name}={high:g}")
    return out


def outlier_scores(res: _Results, classes: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """Return each row's cosine distance to its class's mean embedding among the ``alive`` rows (nan elsewhere)."""
    n = len(classes)
    scores = np.full(n, np.nan, dtype=np.float32)
    column = res.table.column("embedding").combine_chunks()
    valid = pc.is_valid(column).to_numpy(zero_copy_only=False)
    if not valid.any():
        return scores
    flat = np.asarray(pc.list_flatten(column.filter(pa.array(valid))).to_numpy(zero_copy_only=False), dtype=np.float32)
    dim = len(flat) // int(np.count_nonzero(valid))
    vectors = np.zeros((len(column), dim), dtype=np.float32)
    vectors[valid] = flat.reshape(-1, dim)
    rows = np.flatnonzero(alive & res.judged & valid[np.maximum(res.row, 0)])
    if not len(rows):
        return scores
    emb = vectors[res.row[rows]]
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    groups, inverse = np.unique(classes[rows], return_inverse=True)
    sums = np.zeros((len(groups), dim), dtype=np.float64)
    np.add.at(sums, inverse, emb)
    means = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    scores[rows] = np.clip(1.0 - np.einsum("ij,ij->i", emb, means[inverse]), 0.0, 2.0)
    return scores


def crop_box(box: list[float], width: int, height: int, padding: float, square: bool) -> list[int] | None:
    """Return the pixels ``[x, y, w, h]`` to cut from a ``width`` x ``height`` image around the normalised
    ``box``: grown by ``padding`` (a share of its size) on every side, made square if asked, kept inside."""
    if width <= 0 or height <= 0:
        return None
    x, y, w, h = box[0] * width, box[1] * height, box[2] * width, box[3] * height
    x, y, w, h = x - padding * w, y - padding * h, w * (1 + 2 * padding), h * (1 + 2 * padding)
    if square:
        side = min(max(w, h), width, height)
        x, y, w, h = x + (w - side) / 2, y + (h - side) / 2, side, side
        x, y = min(max(x, 0.0), width - side), min(max(y, 0.0), height - side)  # slid inside, not cut
    x0, y0 = max(0, math.floor(x + 1e-6)), max(0, math.floor(y + 1e-6))
    x1, y1 = min(width, math.ceil(x + w - 1e-6)), min(height, math.ceil(y + h - 1e-6))
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    return [x0, y0, x1 - x0, y1 - y0]


def _crop(src: Source, res: _Results, rules: Rules, reason: np.ndarray, remove: Any, out: Outcome) -> None:
    low = (rules.min_score or {}).get(res.name, 0.0)
    widths, heights = src.gather(["width"], integers), src.gather(["height"], integers)
    boxes_col = res.table.column("boxes").to_pylist()
    scores_col = res.table.column("scores").to_pylist()
    best: list[list[float] | None] = []
    for boxes, scores in zip(boxes_col, scores_col):  # the most confident detection at or above the minimum
        pairs = [(s, b) for s, b in zip(scores or [], boxes or []) if s is not None and s >= low]
        best.append(max(pairs, key=lambda p: p[0])[1] if pairs else None)
    found = np.array([b is not None for b in best], dtype=bool)
    at = np.maximum(res.row, 0)
    detected = res.judged & found[at] if len(found) else np.zeros(len(at), dtype=bool)
    text = (f"crop {res.name}" + (f" padding {rules.crop_padding:g}" if rules.crop_padding else "")
            + (" square" if rules.crop_square else "") + (f" min_score {low:g}" if low else ""))
    if rules.no_detection == "drop":
        remove(res.judged & ~detected, NO_DETECTION, f"{text}, no detection: drop")
    else:
        out.rules.append({"rule": f"{text}, no detection: keep uncropped", "reason": NO_DETECTION, "removed": 0})
    rows, boxes = [], []
    for i in np.flatnonzero(detected & (reason == 0)).tolist():
        box = crop_box(best[int(res.row[i])], int(widths[i]), int(heights[i]), rules.crop_padding, rules.crop_square)
        if box is not None:
            rows.append(i)
            boxes.append(box)
    out.crop_model = res.name
    out.crop_rows = np.array(rows, dtype=np.int64)
    out.crop_boxes = np.array(boxes, dtype=np.int32).reshape(-1, 4)
    out.rules[-1]["cropped"] = len(rows)
