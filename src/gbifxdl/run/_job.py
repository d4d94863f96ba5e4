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
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gbifxdl.run._changes as _changes
from gbifxdl.run._changes import STAGES, plain as _plain
from gbifxdl._io import write_text_atomic
from gbifxdl.errors import ConfigError, GbifxdlError, StateError
from gbifxdl.fetch import FetchSettings
from gbifxdl.curate import CurateSettings
from gbifxdl.run._models import ModelStep, with_digests
from gbifxdl.select import SelectSettings

log = logging.getLogger(__name__)

STATE_FILE = Path(".gbifxdl") / "run.json"
ROUTES = ("download", "search", "auto")
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
    # how a predicate's occurrences come: "download" (post, wait, get the archive: needs an
    # account), "search" (GBIF's occurrence search API, no account: up to 100,000 records,
    # or capped per species), or "auto" (run chooses: see choose_route)
    route: str = "download"
    # the taxon names the predicate was built from, with the keys GBIF's species match gave them:
    # a rerun builds the same predicate without asking GBIF (issue 20, item 2)
    taxon_names: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        if self.route not in ROUTES:
            raise ConfigError(f"source route {self.route!r} is not one of {', '.join(ROUTES)}")

    def kind(self) -> str:
        given = [name for name in ("predicate", "key", "archive") if getattr(self, name)]
        if len(given) != 1:
            raise ConfigError(
                "give exactly one source: a payload JSON, taxon/country/year options, "
                "--key KEY for an existing download, or --archive FILE"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.route == "search" and given[0] != "predicate":
            raise ConfigError(f"--source search reads GBIF's occurrence search for a query (taxon, country, year ... "
                              f"or a predicate file), not for --{given[0]}: drop --source search")
        return given[0]


@dataclass(frozen=True)
class WaitSettings:
    """How to wait for GBIF to prepare the archive."""

    min_interval: float = 30.0
    max_interval: float = 300.0
    timeout: float = 7 * 24 * 3600.0

    def __post_init__(self) -> None:
        # checked when the settings are built, before any request (issue 20, item 1)
        for name in ("min_interval", "max_interval", "timeout"):
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not math.isfinite(value) or value < 0 or (value == 0 and name != "timeout"):
                raise ValueError(f"{name} must be a number of seconds above 0")
        if self.max_interval < self.min_interval:
            raise ValueError("max_interval must be at least min_interval")


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
    # the [[models]] steps, run by the "infer" stage between fetch and curate (README "Models")
    models: tuple[ModelStep, ...] = ()
    # where the fetch (and the model steps) run: "local:N" or a Dask scheduler's address (None: here, without Dask);
    # it changes no output, so a run may go on with another one
    cluster: str | None = None

    def fingerprint(self) -> dict[str, str]:
        """Give one digest per stage of the settings that decide its output (speed settings excluded)."""
        return {stage: _digest(values) for stage, values in _changes.output_settings(self).items()}


@dataclass
class RunState:
    """What is done so far; persisted atomically after every step."""

    path: Path
    settings: dict[str, Any] = field(default_factory=dict)
    fingerprint: dict[str, str] = field(default_factory=dict)
    download_key: str | None = None
    archive: str | None = None
    done: dict[str, float] = field(default_factory=dict)
    # outputs of a redone stage still to delete (relative paths): a kill midway finishes them first
    pending_removal: list[str] = field(default_factory=list)

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
            "pending_removal": self.pending_removal,
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
    quiet: bool = False,
    echo: Callable[[str], None] = print,
) -> Path:
    """Run (or continue) the whole job; return the dataset folder (for a store URL, its working copy).

    ``progress`` shows the progress bars; every stage's summary goes to ``echo`` either way,
    unless ``quiet`` (no bars and no summaries; what the settings change is still said).
    An ``output`` URL (s3://, gs://, ...) is worked on through its working copy
    (:func:`gbifxdl.store.working_copy`), pushed to the store after every stage: a run
    killed midway and run again goes on from the working copy (same machine) or from what
    the store holds (another one).
    """
    progress = progress and not quiet
    say = (lambda _: None) if quiet else echo
    if settings.models:  # what decides the models' results: their files' sha256, read now (a missing one said)
        settings = dataclasses.replace(settings, models=with_digests(settings.models))
    from gbifxdl.store import is_url, working_copy

    if not is_url(settings.output):
        dataset = Path(settings.output)
        dataset.mkdir(parents=True, exist_ok=True)
        return _run_in(dataset, settings, allow_changed_settings, progress, say, echo, lambda: None)
    if settings.cluster is not None and not settings.cluster.startswith("local:"):
        raise ConfigError(f"gbifxdl run -o {settings.output} works on a copy on this machine, which the workers of "
                          f"{settings.cluster} do not see: use --cluster local:N, or fetch with `gbifxdl fetch "
                          f"selection.parquet -o {settings.output} --cluster {settings.cluster}` and then run "
                          f"`gbifxdl curate {settings.output}`")
    with working_copy(settings.output, archive=True, must_exist=False, echo=say) as copy:
        def push() -> None:
            moved = copy.push()
            if moved.files or moved.deleted:
                say(f"{copy.url}: {moved.format('uploaded')}")

        return _run_in(copy.path, settings, allow_changed_settings, progress, say, echo, push)


