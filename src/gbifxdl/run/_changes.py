"""What a change of settings between two runs of one dataset means: what is redone, what is kept.

Only settings that change a stage's output count (each stage's settings say which:
``FetchSettings.output_fingerprint()`` and the like); speed and politeness settings
(connections, workers, user agent, retries, ...) may change between resumes freely.
When an output setting changes, that stage and the later ones are redone, and no more:
a fetch-only change keeps the archive and the selection; a curation-only change keeps
every fetched image (and what earlier curations set aside) and only curates again,
from the full table that fetch reassembles from its finished units.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq

from gbifxdl.curate import SET_ASIDE  # what curation removed, kept so that later curations can restore it

from gbifxdl.run import _models

if TYPE_CHECKING:
    from gbifxdl.run._job import RunSettings, RunState

STAGES = ("request", "wait", "get", "select", "fetch", "infer", "curate", "report")
SECTION_OF = {"request": "source", "select": "select", "fetch": "fetch", "infer": "models", "curate": "curate"}
# source fields that decide which occurrences come (api_url and notification do not)
SOURCE_OUTPUTS = ("predicate", "key", "archive", "format")
FETCH_STATE = Path(".gbifxdl") / "fetch"
MODEL_RESULTS = Path(".gbifxdl") / "models"  # infer's results: kept unless the images change

# what each stage writes, removed when its output settings (or an earlier stage's) change
STAGE_OUTPUTS: dict[str, tuple[str, ...]] = {
    "request": ("download_key.txt", "archive"),
    "select": ("selection.parquet", "selection.summary.json"),
    "fetch": ("shards", str(FETCH_STATE), "fetch.log", str(SET_ASIDE), str(MODEL_RESULTS)),  # + the images folder
    # a changed model: infer itself measures that model again and keeps the others' results
    "infer": (),
    "curate": ("metadata.parquet", "removed.parquet", "curate_summary.json"),
    "report": ("README.md", "ATTRIBUTION.csv", "report.html"),
}


def output_settings(settings: RunSettings) -> dict[str, dict[str, Any]]:
    """Return, per stage, the settings that decide its output."""
    source = plain(settings.source)
    return {
        # the route only when not the default, so that datasets made before it existed resume as they were
        "request": {k: source[k] for k in SOURCE_OUTPUTS} | (
            {"route": source["route"]} if source.get("route", "download") != "download" else {}),
        "select": plain(_outputs(settings.select)),
        "fetch": plain(settings.fetch.output_fingerprint()),
        "infer": _models.output_settings(settings.models),
        "curate": plain(_outputs(settings.curate)),
    }


def _outputs(obj: Any) -> Any:
    method = getattr(obj, "output_fingerprint", None)
    return method() if callable(method) else obj


@dataclass
class Change:
    """What differs between the settings a dataset was made with and the new ones."""

    outputs: dict[str, list[tuple[str, Any, Any]]]  # stage -> [(key, before, now)] of output settings
    others: dict[str, list[tuple[str, Any, Any]]] = field(default_factory=dict)  # section -> speed-only changes

    @property
    def first(self) -> str | None:
        """Return the first stage whose output settings changed (None: none did)."""
        return min(self.outputs, key=STAGES.index) if self.outputs else None

    def sections(self) -> str:
        """Return e.g. "fetch" or "select and curate": whose output settings changed."""
        names = [SECTION_OF[stage] for stage in sorted(self.outputs, key=STAGES.index)]
        return " and ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " and " + names[-1]

    def details(self) -> str:
        """Return e.g. "resize 512 -> 256", or "select: seed 0 -> 3; curate: seed 0 -> 3"."""
        parts = {SECTION_OF[stage]: ", ".join(one_change(k, a, b) for k, a, b in self.outputs[stage])
                 or "the earlier ones are unreadable" for stage in sorted(self.outputs, key=STAGES.index)}  # fmt: skip
        if len(parts) == 1:
            return next(iter(parts.values()))
        return "; ".join(f"{section}: {text}" for section, text in parts.items())


def compare(state: RunState, settings: RunSettings, new_digests: dict[str, str],
            previous: RunSettings | None) -> Change:
    """Return what changed between the saved settings in ``state`` (built again: ``previous``) and ``settings``."""
    new_outputs = output_settings(settings)
    if previous is None:  # saved by a version whose settings no longer build: trust the digests
        changed = {s: [] for s, d in new_digests.items() if state.fingerprint.get(s) != d}
        return Change(changed)
    old_outputs = output_settings(previous)
    changed = {}
    for stage, now in new_outputs.items():
        before = old_outputs[stage]
        diff = [(k, before.get(k), now.get(k)) for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k)]
        if diff:
            changed[stage] = diff
    others = {}
    old_plain, new_plain = plain(previous), plain(settings)
    for section in ("source", "wait", "select", "fetch", "curate"):
        outputs = new_outputs.get({"source": "request"}.get(section, section), {})
        a, b = old_plain[section], new_plain[section]
        diff = [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k) and k not in outputs]
        if diff:
            others[section] = diff
    return Change(changed, others)


@dataclass
class Plan:
    """What redoing from a changed stage removes and says."""

    first: str  # the stage whose output is redone first
    remove: list[str]  # paths relative to the dataset
    has_work: bool  # whether anything done would be redone (else the change is free)
    consequence: str  # e.g. "the 4,870 fetched images will be fetched again; ..."


def plan(dataset: Path, state: RunState, change: Change, previous: RunSettings | None, settings: RunSettings) -> Plan:
    """Return the plan for redoing what ``change`` affects (never removing the new source archive)."""
    from gbifxdl.errors import StateError

    first = change.first
    assert first is not None
    # fetch reassembles the full table curation rewrote, downloading nothing
    redo_from = "fetch" if first in ("infer", "curate") else first
    remove: list[str] = []
    for stage, names in STAGE_OUTPUTS.items():
        if STAGES.index(stage) >= STAGES.index(first):
            remove += names
    if STAGES.index(first) <= STAGES.index("fetch"):
        images = _images_dir(dataset, previous)
        if images is None:
            raise StateError(
                f"{dataset} keeps its images beside its tables (images_dir); redoing the fetch in place "
                "could delete other files: choose a new folder for the new settings"
            )
        remove.append(images)
    if settings.source.archive:
        source = Path(settings.source.archive).resolve()
        remove = [name for name in remove if not source.is_relative_to((dataset / name).resolve())]
    existing = [name for name in remove if (dataset / name).exists()]
    done = [s for s in STAGES[STAGES.index(redo_from):] if s in state.done]
    has_work = bool(existing or done or (first == "request" and (state.download_key or state.archive)))
    fetched = fetched_images(dataset)
    return Plan(redo_from, remove, has_work, _consequence(first, fetched))


def _consequence(first: str, fetched: int) -> str:
    n = f"{fetched:,} fetched image{'s' if fetched != 1 else ''}"
    if first == "request":
        return f"a new GBIF request will be made, and its archive selected and fetched anew (the {n} are deleted)"
    if first == "select":
        return f"the selection will be made again from the kept archive, and its images fetched anew (the {n} are deleted)"
    if first == "fetch":
        return f"the {n} will be fetched again; the archive and the selection are kept"
    if first == "infer":
        return (f"the changed models will measure the {n} again (the others' results are kept), "
                "and curation will run again (nothing is downloaded)")
    return (f"curation will run again on all {n}, from the full table (nothing is downloaded; "
            "the archive, the selection and the images are kept)")  # fmt: skip


def _images_dir(dataset: Path, previous: RunSettings | None) -> str | None:
    """Return the folder layout's images folder relative to the dataset (None: the dataset itself)."""
    name = previous.fetch.images_dir if previous is not None else "images"
    root = dataset.resolve()
    folder = (dataset / name).resolve()
    if folder == root or not folder.is_relative_to(root) or folder.name == ".gbifxdl":
        return None
    return str(folder.relative_to(root))


def fetched_images(dataset: Path) -> int:
    """Return how many images fetch has written so far (finished units and journals)."""
    state = dataset / FETCH_STATE
    if not state.is_dir():
        return 0
    total = 0
    for unit in state.glob("unit-*.parquet"):
        try:
            outcomes = pq.read_table(unit, columns=["outcome"]).column("outcome").to_pylist()
        except (OSError, ValueError, KeyError):
            continue
        total += sum(1 for o in outcomes if o == "ok")
    for journal in state.glob("unit-*.jsonl"):
        for line in journal.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                total += json.loads(line).get("outcome") == "ok"
            except (ValueError, AttributeError):
                continue  # a torn last line
    return total


def plain(obj: Any) -> Any:
    """Turn settings dataclasses into JSON-ready dicts (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def one_change(key: str, before: Any, now: Any) -> str:
    """Return e.g. 'resize 512 -> 256'."""
    def short(v: Any) -> str:
        text = json.dumps(v, sort_keys=True, default=str) if isinstance(v, (dict, list)) else str(v)
        return text if len(text) <= 40 else text[:37] + "..."

    return f"{key} {short(before)} -> {short(now)}"
