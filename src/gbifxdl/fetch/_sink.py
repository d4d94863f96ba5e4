"""Where finished units go: nowhere (:class:`FolderSink`, the output folder itself) or to a store
(:class:`StoreSink`), which keeps the journal of a fetch whose output is not local.

A unit is fetched into a local staging folder by the usual engine; once it is finished
(:meth:`StoreSink.unit_closed`) its result rows go to the store as
``.gbifxdl/fetch/unit-NNNNNN.uploading.parquet``, then its files (images, or its shard),
then the same rows as ``unit-NNNNNN.parquet``: the mark that the unit is done, written
last. Every put is atomic (see :mod:`gbifxdl.store`), so whatever stops a machine, the
store holds whole files only, and any machine that can read the store can resume:

- a unit with its ``.parquet`` is done, never fetched again;
- a unit with only its ``.uploading.parquet`` was cut while its files went up: the images
  already in the store (at their path, with their size) are kept, the rest fetched again
  (a shard is one put: it is there or the unit is fetched again);
- any other unit is fetched from the start.

Staging, the local folder a unit is fetched into first (:func:`staging_dir`), is shared by
a fetch to a store on this machine (:mod:`~gbifxdl.fetch.scaleout`) and the Dask task
(:mod:`~gbifxdl.fetch._on_dask_worker`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gbifxdl.errors import StateError, StorageError
from gbifxdl.fetch.settings import FetchSettings
from gbifxdl.fetch.journal import RESULT_SCHEMA, FetchState, compare_state, journal_row, wanted_state
from gbifxdl.store import Store, redact_url

if TYPE_CHECKING:
    from gbifxdl.fetch._seams import Writer

STATE_DIR = ".gbifxdl/fetch"
STATE_KEY = f"{STATE_DIR}/state.json"
_UNIT = re.compile(r"unit-(\d{6,})\.parquet$")
# puts of one unit's images at once: object stores answer each in tens of milliseconds
PUT_THREADS = 16


def unit_key(unit: int) -> str:
    """Return the store key of a finished unit's result rows."""
    return f"{STATE_DIR}/unit-{unit:06d}.parquet"


def uploading_key(unit: int) -> str:
    """Return the store key of the result rows of a unit whose files are going up."""
    return f"{STATE_DIR}/unit-{unit:06d}.uploading.parquet"


def check_state(store: Store, fingerprint: dict[str, Any], settings: FetchSettings) -> bool:
    """Record or compare the run's fingerprint in the store; return True when resuming there."""
    wanted = wanted_state(fingerprint, settings)
    try:
        saved = json.loads(store.read_bytes(STATE_KEY))
    except FileNotFoundError:
        store.put_bytes(STATE_KEY, json.dumps(wanted, indent=1, default=str).encode())
        return False
    compare_state(saved, wanted, store.describe(), "output")
    return True


class FolderSink:
    """The output folder itself: its units stay where they are fetched (a local fetch)."""

    def __init__(self, settings: FetchSettings) -> None:
        self.settings = settings

    def state(self, folder: Path, fingerprint: dict[str, Any]) -> FetchState:
        return FetchState(folder, self.settings)

    def resumes(self, state: FetchState, fingerprint: dict[str, Any]) -> bool:
        """Record or compare the fingerprint (a folder of other work is refused); True when resuming."""
        return state.check(fingerprint)

    def take_up(self, state: FetchState, writer: Writer, units: set[int]) -> set[int]:
        """Return the units not finished; with ``retry_failed``, finished units with failures are reopened first."""
        if self.settings.retry_failed:
            _reopen_failed(state, writer, units)
        return {unit for unit in units if not state.unit_done(unit)}

    def holds(self, entry: dict[str, Any]) -> bool:
        return False

    def unit_closed(self, state: FetchState, unit: int) -> None:
        """Nothing to do: the unit is where it goes."""


def _reopen_failed(state: FetchState, writer: Writer, units: set[int]) -> None:
    for unit in sorted(units):
        if not state.unit_done(unit):
            continue
        outcomes = state.read_unit(unit).column("outcome")
        if pc.all(pc.equal(outcomes, "ok")).as_py():
            continue
        ok = state.ok_rows(unit)
        old_shards = writer.restore(unit, ok)
        state.reopen(unit, ok)
        for name in old_shards:
            (state.out_dir / name).unlink(missing_ok=True)


