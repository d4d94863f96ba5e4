"""The HTML report: one self-contained page describing a dataset folder.

``write_report(DIR)`` writes ``DIR/report.html``: the query (predicate, download key, DOI,
date) and the select/fetch/curate settings (from the provenance in ``metadata.parquet``'s
schema metadata), images per class (labelled bars, log scale), fetch outcomes, the failed
images by host and outcome with example URLs, curation removals, near duplicates (example
pairs side by side), hosts, licences, splits, and a grid of
thumbnails per class with each image's attribution on hover. Plots are inline SVG and
thumbnails inline base64 JPEG; a Content-Security-Policy forbids any network access,
so the page opens anywhere, offline.
"""

from __future__ import annotations

import json
from collections import Counter
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gbifxdl import __version__
from gbifxdl._io import write_text_atomic
from gbifxdl.curate import split_warnings
from gbifxdl.curate.toolkit import METADATA, REMOVED, ImageReader, provenance, read_table, rejected_pairs
from gbifxdl.publish.card import last_value_per_label
from gbifxdl.publish.credit import citation_text, license_name
from gbifxdl.archive import normalise_doi
from gbifxdl.publish.credit import bare_doi
from gbifxdl.publish.facts import HUB_SPLITS, licence_counts, ranked, read_columns
from gbifxdl.publish.report_notes import publish_html
from gbifxdl.report import _svg
from gbifxdl.report._models import models_section
from gbifxdl.report._thumbs import thumbnail_uri, thumbnails

