"""What the selection keeps: :class:`SelectSettings`, and licence names normalised."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from gbifxdl.errors import ConfigError

RANKS: tuple[str, ...] = ("kingdom", "phylum", "class", "order", "family", "genus", "species")
AMBIGUOUS_URL_POLICIES: tuple[str, ...] = ("drop", "keep-one")

# occurrence (core) columns of the selection table, in output order
OCCURRENCE_COLUMNS: tuple[str, ...] = (
    "gbifID", "basisOfRecord", "recordedBy", "countryCode", "eventDate", "lifeStage", "sex",
    "scientificName", "taxonRank", "datasetKey", "decimalLatitude", "decimalLongitude",
    *RANKS,
    *(f"{rank}Key" for rank in RANKS), "taxonKey", "acceptedTaxonKey",
)  # fmt: skip
MEDIA_COLUMNS: tuple[str, ...] = (
    "type", "format", "identifier", "references", "created", "creator", "publisher", "license", "rightsHolder",
)  # fmt: skip
KEY_COLUMNS: frozenset[str] = frozenset({*(f"{rank}Key" for rank in RANKS), "taxonKey", "acceptedTaxonKey"})
FLOAT_COLUMNS: frozenset[str] = frozenset({"decimalLatitude", "decimalLongitude"})


@dataclass(frozen=True)
class SelectSettings:
    """Which media rows of an archive become images to fetch."""

    media_type: str | None = "StillImage"  # None = any; compared case-insensitively
    licenses: tuple[str, ...] | None = None  # allow-list: CC0, CC-BY, CC-BY-NC, ... or licence URLs
    basis_of_record: tuple[str, ...] | None = None  # e.g. ("HUMAN_OBSERVATION",)
    required_ranks: tuple[str, ...] = ("species",)  # rows lacking these rank keys are dropped
    class_column: str = "speciesKey"  # what "class" means for the de-duplication and the caps
    one_per_occurrence: bool = True  # one image per occurrence (a seeded random pick), else all
    max_per_class: int | None = None  # at most this many images per class, drawn at random
    min_per_class: int | None = None  # drop classes with fewer images than this
    # a URL shared by occurrences of different classes: "drop" it, or "keep-one" (the first
    # occurrence listing it, in file order); within one class a URL is always kept once
    ambiguous_urls: str = "drop"
    seed: int = 0

    def __post_init__(self) -> None:
        # accept lists from JSON / CLI callers while keeping the dataclass hashable
        for name in ("licenses", "basis_of_record", "required_ranks"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, (value,))
            elif value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        ranks = tuple(_rank_name(r) for r in self.required_ranks)
        object.__setattr__(self, "required_ranks", ranks)
        if self.ambiguous_urls not in AMBIGUOUS_URL_POLICIES:
            raise ConfigError(
                f"ambiguous_urls={self.ambiguous_urls!r} is not one of {', '.join(AMBIGUOUS_URL_POLICIES)}"
            )
        for name in ("max_per_class", "min_per_class"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be a positive whole number or None, not {value!r}")
        if self.max_per_class and self.min_per_class and self.min_per_class > self.max_per_class:
            raise ConfigError(
                f"min_per_class ({self.min_per_class}) is above max_per_class ({self.max_per_class}): "
                "no class could be kept; lower the minimum or raise the cap"
            )
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ConfigError(f"seed must be a whole number, not {self.seed!r}")
        if not self.class_column or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.class_column):
            raise ConfigError(f"class_column {self.class_column!r} is not a column name (e.g. speciesKey, genusKey)")
        if self.licenses is not None and not self.licenses:
            raise ConfigError("licenses is an empty allow-list: nothing could be kept; give None to allow any")

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a JSON-ready dict."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def output_fingerprint(self) -> dict[str, Any]:
        """Return the settings that decide which rows are selected (a resumed run must keep them).

        Every setting does today; one that only changes speed (threads, memory) must be left out.
        """
        return self.to_dict()

    @property
    def license_codes(self) -> frozenset[str] | None:
        """Return the allow-list as normalised licence codes (None: any licence)."""
        if self.licenses is None:
            return None
        return frozenset(code for code in map(license_code, self.licenses) if code)


def _rank_name(rank: str) -> str:
    name = rank[:-3] if rank.endswith("Key") else rank
    name = name.lower()
    if name not in RANKS:
        raise ConfigError(f"required rank {rank!r} is not one of {', '.join(RANKS)}")
    return name


_CC_URL = re.compile(r"creativecommons\.org/licen[cs]es/([a-z-]+)")
_CC_TEXT = re.compile(r"^cc[\s_-]*(by(?:[\s_-]*(?:nc|sa|nd))*)(?![a-z])")


def license_code(value: str | None) -> str | None:
    """Return a licence's short code (``CC0``, ``CC-BY-NC``, ``PDM``...), versions ignored.

    Understands Creative Commons URLs (``http://creativecommons.org/licenses/by/4.0/``),
    GBIF's enumeration (``CC_BY_4_0``), and written forms (``CC BY-NC 4.0``, ``cc0``).
    Anything else comes back upper-cased and stripped, so it can still match exactly.
    """
    if value is None:
        return None
    text = value.strip().lower()
    if not text:
        return None
    if "publicdomain/zero" in text or re.match(r"^cc[\s_-]*(?:0|zero)(?![a-z])", text):
        return "CC0"
    if "publicdomain/mark" in text or text in ("pdm", "public domain", "public domain mark"):
        return "PDM"
    match = _CC_URL.search(text) or _CC_TEXT.match(text)
    if match:
        parts = re.split(r"[\s_-]+", match.group(1))
        return "CC-" + "-".join(p.upper() for p in parts if p)
    return value.strip().upper()
