"""What a selection kept and what it dropped, for which reason: :class:`SelectSummary`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

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
