"""The emulated GBIF's memory: downloads, their lifecycle and their JSON as GBIF writes it."""

from __future__ import annotations

import asyncio
import calendar
import json
import logging
import random
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger("gbifxdl.testing")

RUNNING = frozenset({"PREPARING", "RUNNING", "SUSPENDED"})
ENDED_BADLY = frozenset({"FAILED", "KILLED", "CANCELLED", "FILE_ERASED"})
ALL_STATUSES = RUNNING | ENDED_BADLY | {"SUCCEEDED"}
FORMATS = frozenset(
    {"DWCA", "SIMPLE_CSV", "SIMPLE_AVRO", "SIMPLE_WITH_VERBATIM_AVRO", "SIMPLE_PARQUET", "SPECIES_LIST", "MAP_OF_LIFE", "BIONOMIA", "SQL_TSV_ZIP"}
)
REQUEST_FIELDS = frozenset(
    {"creator", "notificationAddresses", "sendNotification", "format", "predicate", "description", "checklistKey",
     "type", "verbatimExtensions", "machineDescription"}
)
DEDUPE_WINDOW = timedelta(hours=48)
_DOI_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"
# Leaf predicates GBIF echoes back with "matchCase": false added.
_MATCH_CASE_TYPES = frozenset({"equals", "in", "like", "lessThan", "lessThanOrEquals", "greaterThan", "greaterThanOrEquals"})


def gbif_time(moment: datetime) -> str:
    """Return ``moment`` as GBIF writes timestamps: ``2025-09-04T12:11:34.648+00:00``."""
    moment = moment.astimezone(timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}+00:00"


def add_months(moment: datetime, months: int) -> datetime:
    """Return ``moment`` shifted by whole calendar months (day clamped to the month's end)."""
    month0 = moment.month - 1 + months
    year, month = moment.year + month0 // 12, month0 % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def echo_predicate(node: Any) -> Any:
    """Return the predicate as GBIF echoes it in a status (``matchCase`` added to leaves)."""
    if not isinstance(node, dict):
        return node
    out = {name: echo_predicate(value) for name, value in node.items()}
    if "predicates" in out:
        out["predicates"] = [echo_predicate(p) for p in node["predicates"]]
    if node.get("type") in _MATCH_CASE_TYPES:
        out.setdefault("matchCase", False)
    return out


@dataclass
class Download:
    """One download request and what became of it."""

    key: str
    user: str
    request: dict[str, Any]
    created: datetime
    doi: str
    source: str
    phase: str = "PREPARING"  # the natural lifecycle: PREPARING -> RUNNING -> SUCCEEDED or FAILED
    forced: str | None = None  # a status set by the test (or by DELETE), overriding the phase
    modified: datetime | None = None
    archive: Path | None = None
    size: int = 0
    total_records: int | None = None
    task: asyncio.Task | None = field(default=None, repr=False)

    @property
    def status(self) -> str:
        """Return the status GBIF would report now."""
        return self.forced or self.phase

    def to_json(self, api_url: str, *, owner: bool) -> dict[str, Any]:
        """Return the status body; ``owner`` adds creator, addresses and source as in user listings."""
        status = self.status
        request: dict[str, Any] = {"predicate": echo_predicate(self.request.get("predicate"))}
        if owner:
            request["creator"] = self.user
            request["notificationAddresses"] = list(self.request.get("notificationAddresses") or [])
        request["sendNotification"] = bool(self.request.get("sendNotification", False))
        request["format"] = self.request.get("format", "DWCA")
        request["type"] = "OCCURRENCE"
        request["verbatimExtensions"] = list(self.request.get("verbatimExtensions") or [])
        if self.request.get("description"):
            request["description"] = self.request["description"]
        if self.request.get("checklistKey"):
            request["checklistKey"] = self.request["checklistKey"]
        body: dict[str, Any] = {"key": self.key}
        if status not in RUNNING:
            body["doi"] = self.doi  # GBIF shows the DOI once the download has ended
        body["license"] = "unspecified"
        body["request"] = request
        body["created"] = gbif_time(self.created)
        body["modified"] = gbif_time(self.modified or self.created)
        body["eraseAfter"] = gbif_time(add_months(self.created, 6))
        body["status"] = status
        body["downloadLink"] = f"{api_url}/occurrence/download/request/{self.key}.zip"
        body["size"] = self.size if status in ("SUCCEEDED", "FILE_ERASED") else 0
        body["totalRecords"] = self.total_records if self.total_records is not None else 0
        body["numberDatasets"] = 1 if status == "SUCCEEDED" and self.total_records else 0
        if owner:
            body["source"] = self.source
        return body