class StoreSink:
    """Sends each finished unit of a staging folder to the store; tells which units are done there."""

    def __init__(self, store: Store, settings: FetchSettings) -> None:
        self.store = store
        self.settings = settings
        self.held: set[str] = set()  # image paths already in the store (a cut upload's)

    def state(self, folder: Path, fingerprint: dict[str, Any]) -> FetchState:
        """Return the staging folder's state, emptied first when it belongs to other work."""
        return prepare_staging(folder, fingerprint, self.settings)

    def resumes(self, state: FetchState, fingerprint: dict[str, Any]) -> bool:
        """True: staging may always hold a killed run's temporaries (its state is checked already)."""
        return True

    def take_up(self, state: FetchState, writer: Writer, units: set[int]) -> set[int]:
        """Send to the store the units finished in staging but not there yet; return the others."""
        return upload_finished(state, self, units)

    def done_units(self) -> set[int]:
        """Return the units the store holds finished (one listing)."""
        done = set()
        for key in self.store.list_sizes(STATE_DIR):
            m = _UNIT.search(key)
            if m and not key.endswith(".uploading.parquet"):
                done.add(int(m.group(1)))
        return done

    def read_unit(self, unit: int) -> pa.Table:
        """Return a finished unit's result rows from the store."""
        return _result_table(self.store.read_bytes(unit_key(unit)))

    def holds(self, entry: dict[str, Any]) -> bool:
        """Return whether a journalled image is already in the store (so it is not fetched again)."""
        return entry.get("path") in self.held

    def unit_closed(self, state: FetchState, unit: int) -> None:
        """Put a unit finished in ``state``'s folder into the store; its local files go."""
        rows = state.unit_path(unit).read_bytes()
        table = _result_table(rows)
        self.store.put_bytes(uploading_key(unit), rows)
        if self.settings.layout == "webdataset":
            names = sorted({s for s in table.column("shard").to_pylist() if s})
        else:
            ok = [o == "ok" for o in table.column("outcome").to_pylist()]
            names = [p for p, good in zip(table.column("path").to_pylist(), ok) if good and p]
        with ThreadPoolExecutor(min(PUT_THREADS, max(1, len(names)))) as pool:
            list(pool.map(lambda name: self._put(state.out_dir, name), names))
        self.store.put_bytes(unit_key(unit), rows)
        self.store.remove(uploading_key(unit))

    def _put(self, base: Path, name: str) -> None:
        local = base / name
        if local.exists():
            self.store.put_file(local, name)
        elif name not in self.held and not self.store.exists(name):
            raise StorageError(f"{local} vanished before it reached {self.store.describe(name)}; "
                               "run the same command again: the unit is fetched again")

    def recover(self, state: FetchState, unit: int) -> bool:
        """Take up a unit whose upload was cut; return True when that finished it.

        Images the store already holds are journalled in ``state`` (and remembered in
        :attr:`held`) so that only the missing ones are fetched again.
        """
        try:
            rows = self.store.read_bytes(uploading_key(unit))
        except FileNotFoundError:
            return False
        table = _result_table(rows)
        entries = table.to_pylist()
        if self.settings.layout == "webdataset":
            shards = {e["shard"] for e in entries if e["shard"]}
            if all(self.store.exists(s) for s in shards):
                self.store.put_bytes(unit_key(unit), rows)
                self.store.remove(uploading_key(unit))
                return True
            return False
        ok = [(i, e) for i, e in enumerate(entries) if e["outcome"] == "ok" and e["path"]]
        with ThreadPoolExecutor(PUT_THREADS) as pool:
            sizes = list(pool.map(lambda ie: self.store.size(ie[1]["path"]), ok))
        present = {i for (i, e), size in zip(ok, sizes) if size == e["bytes"]}
        self.held.update(entries[i]["path"] for i in present)
        keep = [dict(journal_row(e), i=i) for i, e in enumerate(entries) if e["outcome"] != "ok" or i in present]
        state.reopen(unit, keep)
        return False


def _result_table(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data)).cast(RESULT_SCHEMA)


def _staging_root(target: str) -> Path:
    """Return this machine's staging folder for the output ``target`` (not created)."""
    base = os.environ.get("GBIFXDL_STAGING") or os.path.join(tempfile.gettempdir(), f"gbifxdl-staging-{os.getuid()}")
    return Path(base, hashlib.sha256(redact_url(target).encode()).hexdigest()[:16])


def staging_dir(target: str, *parts: str) -> Path:
    """Return this machine's staging folder for the output ``target`` (created)."""
    path = _staging_root(target).joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def take_staging(target: str) -> str:
    """Remove this machine's staging folder of ``target``, whose fetch is complete; return the fetch logs
    it held (text, for the store's ``fetch.log``). The staging base goes too when nothing else is in it."""
    root = _staging_root(target)
    texts = []
    with contextlib.suppress(OSError):  # Dask workers of one machine share it: another may remove it first
        for path in sorted(root.rglob("fetch.log")):
            with contextlib.suppress(OSError):
                texts.append(path.read_text(encoding="utf-8", errors="replace"))
    text = "".join(texts)
    shutil.rmtree(root, ignore_errors=True)
    with contextlib.suppress(OSError):
        root.parent.rmdir()  # another output's staging, or a file of the user's: kept
    return text


def prepare_staging(folder: Path, fingerprint: dict[str, Any], settings: FetchSettings) -> FetchState:
    """Return the fetch state of a staging folder, emptied first when it belongs to other work."""
    state = FetchState(folder, settings)
    try:
        state.check(fingerprint)
    except StateError:
        # staging is a cache of work in progress: the store decides what is done
        shutil.rmtree(folder)
        state = FetchState(folder, settings)
        state.check(fingerprint)
    return state


def upload_finished(state: FetchState, sink: StoreSink, units: set[int]) -> set[int]:
    """Send to the store the units finished in staging but not there yet; return the others."""
    left = set()
    for unit in sorted(units):
        if state.unit_done(unit):
            sink.unit_closed(state, unit)
        elif not sink.recover(state, unit):
            left.add(unit)
    return left
