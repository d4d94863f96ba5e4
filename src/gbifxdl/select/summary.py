"""What a selection kept and what it dropped, for which reason: :class:`SelectSummary`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from gbifxdl.errors import SelectionError

# why a row was dropped, in the order the stage decides it
REASONS: dict[str, str] = {
    "bad_row": "rows with too few or too many fields (skipped)",
    "bad_id": "rows whose id is not a number",
    "basis_of_record": "basis of record not allowed",
    "missing_rank_keys": "lacking a required rank key (strict taxonomy)",
    "no_url": "media rows without a URL",
    "media_type": "other media type",
    "license": "licence not allowed",
    "occurrence_filtered": "their occurrence was dropped by a filter",
    "no_occurrence": "no occurrence with their id in the core",
    "duplicate_url": "URL already kept for the same class",
    "ambiguous_url": "URL shared by occurrences of different classes",
    "other_image_of_occurrence": "another image of the same occurrence was chosen",
    "class_below_minimum": "their class has fewer images than the minimum",
    "over_class_cap": "their class is over the per-class cap",
}


@dataclass(frozen=True)
class SelectSummary:
    """Counts of one selection: rows read, images kept, rows dropped per reason."""

    archive: str
    output: str
    occurrences_read: int
    media_rows_read: int
    images_selected: int
    classes: int
    dropped_occurrences: dict[str, int]
    dropped_media_rows: dict[str, int]
    ambiguous_urls: int
    classes_below_minimum: int
    bad_row_examples: tuple[str, ...]
    settings: dict[str, Any]
    provenance: dict[str, Any]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Return the summary as a JSON-ready dict."""
        data = asdict(self)
        data["bad_row_examples"] = list(self.bad_row_examples)
        return data

    def to_text(self) -> str:
        """Return the summary as a few human-readable lines."""
        lines = [
            f"{self.images_selected:,} images selected in {self.classes:,} classes "
            f"from {self.media_rows_read:,} media rows of {self.occurrences_read:,} occurrences "
            f"({self.seconds:.1f} s) -> {self.output}",
        ]
        for title, dropped in (("occurrences dropped", self.dropped_occurrences),
                               ("media rows dropped", self.dropped_media_rows)):
            items = [(k, v) for k, v in dropped.items() if v]
            if items:
                lines.append(f"{title}:")
                lines.extend(f"  {v:>12,}  {REASONS.get(k, k)} [{k}]" for k, v in items)
        if self.ambiguous_urls:
            lines.append(f"{self.ambiguous_urls:,} distinct URLs were shared across classes")
        if self.classes_below_minimum:
            lines.append(f"{self.classes_below_minimum:,} classes fell below the minimum per class")
        lines.extend(f"skipped: {example}" for example in self.bad_row_examples)
        return "\n".join(lines)


# what to try when a reason dropped every row
_ADVICE: dict[str, str] = {
    "media_type": "no media row has the asked media type: try another (CLI: --media-type any)",
    "license": "no image has an allowed licence: allow more licences (CLI: --license)",
    "basis_of_record": "no occurrence has an allowed basis of record: allow more (CLI: --basis-of-record)",
    "missing_rank_keys": "no occurrence has every required rank key: require fewer ranks (CLI: --require-rank, --no-strict)",
    "class_below_minimum": "every class is below the minimum: lower it (CLI: --min-per-class)",
    "no_url": "no media row has a URL",
    "ambiguous_url": "every URL is shared across classes: keep one of each (CLI: --ambiguous-urls keep-one)",
}


class NothingSelectedError(SelectionError):
    """A selection kept no image: rows were malformed, or every row was filtered out.

    :attr:`malformed` tells which; :attr:`counts` holds rows read, malformed and selected
    per member. Nothing is written.
    """

    def __init__(self, message: str, *, malformed: bool, counts: dict[str, int]) -> None:
        super().__init__(message)
        self.malformed = malformed
        self.counts = counts


def nothing_selected(archive: str, core: tuple[str, int, int], media: tuple[str, int, int],
                     dropped: dict[str, int], examples: tuple[str, ...] | list[str]) -> NothingSelectedError:
    """Return the error saying why no image was selected: malformed rows, or the filters (with advice).

    ``core`` and ``media`` are each (member name, rows read, malformed rows); ``dropped``
    counts media rows dropped per reason.
    """
    counts = {"occurrences_read": core[1], "occurrences_malformed": core[2],
              "media_rows_read": media[1], "media_rows_malformed": media[2], "selected": 0}
    parts = "; ".join(f"{name}: {read:,} rows read, {bad:,} malformed" for name, read, bad in (core, media))
    if core[2] or media[2]:
        example = f" (e.g. {examples[0]})" if examples else ""
        return NothingSelectedError(
            f"{archive}: no image selected because rows are malformed: {parts}; 0 selected{example}. "
            "The rows do not match the archive's meta.xml: download the archive again, and report it "
            "to GBIF if it persists", malformed=True, counts=counts)
    if media[1] == 0:
        why = "the archive has no media rows: request a download of occurrences with images (MEDIA_TYPE StillImage)"
    else:
        reasons = sorted(((v, k) for k, v in dropped.items() if v), reverse=True)
        listed = ", ".join(f"{k} {v:,}" for v, k in reasons[:4])
        why = f"every media row was dropped ({listed}); " + _ADVICE.get(reasons[0][1] if reasons else "",
                                                                          "loosen the filters")
    return NothingSelectedError(f"{archive}: no image selected, nothing to fetch: {parts}; 0 selected; {why}",
                                malformed=False, counts=counts)