def _run_in(dataset: Path, settings: RunSettings, allow_changed_settings: bool, progress: bool,
            say: Callable[[str], None], echo: Callable[[str], None], push: Callable[[], None]) -> Path:
    """Run the stages not done yet in ``dataset``, calling ``push`` after each one."""
    handler = _attach_log(dataset)
    try:
        if settings.source.route == "auto":
            earlier = RunState.load(dataset)
            source = (earlier.settings.get("source") or {}) if earlier is not None else {}
            settings = dataclasses.replace(settings, source=choose_route(settings.source, settings.select,
                                                                         source.get("route")))
            say(f"Source: GBIF's occurrence {'search' if settings.source.route == 'search' else 'download'} "
                "(--source auto)")
        state = _open_state(dataset, settings, allow_changed_settings, echo)
        if all(stage in state.done for stage in _stages(settings)):
            say(f"Nothing to do: the dataset in {settings.output} is complete.")
            return dataset
        from gbifxdl.run import _stages as stages  # the steps themselves, kept apart for size

        for stage in _stages(settings):
            if stage in state.done:
                continue
            say(f"[{stage}] ...")
            log.info("stage %s starts", stage)
            getattr(stages, f"stage_{stage}")(settings, state, dataset, progress=progress, echo=say)
            state.mark(stage)
            log.info("stage %s done", stage)
            push()
        return dataset
    finally:
        logging.getLogger("gbifxdl").removeHandler(handler)
        handler.close()


def choose_route(source: SourceSettings, select: SelectSettings, earlier: str | None = None) -> SourceSettings:
    """Return ``source`` with the route "auto" made "search" or "download".

    A resumed run keeps the route it chose first (``earlier``). Otherwise the search route
    when the query can go through the search API and either it is capped per species
    (``max_per_class`` with the class ``speciesKey``), or no GBIF account is set up
    (environment, ``.env``, ``~/.netrc``: no prompt) and the search API's count for it (one
    request) is within its 100,000-record ceiling; a download in every other case (an
    uncapped query with an account: a download has a DOI and no ceiling; a larger one
    without an account: a download, which asks for the account).
    """
    if source.route != "auto":
        return source
    if earlier in ("download", "search"):
        return dataclasses.replace(source, route=earlier)
    if source.kind() != "predicate":
        return dataclasses.replace(source, route="download")
    from gbifxdl.credentials import load_credentials
    from gbifxdl.errors import CredentialsError
    from gbifxdl.query import predicate_of
    from gbifxdl.select import search

    assert source.predicate is not None
    predicate = predicate_of(source.predicate)
    try:
        search.search_params(predicate)
    except search.SearchRefused:
        return dataclasses.replace(source, route="download")
    if select.max_per_class and select.class_column == "speciesKey":
        return dataclasses.replace(source, route="search")
    try:
        load_credentials(api_url=source.api_url, prompt=False)
        return dataclasses.replace(source, route="download")
    except CredentialsError:
        pass  # no account: the search route, if the query is small enough for it
    small = search.search_count(predicate, api_url=source.api_url) <= search.CEILING
    return dataclasses.replace(source, route="search" if small else "download")


