"""The report's sections on model rules: what each model's rules removed, with thumbnails, and the outliers
of each class (from ``curate_summary.json`` and the tables' ``removed_reason`` and ``outlier_<model>``)."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gbifxdl.curate.toolkit import METADATA, REMOVED, ImageReader
from gbifxdl.publish.croissant import curated_models
from gbifxdl.publish.facts import read_columns
from gbifxdl.report._thumbs import thumbnail_uri

PER_RULE = 12  # thumbnails of the images each rule removed
PER_CLASS = 4  # outliers shown per class
CLASSES = 12  # classes shown with their outliers (those with the largest outlier scores)
_WHERE = ("path", "shard", "key")

Section = Callable[[str, str, str], str]


def _figure(reader: ImageReader, where: tuple[Any, Any, Any], caption: str, size: int) -> str:
    data = reader.data(*where)
    uri = thumbnail_uri(data, size) if data else None
    img = f'<img src="{uri}" alt="">' if uri else '<span class="empty">unreadable</span>'
    return f'<figure class="thumb">{img}<figcaption>{escape(caption)}</figcaption></figure>'


def _read(root: Path, name: str, columns: tuple[str, ...]) -> pa.Table:
    if not (root / name).is_file():
        return pa.table({c: pa.nulls(0, pa.string()) for c in columns})
    t = read_columns(root / name, columns)
    return pa.table({c: t.column(c) if c in t.column_names else pa.nulls(t.num_rows) for c in columns})


def models_section(root: Path, size: int, class_column: str, section: Section) -> str:
    """Return the sections "What the models removed" and "Outliers of each class" ("" when no rule applied)."""
    models = curated_models(root)
    if not models.get("models"):
        return ""
    reader = ImageReader(root, size)
    rows = "".join(f"<tr><td>{escape(m['name'])}</td><td><code>{escape(m['file'])}</code></td>"
                   f"<td><code>{escape(m['sha256'])}</code></td><td>{escape(m['kind'])}</td><td>{m['images']:,}</td></tr>"
                   for m in models["models"])
    body = ("<table><tr><th>model</th><th>file</th><th>sha256</th><th>kind</th><th>images measured</th></tr>"
            + rows + "</table>")
    removed = _read(root, REMOVED, ("removed_reason", "url_hash") + _WHERE)
    reasons = removed.column("removed_reason").to_pylist()
    for rule in models.get("rules", []):
        picked = [i for i, r in enumerate(reasons) if r == rule["reason"]][:PER_RULE]
        figures = "".join(_figure(reader, tuple(removed.column(c)[i].as_py() for c in _WHERE),
                                  str(removed.column("url_hash")[i].as_py() or "")[:12], size) for i in picked)
        cropped = f", {rule['cropped']:,} cropped" if "cropped" in rule else ""
        body += (f"<h3><code>{escape(rule['rule'])}</code> <span class=\"muted\">{rule['removed']:,} removed as "
                 f"<code>{escape(rule['reason'])}</code>{cropped}</span></h3>"
                 + (f'<div class="grid">{figures}</div>' if figures else ""))
    out = section("What the models removed", body, "each model's results decide through the rules below, in this "
                  "order; thumbnails of the images each rule set aside")
    return out + _outliers(root, reader, size, class_column, section)


def _outliers(root: Path, reader: ImageReader, size: int, class_column: str, section: Section) -> str:
    names = sorted({n for t in (METADATA, REMOVED) if (root / t).is_file()
                    for n in pq.read_schema(root / t).names if n.startswith("outlier_")})
    if not names:
        return ""
    body = ""
    for name in names:
        parts = [_read(root, t, (class_column, name, "removed_reason") + _WHERE) for t in (METADATA, REMOVED)]
        parts = [p.select([class_column, name, "removed_reason", *_WHERE]) for p in parts]
        table = pa.concat_tables([pa.table({c: pc.cast(p.column(c), pa.string()) if c != name else
                                            pc.cast(p.column(c), pa.float64()) for c in p.column_names})
                                  for p in parts])
        scores = pc.fill_null(table.column(name), -1.0).to_numpy()
        labels = np.array(pc.fill_null(table.column(class_column), "unlabeled").to_pylist(), dtype=object)
        order = np.argsort(-scores, kind="stable")
        shown: dict[str, list[int]] = {}
        for i in order.tolist():
            if scores[i] < 0:
                break
            if len(shown.get(labels[i], [])) < PER_CLASS and (labels[i] in shown or len(shown) < CLASSES):
                shown.setdefault(labels[i], []).append(i)
        model = name[len("outlier_"):]
        body += f"<h3>{escape(model)}</h3>"
        for label, picked in shown.items():
            figures = "".join(_figure(
                reader, tuple(table.column(c)[i].as_py() for c in _WHERE),
                f"{scores[i]:.2f}" + (f" · {table.column('removed_reason')[i].as_py()}"
                                      if table.column("removed_reason")[i].as_py() else ""), size) for i in picked)
            body += f'<div class="cls"><h4>{escape(str(label))}</h4><div class="grid">{figures}</div></div>'
    return section("Outliers of each class", body, "the images farthest from their class's mean embedding "
                   "(cosine distance, 0..2), removed or not")
