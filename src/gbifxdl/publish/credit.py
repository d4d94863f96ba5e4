"""How a dataset credits its sources: short licence names, and the citation GBIF asks for.

Shared by the card, the attributions, Croissant, manifests, derived datasets and the report.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from gbifxdl.archive import normalise_doi

__all__ = ["bare_doi", "citation_text", "license_name"]

_CC = re.compile(r"creativecommons\.org/(licenses|publicdomain)/([a-z-]+)/(\d+(?:\.\d+)?)")
_ENUM = re.compile(r"^cc_?(0|by(?:_[a-z]+)*)_?(\d)_?(\d)$")


def license_name(value: str | None) -> str:
    """Return a short licence name ("CC BY 4.0", "CC0 1.0") for a URL or GBIF enum, else the value."""
    if not value or not value.strip():
        return "unknown"
    text = value.strip().lower()
    m = _CC.search(text)
    if m:
        kind, code, version = m.groups()
        if kind == "publicdomain":
            return f"CC0 {version}" if code == "zero" else "Public Domain Mark"
        return f"CC {code.upper()} {version}"
    m = _ENUM.match(text)
    if m:
        code, major, minor = m.groups()
        return "CC0 1.0" if code == "0" else f"CC {code.upper().replace('_', '-')} {major}.{minor}"
    return value.strip()


def citation_text(prov: dict[str, Any]) -> str | None:
    """Return the citation GBIF asks for: the recorded one, or one built from the DOI."""
    if prov.get("citation"):
        return str(prov["citation"]).strip()
    doi = normalise_doi(prov.get("doi"))  # a download key recorded as a DOI is never linked
    if not doi:
        return None
    when = _date(prov.get("created"))
    stamp = f"{when.day} {when:%B %Y}" if when else "n.d."
    return f"GBIF.org ({stamp}) GBIF Occurrence Download https://doi.org/{bare_doi(doi)}"


def bare_doi(doi: str) -> str:
    return re.sub(r"^(https?://(dx\.)?doi\.org/|doi:)", "", str(doi).strip(), flags=re.I)


def _date(value: Any) -> date | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).date()
    except ValueError:
        try:
            return date.fromisoformat(str(value)[:10])
        except ValueError:
            return None