def _stages(settings: RunSettings) -> tuple[str, ...]:
    kind = settings.source.kind()
    skip = {"archive": {"request", "wait", "get"}, "key": {"request"}, "predicate": set()}[kind]
    if settings.source.route == "search":  # the selection comes from the search API: no archive
        skip = skip | {"request", "wait", "get"}
    if not settings.report:
        skip = skip | {"report"}
    if not settings.models:
        skip = skip | {"infer"}
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
    _remove_pending(dataset, state)
    previous = _previous_settings(state.settings)
    change = _changes.compare(state, settings, new_fingerprint, previous)
    if change.first is not None:
        plan = _changes.plan(dataset, state, change, previous, settings)
        if plan.has_work and not allow_changed:
            raise StateError(
                f"{dataset} was started with other {change.sections()} settings ({change.details()}); "
                f"to go on with the new ones run again with --allow-changed-settings: {plan.consequence}; "
                "or run with the earlier settings, or choose a new folder"
            )
        said = f"{change.sections()} settings changed ({change.details()})"
        if plan.has_work:
            echo(f"{said}: {plan.consequence}.")
            log.info("%s; redoing from %s", said, plan.first)
        else:
            echo(f"{said} before the stage ran: the new ones are used.")
        if change.first == "request":
            state.download_key = None
            state.archive = None
        for stage in STAGES[STAGES.index(plan.first):]:
            state.done.pop(stage, None)
        state.pending_removal = plan.remove
    for section, diff in change.others.items():
        text = ", ".join(_changes.one_change(k, a, b) for k, a, b in diff)
        echo(f"Using the new {section} settings ({text}): they change no output, nothing is redone.")
    # the new settings are saved (speed-only ones too) before anything is deleted
    state.settings = _plain(settings)
    state.fingerprint = new_fingerprint
    state.save()
    _remove_pending(dataset, state)
    return state


def _previous_settings(data: dict[str, Any]) -> RunSettings | None:
    """Return the RunSettings saved as plain JSON in the run state (None if they no longer build)."""
    def build(cls: type, values: Any) -> Any:
        names = {f.name for f in dataclasses.fields(cls)}
        values = values if isinstance(values, dict) else {}
        return cls(**{k: _tuples(v) if k != "predicate" else v for k, v in values.items() if k in names})

    try:
        return RunSettings(
            output=str(data.get("output", "")),
            source=build(SourceSettings, data.get("source")),
            wait=build(WaitSettings, data.get("wait")),
            select=build(SelectSettings, data.get("select")),
            fetch=build(FetchSettings, data.get("fetch")),
            curate=build(CurateSettings, data.get("curate")),
            report=bool(data.get("report", True)),
            models=tuple(build(ModelStep, m) for m in data.get("models") or ()),
        )
    except (GbifxdlError, TypeError, ValueError):
        return None


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _remove_pending(dataset: Path, state: RunState) -> None:
    """Delete the outputs a settings change condemned (finishing a removal a kill interrupted)."""
    if not state.pending_removal:
        return
    for name in state.pending_removal:
        target = dataset / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    state.pending_removal = []
    state.save()


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
    return {"settings": {}, "fingerprint": {}, "download_key": None, "archive": None, "done": {}, "pending_removal": []}


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
