"""The state of a GBIF occurrence download, as GBIF describes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterator

RUNNING_STATES = frozenset({"PREPARING", "RUNNING", "SUSPENDED"})
FAILED_STATES = frozenset({"FAILED", "KILLED", "CANCELLED"})


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class DownloadStatus:
    """One download's status: every field GBIF gives, typed, with the full answer in ``raw``."""

    key: str
    status: str
    doi: str | None = None
    license: str | None = None
    request: dict[str, Any] = field(default_factory=dict, compare=False)
    created: str | None = None
    modified: str | None = None
    erase_after: str | None = None
    download_link: str | None = None
    size: int = 0  # bytes of the zip once SUCCEEDED, 0 before
    total_records: int | None = None
    number_datasets: int | None = None
    source: str | None = None  # the client that posted it (only in user listings)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DownloadStatus:
        """Return the status parsed from GBIF's JSON object (unknown fields stay in ``raw``)."""
        return cls(
            key=str(data.get("key", "")),
            status=str(data.get("status", "UNKNOWN")),
            doi=data.get("doi"),
            license=data.get("license"),
            request=data.get("request") or {},
            created=data.get("created"),
            modified=data.get("modified"),
            erase_after=data.get("eraseAfter"),
            download_link=data.get("downloadLink"),
            size=_int(data.get("size")) or 0,
            total_records=_int(data.get("totalRecords")),
            number_datasets=_int(data.get("numberDatasets")),
            source=data.get("source"),
            raw=dict(data),
        )

    @property
    def is_running(self) -> bool:
        """True while GBIF is still preparing the archive (PREPARING, RUNNING, SUSPENDED)."""
        return self.status in RUNNING_STATES

    @property
    def succeeded(self) -> bool:
        """True when the archive is ready to download."""
        return self.status == "SUCCEEDED"

    @property
    def failed(self) -> bool:
        """True when the download ended without an archive (FAILED, KILLED, CANCELLED)."""
        return self.status in FAILED_STATES

    @property
    def erased(self) -> bool:
        """True when GBIF has deleted the archive (FILE_ERASED)."""
        return self.status == "FILE_ERASED"

    @property
    def finished(self) -> bool:
        """True when the status will not change any more."""
        return not self.is_running

    @property
    def predicate(self) -> dict[str, Any] | None:
        """Return the request's predicate (None for a download of everything)."""
        return self.request.get("predicate")

    @property
    def format(self) -> str | None:
        """Return the archive format asked for (DWCA, SIMPLE_CSV, ...)."""
        return self.request.get("format")

    @property
    def doi_url(self) -> str | None:
        """Return the DOI as a resolvable URL, once GBIF has minted it."""
        return f"https://doi.org/{self.doi}" if self.doi else None

    @property
    def created_at(self) -> datetime | None:
        """Return ``created`` as an aware datetime (None if absent or unparsable)."""
        return parse_time(self.created)

    def summary(self) -> str:
        """Return one line for people: key, status, records, size and DOI where known."""
        parts = [self.key, self.status]
        if self.total_records is not None:
            parts.append(f"{self.total_records:,} records")
        if self.size:
            parts.append(f"{self.size / 1e6:,.1f} MB")
        if self.doi:
            parts.append(f"doi:{self.doi}")
        if self.created:
            parts.append(f"created {self.created[:19].replace('T', ' ')}")
        return ", ".join(parts)


def parse_time(text: str | None) -> datetime | None:
    """Return GBIF's timestamp (``2025-09-04T12:11:34.648+00:00``) as a datetime, or None."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class DownloadPage:
    """One page of a user's downloads, newest first; iterate it for the statuses."""

    results: list[DownloadStatus]
    offset: int = 0
    limit: int = 20
    count: int | None = None  # all the user's downloads
    end_of_records: bool = True

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DownloadPage:
        """Return the page parsed from GBIF's ``{offset, limit, endOfRecords, count, results}``."""
        return cls(
            results=[DownloadStatus.from_json(item) for item in data.get("results") or []],
            offset=_int(data.get("offset")) or 0,
            limit=_int(data.get("limit")) or 0,
            count=_int(data.get("count")),
            end_of_records=bool(data.get("endOfRecords", True)),
        )

    def __iter__(self) -> Iterator[DownloadStatus]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, index: int) -> DownloadStatus:
        return self.results[index]
