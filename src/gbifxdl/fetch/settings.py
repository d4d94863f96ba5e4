"""Settings of the fetch stage, its outcome vocabulary and its summary."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

from gbifxdl._meta import USER_AGENT as DEFAULT_USER_AGENT
from gbifxdl.errors import ConfigError

# failure kinds, as written in metadata.parquet's `outcome` column
OK = "ok"
FAILURE_KINDS = (
    "http_403", "http_404", "http_410", "http_4xx", "http_5xx", "http_429", "timeout",
    "connection", "unreachable_host", "too_large", "not_image", "corrupt", "decompression_bomb",
    "redirect_loop", "bad_redirect", "empty", "bad_url",
    "process_error", "worker_died",  # processing raised something unexpected / its worker process died
    "opted_out",       # the host's X-Robots-Tag says noai, noimageai or none (respect_opt_out)
    "host_deadline",   # the host answered only 429/503 for host_deadline seconds
)


@dataclass(frozen=True)
class FetchSettings:
    """How to download, process and write images; the defaults are polite and lossless."""

    layout: str = "folders"            # "folders" | "webdataset"
    resize: int | None = None          # longest (or shortest) side in pixels; never enlarges
    resize_mode: str = "longest"       # "longest" | "shortest"
    jpeg_quality: int = 95
    reencode: bool | None = None       # None: re-encode to JPEG iff resize is set
    validate: str = "decode"           # kept originals: "decode" (whole image, pHash) | "header" (fast, no hashes)
    pixel_hash: bool = False           # kept originals, "decode": also sha256 of the full-resolution pixels
    connections: int = 64              # global limit of requests in flight
    per_host: int = 8                  # starting limit per host
    per_host_overrides: tuple[tuple[str, int], ...] = ()
    per_host_max: int | None = None    # adaptive ceiling per host; None: 4 x per_host
    per_host_rate: float | None = None  # starting requests/s per host (None: unlimited until a 429/503)
    per_host_rate_overrides: tuple[tuple[str, float], ...] = ()  # HOST=N: a fixed ceiling for that host
    host_deadline: float = 1800.0      # seconds a host may answer only 429/503 before its images fail
    renditions: bool = True            # when resizing, fetch the smallest rendition big enough
    rendition_hosts: tuple[tuple[str, str], ...] = ()  # (host, rule): hosts laid out like a known one
    respect_opt_out: bool = True       # X-Robots-Tag noai/noimageai/none -> outcome opted_out
    contact: str | None = None         # named in the User-Agent (default: $GBIF_EMAIL)
    max_attempts: int = 3
    retry_backoff: float = 1.0         # first backoff in seconds, doubled each attempt
    connect_timeout: float = 10
    read_timeout: float = 30
    total_timeout: float = 120         # whole request (headers + body) of one attempt
    max_bytes: int = 50 * 2**20
    max_pixels: int = 178_956_970
    max_redirects: int = 5
    class_column: str = "speciesKey"
    shard_size: int = 1000              # rows per work unit (and samples per WebDataset shard)
    shard_bytes: int | None = None      # also cut WebDataset shards at this many bytes
    user_agent: str = DEFAULT_USER_AGENT
    workers: int | None = None          # processes; default os.cpu_count(); 0: threads
    retry_failed: bool = False
    url_column: str = "identifier"
    images_dir: str = "images"          # folders layout: DIR/<images_dir>/<class>/...
    unlabeled: str = "unlabeled"        # class folder of rows without a class

    def __post_init__(self) -> None:
        checks = [
            (self.layout in ("folders", "webdataset"), "layout must be 'folders' or 'webdataset'"),
            (self.resize is None or self.resize > 0, "resize must be a positive number of pixels"),
            (self.resize_mode in ("longest", "shortest"), "resize_mode must be 'longest' or 'shortest'"),
            (self.validate in ("decode", "header"), "validate must be 'decode' or 'header'"),
            (1 <= self.jpeg_quality <= 100, "jpeg_quality must be between 1 and 100"),
            (self.connections >= 1, "connections must be at least 1"),
            (self.per_host >= 1, "per_host must be at least 1"),
            (all(n >= 1 for _, n in self.per_host_overrides), "per-host limits must be at least 1"),
            (all(r is None or r > 0 for r in (self.per_host_rate, *(n for _, n in self.per_host_rate_overrides))),
             "per-host rates must be positive (requests per second)"),
            (self.host_deadline > 0, "host_deadline must be positive (seconds)"),
            (self.max_attempts >= 1, "max_attempts must be at least 1"),
            (self.max_bytes > 0 and self.max_pixels > 0, "max_bytes and max_pixels must be positive"),
            (self.max_redirects >= 0, "max_redirects must be 0 or more"),
            (self.shard_size >= 1, "shard_size must be at least 1"),
            (self.workers is None or self.workers >= 0, "workers must be 0 (threads) or more"),
            (self.shard_bytes is None or self.shard_bytes > 0, "shard_bytes must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"invalid fetch setting: {message}")

    @property
    def should_reencode(self) -> bool:
        """Return whether images are re-encoded as JPEG (else original bytes are kept)."""
        return self.resize is not None if self.reencode is None else self.reencode

    @property
    def header_only(self) -> bool:
        """Return whether images are checked by their headers only (kept originals, validate="header")."""
        return not self.should_reencode and self.validate == "header"

    @property
    def uses_processes(self) -> bool:
        """Return whether images are processed in image processes (else in threads)."""
        return self.workers != 0 and not self.header_only

    def limit_for(self, host: str) -> int:
        """Return the starting concurrency limit of ``host``."""
        return dict(self.per_host_overrides).get(host, self.per_host)

    def output_fingerprint(self) -> dict[str, object]:
        """Return the settings that decide the outputs (a resumed run must use the same)."""
        # limits (max_bytes, max_pixels, ...) may change between runs, e.g. before --retry-failed.
        # Speed and politeness (rates, deadlines, opt-outs, contact) never decide the outputs;
        # nor does `renditions`: it only changes which of a host's sizes of the same photo is
        # downloaded, the output is resized to the same size either way and each row records
        # its `fetched_url`, so turning it off on a resume (a host's renditions misbehave) is fine
        keys = ("layout", "resize", "resize_mode", "jpeg_quality", "class_column", "shard_size",
                "shard_bytes", "url_column", "images_dir", "unlabeled")
        values: dict[str, object] = {k: getattr(self, k) for k in keys}
        values["reencode"] = self.should_reencode
        values["header_only"] = self.header_only
        return values

    def to_json(self) -> dict[str, object]:
        """Return every setting as JSON-ready values."""
        data = dataclasses.asdict(self)
        data["per_host_overrides"] = [list(p) for p in self.per_host_overrides]
        data["per_host_rate_overrides"] = [list(p) for p in self.per_host_rate_overrides]
        data["rendition_hosts"] = [list(p) for p in self.rendition_hosts]
        return data


@dataclass
class FetchSummary:
    """What a fetch did: counts by outcome and by host, and where the outputs are."""

    metadata_path: str
    total: int = 0
    fetched_now: int = 0               # rows handled by this run (0 when nothing was left)
    outcomes: Counter[str] = field(default_factory=Counter)
    failures_by_host: dict[str, Counter[str]] = field(default_factory=dict)
    bytes_written: int = 0
    seconds: float = 0.0
    # this run's traffic per host (requests, bytes, latency, 429s, settled rate), busiest first
    hosts: list[dict[str, object]] = field(default_factory=list)

    @property
    def ok(self) -> int:
        """Return the number of images written."""
        return self.outcomes.get(OK, 0)

    @property
    def failed(self) -> int:
        """Return the number of rows whose image could not be written."""
        return self.total - self.ok

    def format(self) -> str:
        """Return a human summary: outcomes by kind, then failures by host."""
        lines = [f"{self.ok} of {self.total} images ok, {self.failed} failed"
                 f" ({self.fetched_now} handled in this run, {self.seconds:.1f} s)"]
        for kind, n in sorted(self.outcomes.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {kind:<20} {n}")
        if self.failures_by_host:
            lines.append("failures by host:")
            for host, counts in sorted(self.failures_by_host.items(), key=lambda kv: -sum(kv[1].values())):
                detail = ", ".join(f"{k} {n}" for k, n in counts.most_common())
                lines.append(f"  {host}: {detail}")
        if self.hosts:
            from gbifxdl.fetch._host_stats import format_hosts

            lines.extend(format_hosts(self.hosts))
        lines.append(f"metadata: {self.metadata_path}")
        return "\n".join(lines)
