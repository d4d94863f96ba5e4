"""Download keys and DOIs, checked locally before anything is sent to GBIF."""

from __future__ import annotations

import re

from gbifxdl.errors import ConfigError

# GBIF's key: a 7-digit zero-padded counter, '-', the server's start time yyMMddHHmmssSSS.
KEY_PATTERN = re.compile(r"\d{7}-\d{15}")
# GBIF mints every download DOI under this prefix (e.g. 10.15468/dl.3xkznf).
DOI_PATTERN = re.compile(r"10\.15468/dl\.[a-z0-9]+")
_DOI_PREFIXES = ("https://doi.org/", "http://doi.org/", "https://dx.doi.org/", "http://dx.doi.org/", "doi:")
KEY_EXAMPLE = "0026011-250827131500795"
_FORMS = f"a download key like {KEY_EXAMPLE} (7 digits, '-', 15 digits) or its DOI (10.15468/dl.xxxxxx)"


class InvalidKey(ConfigError):
    """A download key or DOI is empty or malformed; nothing was sent to GBIF."""


def is_doi(value: str) -> bool:
    """Return True when ``value`` is a GBIF download DOI (after :func:`check_key`)."""
    return DOI_PATTERN.fullmatch(value) is not None


def check_key(value: object, *, file_hint: bool = False) -> str:
    """Return the download key or DOI in canonical form, or raise InvalidKey saying what a key looks like.

    Accepts ``0026011-250827131500795``, ``10.15468/dl.3xkznf``, ``doi:10.15468/dl.3xkznf``
    and ``https://doi.org/10.15468/dl.3xkznf`` (a DOI comes back as ``10.15468/dl.3xkznf``).
    ``file_hint`` adds "or a file holding the key" to the message (the command line reads those).
    """
    forms = _FORMS + (", or a file holding the key" if file_hint else "")
    text = str(value if value is not None else "").strip()
    if not text:
        raise InvalidKey(f"no download key given: give {forms}")
    if KEY_PATTERN.fullmatch(text):
        return text
    doi = text
    for prefix in _DOI_PREFIXES:
        if doi.lower().startswith(prefix):
            doi = doi[len(prefix) :]
            break
    if DOI_PATTERN.fullmatch(doi.lower()):
        return doi.lower()
    shown = text if len(text) <= 60 else text[:57] + "..."
    raise InvalidKey(f"{shown!r} is not a GBIF download key: give {forms}")