__all__ = ["write_report"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#222;padding:0 16px}
h1{font-size:1.6em;margin-bottom:4px}h2{margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px}
.card b{display:block;font-size:1.5em}.cite{background:#f6f6f6;padding:8px 12px;border-left:3px solid #4c78a8}
.grid{display:flex;flex-wrap:wrap;gap:6px}.thumb{position:relative;margin:0;width:112px;height:112px;
background:#eee;display:flex;align-items:center;justify-content:center;overflow:hidden}
.thumb img{max-width:112px;max-height:112px}.thumb figcaption{display:none;position:absolute;left:0;right:0;
bottom:0;background:rgba(0,0,0,.75);color:#fff;font-size:12px;padding:3px;line-height:1.25}
.thumb:hover figcaption{display:block}.cls{margin-top:14px}.cls h3{font-size:1em;margin:4px 0}
.muted{color:#777}.empty{color:#999;font-style:italic}table{border-collapse:collapse}
td,th{padding:2px 10px;border-bottom:1px solid #eee;text-align:left}
.warning{background:#fff4e5;border-left:3px solid #e8a33d;padding:8px 12px}
.pair{display:flex;flex-wrap:wrap;gap:4px;width:236px;border:1px solid #ddd;padding:4px}.pair p{margin:2px;font-size:12px}
svg.chart{max-width:100%;height:auto;display:block}pre{background:#f6f6f6;padding:8px 12px;overflow-x:auto;font-size:14px}
.settings{display:flex;gap:16px;flex-wrap:wrap}.settings>div{flex:1 1 280px}.settings h3{font-size:1em;margin:6px 0}
td.n{text-align:right}.urls{margin:4px 0 12px;padding-left:20px;font-size:14px;word-break:break-all}
"""
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_FAILED_COLOURS = {"ok": _svg.GREEN}


def _plural(n: int, one: str, many: str | None = None) -> str:
    """Return ``"1 row"``, ``"2 rows"``: the count and the word that goes with it."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def _split_name(split: str) -> str:
    """Return a split's name as the rest of the dataset names it (``validation``, not ``val``)."""
    return HUB_SPLITS.get(split, split)


def _ranked(values: list[Any] | pa.Array | pa.ChunkedArray, null: str = "unknown") -> list[tuple[str, int]]:
    return ranked(values, null)


def _attribution(row: dict[str, Any]) -> str:
    parts = [
        f"© {row['rightsHolder'] or row['creator'] or 'unknown'}",
        f"by {row['creator']}" if row["creator"] and row["creator"] != row["rightsHolder"] else "",
        license_name(row["license"]),
        f"via {row['publisher']}" if row["publisher"] else "",
        f"gbifID {row['gbifID']}",
        row["references"] or "",
    ]
    return " · ".join(p for p in parts if p)


def _section(title: str, body: str, note: str = "") -> str:
    extra = f'<p class="muted">{escape(note)}</p>' if note else ""
    return f"<section><h2>{escape(title)}</h2>{extra}{body}</section>"


def write_report(
    dataset_dir: str | Path,
    *,
    thumbnails_per_class: int = 8,
    max_classes: int = 60,
    thumb_size: int = 112,
) -> Path:
    """Return the path of ``report.html``, written into ``dataset_dir``.

    Thumbnails are shown for the ``max_classes`` largest classes, at most
    ``thumbnails_per_class`` each (the page stays a few megabytes for any dataset size).
    """
    root = Path(dataset_dir)
    if not (root / METADATA).is_file():
        read_table(root / METADATA)  # raises the helpful error
    prov = provenance(pq.read_schema(root / METADATA).empty_table())
    class_column = (prov.get("curate_settings") or {}).get("class_column", "speciesKey")
    # only the columns the page shows: a table of millions of rows is never read whole
    kept = read_columns(root / METADATA, (class_column, "species", "outcome", "host", "license", "split", "shard"))
    removed = (read_columns(root / REMOVED, ("outcome", "host", "removed_reason")) if (root / REMOVED).is_file()
               else pa.table({}))  # fmt: skip
    col = lambda t, name: t.column(name) if name in t.column_names else pa.chunked_array([pa.nulls(t.num_rows)])  # noqa: E731
    failed = _failed(root, kept, removed)

    labels = pc.fill_null(pc.cast(col(kept, class_column), pa.string()), "unlabeled")
    per_class = _ranked(labels)
    outcome_counts: Counter[str] = Counter()
    ok_by_host: Counter[str] = Counter()
    bad_by_host: Counter[str] = Counter()
    for part in (kept, removed) if removed.num_rows else (kept,):
        outcome_counts.update(dict(_ranked(col(part, "outcome"))))
        by_host = pa.table({"host": col(part, "host"), "ok": pc.fill_null(pc.equal(col(part, "outcome"), "ok"), False)}
                           ).group_by(["host", "ok"]).aggregate([([], "count_all")])
        for h, ok, k in zip(*(by_host.column(c).to_pylist() for c in ("host", "ok", "count_all"))):
            (ok_by_host if ok else bad_by_host)[h or "unknown"] += k
    outcomes = sorted(outcome_counts.items(), key=lambda kv: (-kv[1], kv[0]))
    reasons = _ranked(col(removed, "removed_reason")) if removed.num_rows else []
    hosts = sorted(set(ok_by_host) | set(bad_by_host), key=lambda h: (-(ok_by_host[h] + bad_by_host[h]), h))
    licences = licence_counts(col(kept, "license"))
    splits = _ranked(col(kept, "split")) if "split" in kept.column_names else []
    shown = [label for label, _ in per_class[: max(max_classes, _svg.MAX_BARS)]]
    names = last_value_per_label(labels, col(kept, "species"), shown)

    key = prov.get("download_key")
    cite = citation_text(prov)
    head = [
        f"<h1>GBIF image dataset{' ' + escape(key) if key else ''}</h1>",
        f'<p class="muted">{escape(str(root.resolve().name))} · report by gbifxdl {__version__}</p>',
        '<div class="cards">',
        f'<div class="card"><b id="n-images">{kept.num_rows:,}</b>{"image" if kept.num_rows == 1 else "images"}</div>',
        f'<div class="card"><b id="n-classes">{len(per_class):,}</b>{"class" if len(per_class) == 1 else "classes"}</div>',
        f'<div class="card"><b>{removed.num_rows:,}</b>{"row" if removed.num_rows == 1 else "rows"} removed</div>',
        f'<div class="card"><b>{len(hosts):,}</b>{"host" if len(hosts) == 1 else "hosts"}</div>',
        "</div>",
    ]
    if prov.get("emulator"):  # the demo's: its key and DOI are made up (issue 20, item 7)
        head.append(f'<p class="cite" id="emulator"><b>Demo data, not from GBIF</b>: made against '
                    f'{escape(str(prov["emulator"]))}; do not cite its download key or DOI.</p>')
    elif cite:
        head.append(f'<p class="cite">Cite as: {escape(cite)}</p>')
    head.append(publish_html(root))  # the derived-dataset DOI, a rebuild's differences
    if "split" in kept.column_names:  # an empty split must never pass unnoticed
        fractions = (prov.get("curate_settings") or {}).get("fractions") or (0.8, 0.1, 0.1)
        head += [f'<p class="warning"><b>Warning:</b> {escape(w.replace("split {!r}".format("val"), "split {!r}".format("validation")))}</p>'
                 for w in split_warnings(dict(splits), fractions)]
    body = [
        _query_section(prov),
        _class_section(per_class, names, min(max_classes, len(per_class))),
        _section("Fetch outcomes", _svg.hbars(outcomes, colour=_svg.RED, colours=_FAILED_COLOURS),
                 "every selected image: ok, or the kind of failure"),
        _failed_section(failed),
        _section("Removed by curation", _svg.hbars(reasons, colour=_svg.GREY)),
        _near_section(root, thumb_size),
        models_section(root, thumb_size, class_column, _section),
        _section("Hosts", _svg.stacked_hbars([(h, ok_by_host[h], bad_by_host[h]) for h in hosts[:20]]),
                 f"the {min(len(hosts), 20):,} busiest of {_plural(len(hosts), 'host')}"),
        _section("Licences", _svg.hbars(licences)),
        _section("Splits", _svg.hbars([(_split_name(k), v) for k, v in splits]) if splits else '<p class="empty">not curated yet: run gbifxdl curate</p>'),
        _settings_section(prov),
        _section("Images", _grid(root, kept, labels, names, per_class, thumbnails_per_class, max_classes, thumb_size),
                 "hover an image for its attribution"),
    ]
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>gbifxdl report{' ' + escape(key) if key else ''}</title><style>{_CSS}</style></head><body>"
        + "".join(head + body)
        + "</body></html>\n"
    )
    target = root / "report.html"
    write_text_atomic(target, page)
    return target


def _near_section(root: Path, size: int) -> str:
    """Return the section on near duplicates: what the search found and on what evidence, the false
    matches expected at this size, a warning when an unusual share was held back, and example pairs
    side by side (from ``curate_summary.json``; empty before a curation)."""
    try:
        near = json.loads((root / "curate_summary.json").read_text()).get("near_duplicates") or {}
    except (OSError, ValueError):
        return ""
    if not near:
        return ""
    pairs = near.get("pairs", {})
    facts = (f"<p>{_plural(near.get('removed', 0), 'image')} removed as "
             f"{'a near duplicate' if near.get('removed', 0) == 1 else 'near duplicates'}. The hashes proposed "
             f"{pairs.get('candidates', 0):,} pairs: {pairs.get('confirmed_by_pixels', 0):,} confirmed on the image "
             f"files, {pairs.get('confirmed_by_signature', 0):,} on signatures alone, "
             f"{pairs.get('confirmed_by_hashes', 0):,} on hashes alone, "
             f"{rejected_pairs(pairs):,} rejected as look-alikes. "
             f"Expected false matches at this size ({near.get('images', 0):,} images): about "
             f"{near.get('expected_false_matches', 0):.2g}.</p>")
    held = near.get("held_back", 0)
    if held:
        facts = (f'<p class="warning"><b>Held back:</b> {held:,} of {near.get("images", 0):,} images '
                 f'({held / max(near.get("images", 1), 1):.0%}) would have been removed as near duplicates, far more '
                 "than copies usually are, so none was. Look at the pairs below: if they are copies, curate again "
                 "with <code>--max-near-duplicate-share 1</code>; if not, with <code>--no-near-duplicates</code>.</p>"
                 + facts)
    examples = near.get("examples") or []
    if examples:
        wanted = {u for ex in examples for u in ex[:2]}
        files: dict[str, tuple[Any, Any, Any]] = {}
        fields = ("url_hash", "path", "shard", "key")
        value_set = pa.array(sorted(wanted), pa.string())
        for name in (METADATA, REMOVED):
            if not (root / name).is_file():
                continue
            table = pq.ParquetFile(root / name)
            present = [c for c in fields if c in table.schema_arrow.names]
            if "url_hash" not in present:
                continue
            # a batch at a time, only the pairs' rows made Python objects (ten million rows: gigabytes else)
            for batch in table.iter_batches(columns=present, batch_size=262_144):
                hit = batch.filter(pc.is_in(batch.column("url_hash"), value_set=value_set))
                for row in hit.to_pylist():
                    files.setdefault(row["url_hash"], tuple(row.get(c) for c in fields[1:]))
        reader = ImageReader(root, size)
        cells = []
        for a, b, *stages in examples:  # each stage's score (a summary before the third stage has two)
            pics = []
            for u in (a, b):
                data = reader.data(*files.get(u, (None, None, None)))
                uri = thumbnail_uri(data, size) if data else None
                img = f'<img src="{uri}" alt="">' if uri else "?"
                pics.append(f'<figure class="thumb pair-image">{img}<figcaption>{escape(u[:12])}</figcaption></figure>')
            scores = ", ".join(f"{label} {v:.2f}" for label, v in zip(("signature", "pixels", "256 px"), stages)
                               if v is not None)
            cells.append(f'<div class="pair">{"".join(pics)}<p class="muted">{escape(scores)}</p></div>')
        facts += '<div class="grid">' + "".join(cells) + "</div>"
    return _section("Near duplicates", facts, "pairs found: each image beside the copy it matched, with their "
                    "scores on signatures and on pixels (lower is more alike)")


def _grid(root: Path, table: pa.Table, labels: pa.ChunkedArray, names: dict[str, Any], per_class: list[tuple[str, int]],
          per: int, max_classes: int, size: int) -> str:
    """Return the thumbnail grid: a heading and up to ``per`` images for each large class."""
    shown = [label for label, _ in per_class[:max_classes]]
    # rows in shard order: thumbnails come from as few shards as possible (a columnar sort, then
    # the first ``per`` rows of each shown class)
    code = pc.index_in(labels, value_set=pa.array(shown, pa.string()))
    if "shard" in table.column_names and table.column("shard").null_count < table.num_rows:
        shards = pc.fill_null(pc.cast(table.column("shard"), pa.string()), "")
        order = pc.sort_indices(pa.table({"s": shards, "i": pa.array(np.arange(table.num_rows))}),
                                sort_keys=[("s", "ascending"), ("i", "ascending")]).to_numpy()
        del shards
    else:  # one layout of files: row order
        order = np.arange(table.num_rows)
    codes = pc.fill_null(code, -1).to_numpy()[order]
    order, codes = order[codes >= 0], codes[codes >= 0]
    by_class = np.argsort(codes, kind="stable")
    grouped = codes[by_class]
    nth = np.arange(len(grouped)) - np.searchsorted(grouped, grouped)
    chosen = by_class[nth < per]
    picked: dict[str, list[int]] = {}
    for c, i in zip(codes[chosen].tolist(), order[chosen].tolist()):
        picked.setdefault(shown[c], []).append(i)
    rows = sorted(i for label in shown for i in picked.get(label, []))
    fields = ("path", "shard", "key", "rightsHolder", "creator", "license", "publisher", "gbifID", "references")
    values = _rows_of(root, rows, fields)
    uris = thumbnails(root, rows, values["path"], values["shard"], values["key"], size)
    counts = dict(per_class)
    blocks = []
    for label in shown:
        figures = []
        for i in picked.get(label, []):
            caption = escape(_attribution({n: values[n][i] for n in fields[3:]}))
            img = (f'<img src="{uris[i]}" alt="{escape(label)}" title="{caption}">' if i in uris
                   else '<span class="empty">unreadable</span>')  # fmt: skip
            figures.append(f'<figure class="thumb">{img}<figcaption>{caption}</figcaption></figure>')
        title = f"{escape(label)} {escape(names.get(label) or '')}".strip()
        blocks.append(f'<div class="cls" id="class-{escape(label)}"><h3>{title} '
                      f'<span class="muted">({_plural(counts[label], "image")})</span></h3><div class="grid">{"".join(figures)}</div></div>')
    if len(per_class) > max_classes:
        blocks.append(f'<p class="muted">{_plural(len(per_class) - max_classes, "smaller class", "smaller classes")} '
                      "not shown.</p>")
    return "".join(blocks) or '<p class="empty">no images</p>'


def _rows_of(root: Path, rows: list[int], fields: tuple[str, ...]) -> dict[str, dict[int, Any]]:
    """Return {field: {row: value}} for the few sorted ``rows`` of metadata.parquet (read a batch at a time)."""
    source = pq.ParquetFile(root / METADATA, pre_buffer=False, buffer_size=1 << 20)
    present = [f for f in fields if f in source.schema_arrow.names]
    out: dict[str, dict[int, Any]] = {f: {i: None for i in rows} for f in fields}
    wanted, start = np.array(rows, dtype=np.int64), 0
    for batch in source.iter_batches(batch_size=262_144, columns=present):
        lo, hi = np.searchsorted(wanted, [start, start + batch.num_rows])
        if hi > lo:
            part = pa.Table.from_batches([batch]).take(pa.array(wanted[lo:hi] - start))
            for f in present:
                out[f].update(zip(wanted[lo:hi].tolist(), part.column(f).to_pylist()))
        start += batch.num_rows
    return out


_FAILED_HOSTS = 50  # rows of the failed-images table (the busiest host and outcome pairs)
_FAILED_URLS = 3  # example URLs per outcome


def _failed(root: Path, kept: pa.Table, removed: pa.Table) -> pa.Table:
    """Return (host, outcome, identifier) of every image whose fetch failed: the rows of
    ``metadata.parquet`` not ``ok`` (a folder not curated yet) and those curation moved to
    ``removed.parquet`` (``fetch_failed``)."""
    parts = []
    for name, part in ((METADATA, kept), (REMOVED, removed)):
        if not part.num_rows or "outcome" not in part.column_names:
            continue
        bad = pc.fill_null(pc.not_equal(part.column("outcome"), "ok"), False)
        if not pc.any(bad).as_py():
            continue
        t = read_columns(root / name, ("host", "outcome", "identifier")).filter(bad)
        parts.append(pa.table({c: (pc.cast(t.column(c), pa.string()) if c in t.column_names
                                   else pa.nulls(t.num_rows, pa.string())) for c in ("host", "outcome", "identifier")}))
    if not parts:
        return pa.table({c: pa.array([], pa.string()) for c in ("host", "outcome", "identifier")})
    return pa.concat_tables(parts)


def _link(url: str) -> str:
    """Return ``url`` as an escaped link (plain text unless it is http or https)."""
    text = escape(url)
    return f'<a href="{text}" rel="noreferrer">{text}</a>' if url.lower().startswith(("http://", "https://")) else text


def _failed_section(failed: pa.Table) -> str:
    """Return the section on failed images: a table of counts by host and outcome, then a few
    example URLs for each outcome (to try by hand)."""
    if not failed.num_rows:
        return _section("Failed images", '<p class="empty">none: every image was fetched</p>')
    t = pa.table({"host": pc.fill_null(failed.column("host"), "unknown"),
                  "outcome": pc.fill_null(failed.column("outcome"), "unknown")})
    counts = sorted(t.group_by(["host", "outcome"]).aggregate([([], "count_all")]).to_pylist(),
                    key=lambda r: (-r["count_all"], r["host"], r["outcome"]))
    rows = "".join(f'<tr><td>{escape(r["host"])}</td><td>{escape(r["outcome"])}</td>'
                   f'<td class="n">{r["count_all"]:,}</td></tr>' for r in counts[:_FAILED_HOSTS])
    more = (f'<p class="muted">{_plural(len(counts) - _FAILED_HOSTS, "more host and outcome", "more hosts and outcomes")} '
            "not shown.</p>" if len(counts) > _FAILED_HOSTS else "")
    examples: dict[str, list[str]] = {}
    for outcome, url in zip(t.column("outcome").to_pylist(), failed.column("identifier").to_pylist()):
        urls = examples.setdefault(outcome, [])
        if url and len(urls) < _FAILED_URLS and url not in urls:
            urls.append(url)
    per_outcome = dict(_ranked(t.column("outcome")))
    lists = "".join(f'<h3>{escape(o)} <span class="muted">({_plural(per_outcome[o], "image")})</span></h3>'
                    f'<ul class="urls">{"".join(f"<li>{_link(u)}</li>" for u in examples.get(o, []))}</ul>'
                    for o in per_outcome)  # fmt: skip
    body = (f'<table id="failed"><tr><th>host</th><th>outcome</th><th>images</th></tr>{rows}</table>{more}'
            f'<div id="failed-urls">{lists}</div>')
    return _section("Failed images", body, f"{_plural(failed.num_rows, 'image')} could not be fetched: by host and "
                    f"outcome, then up to {_FAILED_URLS} example URLs per outcome")


def _query_section(prov: dict[str, Any]) -> str:
    """Return the section on the query: the download key, DOI and date, and the GBIF predicate (for a
    dataset made from GBIF's occurrence search: the search, and that it has no download DOI)."""
    if prov.get("source") == "search":
        search = prov.get("search") or {}
        rows = [("GBIF occurrence search", escape(str(prov.get("query") or ""))),
                ("searched", escape(str(prov.get("created") or ""))),
                ("occurrences read", escape(str(search.get("occurrences", "")))),
                ("DOI", "none: a search has no download DOI; <code>gbifxdl derive</code> registers this dataset "
                        "and gives the DOI to cite")]
        table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows if v)
        return _section("Query", f'<table id="query">{table}</table>', "the GBIF occurrence search this dataset "
                        "comes from")
    key, doi = prov.get("download_key"), normalise_doi(prov.get("doi"))
    rows = [("GBIF download key", escape(str(key)) if key else "")]
    if doi:
        url = f"https://doi.org/{bare_doi(doi)}"
        rows.append(("DOI", _link(url) + (" (the emulator's, not a real DOI)" if prov.get("emulator") else "")))
    rows += [("download created", escape(str(prov.get("created") or ""))),
             ("archive", escape(str(prov.get("archive") or "")))]
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows if v)
    query = prov.get("query")
    if isinstance(query, str):
        try:
            query = json.loads(query)
        except ValueError:
            pass
    predicate = (f'<p>The GBIF predicate:</p><pre id="predicate">'
                 f"{escape(query if isinstance(query, str) else json.dumps(query, indent=2, sort_keys=True))}</pre>"
                 if query else '<p class="empty">no predicate recorded</p>')
    if not table and not query:
        return _section("Query", '<p class="empty">no provenance recorded in metadata.parquet</p>')
    return _section("Query", (f'<table id="query">{table}</table>' if table else "") + predicate,
                    "the GBIF occurrence download this dataset comes from")


def _settings_section(prov: dict[str, Any]) -> str:
    """Return the section on the settings each stage ran with (select, fetch, curate)."""
    blocks = []
    for stage in ("select", "fetch", "curate"):
        settings = prov.get(f"{stage}_settings")
        if not settings:
            continue
        if isinstance(settings, dict):
            rows = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(_setting(v))}</td></tr>"
                           for k, v in sorted(settings.items()))
            inner = f'<table class="stage-settings">{rows}</table>'
        else:
            inner = f"<pre>{escape(_setting(settings))}</pre>"
        blocks.append(f'<div id="settings-{stage}"><h3>{stage}</h3>{inner}</div>')
    if not blocks:
        return _section("Settings", '<p class="empty">no settings recorded</p>')
    return _section("Settings", f'<div class="settings">{"".join(blocks)}</div>',
                    "as each stage recorded them in metadata.parquet")


def _setting(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _class_section(per_class: list[tuple[str, int]], names: dict[str, Any], linked: int) -> str:
    """Return the images-per-class section: the largest classes as labelled bars (name and count
    as text, each linking to its thumbnails), and past them a rank curve of every class."""
    top = per_class[: _svg.LABELLED_CLASSES]
    texts = {label: f"{label} {names.get(label) or ''}".strip() for label, _ in top}
    links = {label: f"#class-{label}" for label, _ in per_class[:linked]}
    bars = _svg.hbars(top, texts=texts, links=links, log=True, width=900, label_width=320,
                      label="images per class, log scale")
    if len(per_class) <= _svg.LABELLED_CLASSES:
        return _section("Images per class", bars, "log scale; click a bar to see its images")
    curve = _svg.class_histogram(per_class, names, max_bars=0)
    return _section("Images per class", curve + f"<h3>The {len(top)} largest classes</h3>" + bars,
                    f"every class, largest first (log scale), then the {len(top)} largest with their names and counts; click a bar "
                    "to see its images")
