"""What the HTML report shows of publishing: the derived-dataset DOI and a rebuild's differences."""

from __future__ import annotations

from html import escape
from pathlib import Path

from gbifxdl.publish.facts import DERIVED_STATE, REBUILD_STATE, read_json

__all__ = ["publish_html"]


def publish_html(dataset_dir: str | Path, limit: int = 200) -> str:
    """Return HTML for the report: the derived DOI to cite, and each image a rebuild could not reproduce."""
    root = Path(dataset_dir)
    parts = []
    derived = read_json(root / DERIVED_STATE)
    if derived and derived.get("doi"):
        doi = escape(str(derived["doi"]))
        parts.append(f'<p class="cite" id="derived-doi">Derived dataset DOI '
                     f'<a href="https://doi.org/{doi}">https://doi.org/{doi}</a>: '
                     f'{escape(str(derived.get("citation") or ""))}</p>')  # fmt: skip
    rebuilt = read_json(root / REBUILD_STATE)
    if rebuilt:
        diffs = rebuilt.get("differences") or []
        rows = "".join(f"<tr><td>{escape(str(d.get('reason')))}</td><td>{escape(str(d.get('gbifID')))}</td>"
                       f"<td>{escape(str(d.get('identifier')))}</td></tr>" for d in diffs[:limit])  # fmt: skip
        more = f'<p class="muted">{len(diffs) - limit} more in rebuild.json</p>' if len(diffs) > limit else ""
        parts.append(
            f'<section id="rebuild"><h2>Rebuilt from {escape(str(rebuilt.get("manifest")))}</h2>'
            f'<p>{rebuilt.get("identical", 0)} images identical to the manifest, {rebuilt.get("changed", 0)} changed '
            f'at the source, {rebuilt.get("vanished", 0)} could not be fetched, {rebuilt.get("unreachable", 0)} '
            f'on hosts that could not be reached (removed, listed here).</p>'
            + (f"<table><tr><th>reason</th><th>gbifID</th><th>URL</th></tr>{rows}</table>" if diffs else "")
            + more + "</section>")  # fmt: skip
    return "".join(parts)
