"""Second pass, in DuckDB (out of core: it spills to disk past its memory limit), on
narrow keys only: join media to occurrences, de-duplicate URLs, pick one image per
occurrence, apply the per-class minimum and cap. The wide columns are joined back by
row position afterwards (:mod:`.assemble`), which is far cheaper than a wide hash join.
URLs are compared by a 64-bit hash, and by the URL itself (read back from the wide
file) wherever hashes are shared, so the de-duplication is exact.

Every random choice orders rows by a key the first pass drew from the seed and the
row's place in the file (``r_occ``, ``r_cap``): reproducible for a seed, different for
another, and never the file order.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from gbifxdl.select.settings import SelectSettings
from gbifxdl.select.stream import PassFiles

log = logging.getLogger(__name__)


@dataclass
class EngineCounts:
    """What the second pass dropped, and what it kept."""

    dropped: Counter[str] = field(default_factory=Counter)
    ambiguous_urls: int = 0  # distinct URLs shared by occurrences of different classes
    classes_below_minimum: int = 0
    rows: int = 0
    classes: int = 0


def _lit(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


class Engine:
    """A DuckDB session over the first pass's key files; :meth:`kept` streams the result.

    ``memory_limit`` is a fixed budget, so peak memory does not grow with the archive:
    past it DuckDB spills to ``workdir`` (at 2 million occurrences 64 MB still works,
    only slower).
    """

    def __init__(self, files: PassFiles, workdir: Path, urls: Callable[[np.ndarray], pa.Table],
                 memory_limit: str = "256MB", threads: int | None = None):
        spill = workdir / "duckdb-spill"
        spill.mkdir(exist_ok=True)
        config: dict[str, str | int | bool] = {"memory_limit": memory_limit, "temp_directory": str(spill),
                                               "preserve_insertion_order": False}
        if threads:
            config["threads"] = threads
        self.con = duckdb.connect(config=config)
        self.con.execute("SET enable_progress_bar = false")
        self.files = files
        self.urls = urls  # media row positions -> a table whose first column is their URLs
        self.counts = EngineCounts()

    def close(self) -> None:
        """Close the DuckDB session."""
        self.con.close()

    def select(self, settings: SelectSettings) -> EngineCounts:
        """Return the counts of the second pass, leaving the kept rows in view ``final``."""
        _prepare(self.con, self.files, settings, self.counts, self.urls)
        self.counts.rows, self.counts.classes = (int(v) for v in _run(  # type: ignore[union-attr]
            self.con, "SELECT count(*), count(DISTINCT cls) FROM final").fetchone())
        return self.counts

    def kept(self, batch_size: int = 32 * 1024) -> Iterator[pa.RecordBatch]:
        """Yield the kept rows as batches of ``_mid``, ``_row``, in ``_mid`` order."""
        self.con.execute("SET preserve_insertion_order = true")
        yield from self.con.sql("SELECT _mid, _row FROM final ORDER BY _mid").to_arrow_reader(batch_size)


def _run(con: duckdb.DuckDBPyConnection, sql: str) -> duckdb.DuckDBPyConnection:
    started = time.perf_counter()
    result = con.execute(sql)
    log.debug("%.2f s: %s", time.perf_counter() - started, " ".join(sql.split())[:90])
    return result


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = _run(con, sql).fetchone()
    return int(row[0] or 0) if row else 0


def _drop(con: duckdb.DuckDBPyConnection, previous: str, current: str) -> str:
    """Return ``current``, having dropped the ``previous`` step's table to free its memory."""
    if previous != "c":  # the view over the joined table: nothing of its own to free
        _run(con, f"DROP TABLE {previous}")
    return current


