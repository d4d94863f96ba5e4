"""One resumable job from a GBIF query to a curated dataset: ``gbifxdl run``.

The dataset folder holds the job's state in ``.gbifxdl/run.json``: the settings, the
download key (saved the moment GBIF returns it, so a request is never posted twice) and
which stages are done. Running the same job again continues where it stopped, after
Ctrl-C, SIGKILL, a reboot or an overnight wait for GBIF. Each stage writes its outputs
atomically, so a stage that was interrupted simply runs again (fetch resumes its own work
units without downloading any image twice).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from gbifxdl._io import write_text_atomic
from gbifxdl.errors import ConfigError, StateError
from gbifxdl.fetch import FetchSettings
from gbifxdl.curate import CurateSettings
from gbifxdl.select import SelectSettings

log = logging.getLogger(__name__)

STAGES = ("request", "wait", "get", "select", "fetch", "curate", "report")
STATE_FILE = Path(".gbifxdl") / "run.json"
LOG_FILE = "gbifxdl.log"


@dataclass(frozen=True)
class SourceSettings:
    """Where the occurrences come from: exactly one of the four."""

    predicate: dict[str, Any] | None = None  # a bare predicate, or a full request body
    key: str | None = None  # an existing GBIF download
    archive: str | None = None  # an archive already on disk
    api_url: str | None = None
    format: str = "DWCA"
    notification: bool = False

    def kind(self) -> str:
        given = [name for name in ("predicate", "key", "archive") if getattr(self, name)]
        if len(given) != 1:
            raise ConfigError(
                "give exactly one source: a payload JSON, taxon/country/year options, "
                "--key KEY for an existing download, or --archive FILE"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return given[0]


@dataclass(frozen=True)
class WaitSettings:
    """How to wait for GBIF to prepare the archive."""

    min_interval: float = 30.0
    max_interval: float = 300.0
    timeout: float = 7 * 24 * 3600.0


@dataclass(frozen=True)
class RunSettings:
    """Every setting of a run; saved in the dataset folder and compared on resume."""

    output: str
    source: SourceSettings = field(default_factory=SourceSettings)
    wait: WaitSettings = field(default_factory=WaitSettings)
    select: SelectSettings = field(default_factory=SelectSettings)
    fetch: FetchSettings = field(default_factory=FetchSettings)
    curate: CurateSettings = field(default_factory=CurateSettings)
    report: bool = True

    def fingerprint(self) -> dict[str, str]:
        """Give one digest per stage of the settings that decide its output."""
        parts = {
            "request": _digest({k: v for k, v in _plain(self.source).items() if k != "api_url"}),
            "select": _digest(_plain(self.select)),
            "fetch": _digest(_plain(self.fetch)),
            "curate": _digest(_plain(self.curate)),
        }
        return parts


@dataclass
class RunState:
    """What is done so far; persisted atomically after every step."""

    path: Path
    settings: dict[str, Any] = field(default_factory=dict)
    fingerprint: dict[str, str] = field(default_factory=dict)
    download_key: str | None = None
    archive: str | None = None
    done: dict[str, float] = field(default_factory=dict)

    @classmethod
    def load(cls, dataset: Path) -> "RunState | None":
        path = dataset / STATE_FILE
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise StateError(
                f"cannot read the run state {path}: {exc}; remove it to start the run over"
            ) from exc
        return cls(path=path, **{k: data.get(k) or v for k, v in _state_defaults().items()})

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "settings": self.settings,
            "fingerprint": self.fingerprint,
            "download_key": self.download_key,
            "archive": self.archive,
            "done": self.done,
        }
        write_text_atomic(self.path, json.dumps(data, indent=2, sort_keys=True))

    def mark(self, stage: str) -> None:
        self.done[stage] = time.time()
        self.save()


def run(
    settings: RunSettings,
    *,
    allow_changed_settings: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> Path:
    """Run (or continue) the whole job; return the dataset folder."""
    dataset = Path(settings.output)
    dataset.mkdir(parents=True, exist_ok=True)
    handler = _attach_log(dataset)
    try:
        state = _open_state(dataset, settings, allow_changed_settings, echo)
        if all(stage in state.done for stage in _stages(settings)):
            echo(f"Nothing to do: the dataset in {dataset} is complete.")
            return dataset
        from gbifxdl import _stages as stages  # the steps themselves, kept apart for size

        for stage in _stages(settings):
            if stage in state.done:
                continue
            echo(f"[{stage}] ...")
            log.info("stage %s starts", stage)
            getattr(stages, f"stage_{stage}")(settings, state, dataset, progress=progress, echo=echo)
            state.mark(stage)
            log.info("stage %s done", stage)
        return dataset
    finally:
        logging.getLogger("gbifxdl").removeHandler(handler)
        handler.close()


def _stages(settings: RunSettings) -> tuple[str, ...]:
    kind = settings.source.kind()
    skip = {"archive": {"request", "wait", "get"}, "key": {"request"}, "predicate": set()}[kind]
    if not settings.report:
        skip = skip | {"report"}
    return tuple(s for s in STAGES if s not in skip)


def _open_state(dataset: Path, settings: RunSettings, allow_changed: bool, echo: Callable[[str], None]) -> RunState:
    new_fingerprint = settings.fingerprint()
    state = RunState.load(dataset)
    if state is None:
        if _foreign(dataset):
            raise StateError(
                f"{dataset} is not empty and holds no gbifxdl run; choose an empty or new folder"
            )
        state = RunState(path=dataset / STATE_FILE)
        state.settings = _plain(settings)
        state.fingerprint = new_fingerprint
        state.save()
        return state
    changed = [s for s, d in new_fingerprint.items() if state.fingerprint.get(s) != d]
    if changed:
        if not allow_changed:
            raise StateError(
                f"{dataset} was started with other {', '.join(changed)} settings; run it with "
                "the same settings, pass --allow-changed-settings to redo the stages they "
                "affect, or choose a new folder"
            )
        first = min(STAGES.index(s) for s in changed)
        if "request" in changed:
            state.download_key = None
            state.archive = None
        _forget_outputs(dataset, changed)
        # curation rewrites the fetch's table: fetch reassembles it (downloading nothing)
        first = min(first, STAGES.index("fetch")) if "curate" in changed else first
        for stage in STAGES[first:]:
            state.done.pop(stage, None)
        echo(f"Settings changed ({', '.join(changed)}): redoing from '{STAGES[first]}'.")
        state.settings = _plain(settings)
        state.fingerprint = new_fingerprint
        state.save()
    return state


# what each stage writes, removed when its settings (or an earlier stage's) change
STAGE_OUTPUTS: dict[str, tuple[str, ...]] = {
    "request": ("download_key.txt", "archive"),
    "select": ("selection.parquet", "selection.summary.json"),
    "fetch": ("images", "shards", ".gbifxdl/fetch", "fetch.log"),
    "curate": ("metadata.parquet", "removed.parquet", "curate_summary.json"),
    "report": ("README.md", "ATTRIBUTION.csv", "report.html"),
}


def _forget_outputs(dataset: Path, changed: list[str]) -> None:
    """Delete the outputs of the stages from the first changed one on (fetch state kept for curate-only changes)."""
    first = min(STAGES.index(s) for s in changed)
    for stage, names in STAGE_OUTPUTS.items():
        if STAGES.index(stage) < first:
            continue
        for name in names:
            target = dataset / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()


def _foreign(dataset: Path) -> bool:
    """Tell whether a folder without run state holds files that a run did not write."""
    ours = {".gbifxdl", LOG_FILE, "archive"}
    return any(p.name not in ours for p in dataset.iterdir())


def _attach_log(dataset: Path) -> logging.Handler:
    handler = logging.FileHandler(dataset / LOG_FILE, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("gbifxdl")
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    return handler


def _state_defaults() -> dict[str, Any]:
    return {"settings": {}, "fingerprint": {}, "download_key": None, "archive": None, "done": {}}


def _plain(obj: Any) -> Any:
    """Turn settings dataclasses into JSON-ready dicts (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
