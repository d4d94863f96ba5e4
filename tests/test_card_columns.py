"""The card's facts counted a column at a time agree with the facts of the whole table."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings, strategies as st

from _dataset_factory import standard_dataset
from gbifxdl.curate import curate
from gbifxdl.curate.toolkit import METADATA
from gbifxdl.publish.facts import count_distinct, dataset_facts, read_column, read_columns


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), max_size=30), min_size=1, max_size=4))
def test_distinct_gbif_ids_are_counted_as_arrow_counts_them(chunks: list[list[int | None]]) -> None:
    column = pa.chunked_array(chunks, pa.int64())
    assert count_distinct(column) == pc.count_distinct(column).as_py()
    assert count_distinct(column.combine_chunks()) == pc.count_distinct(column).as_py()


def test_text_columns_are_counted_too() -> None:
    assert count_distinct(pa.chunked_array([["a", None, "b"], ["a"]])) == 2


def test_facts_read_column_by_column_equal_the_facts_of_the_table(tmp_path: Path) -> None:
    root = standard_dataset(tmp_path / "ds", "webdataset").root
    curate(root, progress=False, card=False)
    path = root / METADATA
    whole = read_columns(path, ("speciesKey", "split", "shard", "license", "datasetKey", "gbifID", "countryCode"))
    streamed, held = dataset_facts(root), dataset_facts(root, whole, whole.schema)
    assert streamed.images == held.images == whole.num_rows
    for name in ("classes", "splits", "licences", "licence_hub", "per_dataset", "countries", "layout", "class_column"):
        assert getattr(streamed, name) == getattr(held, name), name
    assert streamed.per_dataset and streamed.layout == "webdataset"
    assert streamed.arrow("shard").to_pylist() == whole.column("shard").to_pylist()  # read when asked
    assert read_column(path, "no_such_column").null_count == whole.num_rows