def _prepare(con: duckdb.DuckDBPyConnection, files: PassFiles, settings: SelectSettings,
             counts: EngineCounts, urls: Callable[[np.ndarray], pa.Table]) -> None:
    _run(con, f"CREATE VIEW occ AS SELECT * FROM read_parquet({_lit(files.occurrence_keys)})")
    _run(con, f"CREATE VIEW med AS SELECT * FROM read_parquet({_lit(files.media_keys)})")
    _run(con, f"CREATE VIEW lost AS SELECT * FROM read_parquet({_lit(files.dropped_ids)})")
    # the class column is in whichever key file the first pass put it; null is a class too.
    # The join is made once, each URL reduced to the 64-bit hash the first pass drew: rows
    # whose hash is unique have a unique URL. Only rows sharing a hash (a few thousand) are
    # grouped by the URL itself, read back from the wide file, so de-duplication stays exact
    # (a hash collision never merges two URLs) and no string column enters DuckDB.
    _run(con, """
        CREATE TEMP TABLE j AS
        SELECT m._mid, o._row, m.gbifID, m.r_occ, m.r_cap, coalesce(cls, '') AS cls, m.h
        FROM med m JOIN occ o ON m.gbifID = o.gbifID""")
    shared = con.sql("""
        SELECT _mid, cls FROM j WHERE h IN (SELECT h FROM j GROUP BY h HAVING count(*) > 1)
        ORDER BY _mid""").to_arrow_table()
    con.register("shared", shared.append_column("identifier", urls(shared.column("_mid").to_numpy()).column(0)))
    _run(con, "CREATE TEMP TABLE cand AS SELECT * FROM shared")
    con.unregister("shared")
    # one row per shared URL: its first media row in file order, how many rows share it,
    # and whether they span several classes
    _run(con, """
        CREATE TEMP TABLE u AS
        SELECT min(_mid) AS _mid, count(*) AS n, min(cls) <> max(cls) AS ambiguous
        FROM cand GROUP BY identifier""")
    row = _run(con, """
        SELECT coalesce(sum(n - 1) FILTER (WHERE NOT ambiguous), 0),
               coalesce(sum(n) FILTER (WHERE ambiguous), 0), count(*) FILTER (WHERE ambiguous)
        FROM u""").fetchone()
    duplicates, ambiguous_rows, counts.ambiguous_urls = (int(v) for v in row)  # type: ignore[union-attr]
    n_joined = _count(con, "SELECT count(*) FROM j")
    n_media = _count(con, "SELECT count(*) FROM med")
    if n_media > n_joined:
        filtered = _count(con, "SELECT count(*) FROM med WHERE gbifID IN (SELECT gbifID FROM lost)")
        counts.dropped["occurrence_filtered"] = filtered
        counts.dropped["no_occurrence"] = n_media - n_joined - filtered
    keep_ambiguous = settings.ambiguous_urls == "keep-one"
    counts.dropped["duplicate_url"] = duplicates
    counts.dropped["ambiguous_url"] = ambiguous_rows - (counts.ambiguous_urls if keep_ambiguous else 0)
    # from here on, narrow rows without the URL: it is looked up again for the kept rows only
    where = "" if keep_ambiguous else "WHERE NOT ambiguous"
    _run(con, f"CREATE TEMP TABLE gone AS SELECT _mid FROM cand EXCEPT SELECT _mid FROM u {where}")
    # a view, not a copy: only the next step's result is materialised
    _run(con, "CREATE TEMP VIEW c AS SELECT * EXCLUDE (h) FROM j WHERE _mid NOT IN (SELECT _mid FROM gone)")
    current = "c"

    if settings.one_per_occurrence:
        _run(con, """
            CREATE TEMP TABLE c1 AS SELECT * FROM c WHERE _mid IN (
                SELECT arg_min(_mid, r_occ) FROM c GROUP BY gbifID)""")
        counts.dropped["other_image_of_occurrence"] = (
            n_joined - _count(con, "SELECT count(*) FROM gone") - _count(con, "SELECT count(*) FROM c1"))
        for name in ("VIEW c", "TABLE j", "TABLE cand", "TABLE u", "TABLE gone"):  # free their memory
            _run(con, f"DROP {name}")
        current = "c1"

    if settings.min_per_class:
        row = _run(con, f"""
            SELECT coalesce(sum(n), 0), count(*) FROM (SELECT count(*) AS n FROM {current} GROUP BY cls)
            WHERE n < {int(settings.min_per_class)}""").fetchone()
        counts.dropped["class_below_minimum"], counts.classes_below_minimum = (int(v) for v in row)  # type: ignore
        _run(con, f"""
            CREATE TEMP TABLE c2 AS SELECT * FROM {current} WHERE cls IN (
                SELECT cls FROM {current} GROUP BY cls HAVING count(*) >= {int(settings.min_per_class)})""")
        current = _drop(con, current, "c2")

    if settings.max_per_class:
        before = _count(con, f"SELECT count(*) FROM {current}")
        _run(con, f"""
            CREATE TEMP TABLE c3 AS SELECT * FROM {current}
            QUALIFY row_number() OVER (
                PARTITION BY cls ORDER BY r_cap
            ) <= {int(settings.max_per_class)}""")
        counts.dropped["over_class_cap"] = before - _count(con, "SELECT count(*) FROM c3")
        current = _drop(con, current, "c3")
    _run(con, f"CREATE VIEW final AS SELECT * FROM {current}")