@dataclass
class EmulatorState:
    """Everything the emulated GBIF knows, shared by its handlers and the test thread."""

    users: dict[str, str]
    seed: int
    n_occurrences: int
    prepare_seconds: float
    run_seconds: float
    max_simultaneous: int
    archive_dir: Path
    build_archive: Callable[[Download, Path], tuple[int, int]]  # -> (zip size, records)
    api_url: str = ""
    archive_url: str = ""
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    downloads: dict[str, Download] = field(default_factory=dict)
    counter: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    cuts: list[list[Any]] = field(default_factory=list)  # [path prefix, bytes before the drop, times left]

    def take_cut(self, path: str) -> int | None:
        """Return after how many bytes to drop this archive transfer, or None to send it whole."""
        with self.lock:
            for cut in self.cuts:
                if cut[2] > 0 and path.startswith(cut[0]):
                    cut[2] -= 1
                    return int(cut[1])
        return None

    def new_key(self) -> str:
        """Return the next key: 7-digit counter, '-', the server's start time ``yyMMddHHmmssSSS``."""
        self.counter += 1
        stamp = f"{self.started:%y%m%d%H%M%S}{self.started.microsecond // 1000:03d}"
        return f"{self.counter:07d}-{stamp}"

    def new_doi(self) -> str:
        """Return a DOI in GBIF's download prefix, deterministic for the seed and counter."""
        rng = random.Random(f"{self.seed}:{self.counter}")
        return "10.15468/dl." + "".join(rng.choice(_DOI_CHARS) for _ in range(6))

    def find(self, key_or_doi: str) -> Download | None:
        """Return the download with this key or DOI (``10.15468/dl.x`` or a doi.org URL)."""
        found = self.downloads.get(key_or_doi)
        if found is None:
            doi = key_or_doi.removeprefix("https://doi.org/").removeprefix("doi:").lower()
            found = next((d for d in self.downloads.values() if d.doi == doi), None)
        return found

    def running_of(self, user: str) -> list[Download]:
        """Return the user's downloads still counted against the simultaneous limit."""
        return [d for d in self.downloads.values() if d.user == user and d.status in RUNNING]

    def duplicate_of(self, user: str, request: dict[str, Any], now: datetime) -> Download | None:
        """Return an identical recent request (same user, format, predicate) that did not fail."""
        fingerprint = _fingerprint(request)
        for download in self.downloads.values():
            if (
                download.user == user
                and download.status not in ENDED_BADLY
                and now - download.created < DEDUPE_WINDOW
                and _fingerprint(download.request) == fingerprint
            ):
                return download
        return None

    async def lifecycle(self, download: Download) -> None:
        """Move a download through PREPARING, RUNNING (building its archive) and SUCCEEDED."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(self.prepare_seconds)
        download.phase, download.modified = "RUNNING", datetime.now(timezone.utc)
        running_since = loop.time()
        path = self.archive_dir / f"{download.key}.zip"
        try:
            size, records = await loop.run_in_executor(None, self.build_archive, download, path)
        except Exception:  # noqa: BLE001 - a broken archive writer is a FAILED download, as at GBIF
            log.exception("GBIF emulator: writing the archive of %s failed", download.key)
            download.phase, download.modified = "FAILED", datetime.now(timezone.utc)
            return
        download.archive, download.size, download.total_records = path, size, records
        await asyncio.sleep(max(0.0, self.run_seconds - (loop.time() - running_since)))
        download.phase, download.modified = "SUCCEEDED", datetime.now(timezone.utc)


def _fingerprint(request: dict[str, Any]) -> str:
    return json.dumps([request.get("format", "DWCA"), request.get("predicate")], sort_keys=True)
