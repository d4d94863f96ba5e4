"""The dataset card (``README.md``) and the per-image credits (``ATTRIBUTION.csv``).

The card tells a reader what the dataset is, where it came from (the GBIF query, the
download key and DOI, and the citation GBIF asks for), what it holds (images, classes,
splits, licences), every setting that shaped it, and how to load it.
"""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gbifxdl import __version__
from gbifxdl._io import atomic_path, write_text_atomic
from gbifxdl.archive import normalise_doi
from gbifxdl.curate import split_warnings
from gbifxdl.curate.toolkit import METADATA, REMOVED, provenance, read_table, rejected_pairs
from gbifxdl.publish.credit import bare_doi, citation_text, license_name
from gbifxdl.publish.facts import count_distinct, dataset_facts, distinct, ranked, read_column, read_columns
from gbifxdl.publish.croissant import curated_models, review_summary, write_croissant
from gbifxdl.publish.hub import front_matter, hub_data_files, write_split_tables

__all__ = ["ATTRIBUTION_COLUMNS", "citation_text", "license_name", "write_attribution", "write_card"]

ATTRIBUTION_COLUMNS = (
    "file", "gbifID", "datasetKey", "license", "license_url", "creator", "rightsHolder",
    "publisher", "references", "identifier", "split",
)  # fmt: skip

def _file_of(path: str | None, shard: str | None, key: str | None) -> str:
    return path or (f"{shard}#{key}" if shard else "")


def write_attribution(dataset_dir: str | Path) -> Path:
    """Return the path of ``ATTRIBUTION.csv``, one row per image with its licence and credits.

    Streamed: metadata.parquet is read a batch of rows at a time and the file written as it
    goes (under a temporary name, then renamed), so any number of images fits in memory.
    """
    root = Path(dataset_dir)
    path = root / METADATA
    if not path.is_file():
        read_table(path)  # raises the helpful error
    source = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    names = source.schema_arrow.names
    wanted = ("path", "shard", "key", "gbifID", "datasetKey", "license", "creator", "rightsHolder", "publisher",
              "references", "identifier", "split")
    licences: dict[str | None, str] = {}
    target = root / "ATTRIBUTION.csv"
    with atomic_path(target) as tmp, open(tmp, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(ATTRIBUTION_COLUMNS)
        for batch in source.iter_batches(batch_size=65_536, columns=[n for n in wanted if n in names]):
            n = batch.num_rows
            col = lambda name: batch.column(name).to_pylist() if name in batch.schema.names else [None] * n  # noqa: E731
            for row in zip(col("path"), col("shard"), col("key"), col("gbifID"), col("datasetKey"), col("license"),
                           col("creator"), col("rightsHolder"), col("publisher"), col("references"),
                           col("identifier"), col("split")):  # fmt: skip
                path_, shard, key, gbif_id, dataset_key, lic, *rest = row
                if lic not in licences:
                    licences[lic] = license_name(lic)
                writer.writerow([_file_of(path_, shard, key), gbif_id, dataset_key, licences[lic], lic or ""]
                                + ["" if v is None else v for v in rest])  # fmt: skip
    return target


def _table_md(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return lines


def _json_block(value: Any) -> list[str]:
    return ["```json", json.dumps(value, indent=2, sort_keys=True, default=str), "```"]


def _query_block(query: Any) -> list[str]:
    if isinstance(query, str):
        try:
            return _json_block(json.loads(query))
        except ValueError:
            return ["```", query, "```"]
    return _json_block(query)


def _counts(values: list[Any] | pa.Array | pa.ChunkedArray, null: str = "unknown") -> list[tuple[str, int]]:
    """Return (value, count) pairs, most frequent first (Arrow columns are counted columnar)."""
    return ranked(values, null)


def last_value_per_label(labels: pa.ChunkedArray | pa.Array, values: pa.ChunkedArray | pa.Array, wanted: list[str]
                    ) -> dict[str, Any]:
    """Return {label: the value of its last row} for the ``wanted`` labels (what a dict built row by row holds).

    ``labels`` may be the raw class column (any type, null for ``unlabeled``): only the rows
    of the wanted labels are turned into text.
    """
    rows = np.flatnonzero(_wanted_rows(labels, wanted))
    text = pc.fill_null(pc.cast(labels.take(pa.array(rows)), pa.string()), "unlabeled")
    table = pa.table({"label": text, "row": pa.array(rows)})
    last = table.group_by("label").aggregate([("row", "max")])
    picked = values.take(last.column("row_max")).to_pylist() if last.num_rows else []
    return dict(zip(last.column("label").to_pylist(), picked))


def _wanted_rows(labels: pa.ChunkedArray | pa.Array, wanted: list[str]) -> np.ndarray:
    """Return a boolean mask of the rows whose label (as text, null = ``unlabeled``) is in ``wanted``."""
    mask = np.zeros(len(labels), dtype=bool)
    if "unlabeled" in wanted:
        mask |= pc.is_null(labels).to_numpy(zero_copy_only=False)
    named = pa.array([w for w in wanted if w != "unlabeled"], pa.string())
    start = 0
    chunks = labels.chunks if isinstance(labels, pa.ChunkedArray) else [labels]
    for chunk in chunks:  # text a chunk at a time: never the whole column as strings
        text = pc.cast(chunk.dictionary_decode() if pa.types.is_dictionary(chunk.type) else chunk, pa.string())
        mask[start:start + len(chunk)] |= pc.fill_null(pc.is_in(text, value_set=named), False).to_numpy(
            zero_copy_only=False)
        start += len(chunk)
    return mask


def _load_section(layout: str, class_column: str, data_files: dict[str, list[str]]) -> list[str]:
    lines = [
        "## How to load it", "",
        "Every recipe runs from inside the dataset folder. The table `metadata.parquet` has one row",
        "per image, with its class, `split` (train/val/test/test_ood), the original k-fold `set`,",
        "and every GBIF field; pandas, DuckDB and Polars read it as it is:", "",
        "```python", "import pandas as pd", 'df = pd.read_parquet("metadata.parquet")',
        'train = df[df.split == "train"]', "```", "",
        "```python", "import duckdb",
        "duckdb.sql(\"SELECT split, count(*) FROM 'metadata.parquet' GROUP BY split\").show()", "```", "",
        "```python", "import polars as pl", 'df = pl.read_parquet("metadata.parquet")', "```", "",
    ]  # fmt: skip
    first = next(iter(data_files))
    lines += [
        "Hugging Face `datasets` loads the folder as it is, a split each (the front matter of this card",
        ("points it at `metadata-<split>.parquet`, one table per split whose `file_name` column names each"
         if layout == "folders" else "points it at `shards/<split>-*.tar`: curation writes each split into"),
        ("image)." if layout == "folders" else "shards of its own, each sample with its label in `cls`)."),
    ]  # fmt: skip
    if layout == "folders":  # datasets' cache of a folder keeps the images' absolute paths
        lines += [
            "The recipe names the files again: `datasets` then keys its cache by their absolute paths (and",
            "times), so a folder moved, copied or rebuilt elsewhere loads its own files, never another's:", "",
            "```python", "import os", "from datasets import load_dataset",
            f"files = {json.dumps(data_files)}",
            "ds = load_dataset(os.getcwd(), data_files=files)",
            f'image, label = ds["{first}"][0]["image"], ds["{first}"][0]["label"]', "```", "",
        ]  # fmt: skip
    else:  # its cache of shards holds the images themselves, not their paths
        lines += [
            "Its cache holds the images themselves, not their paths, so a moved or copied folder loads as",
            "it is:", "",
            "```python", "import os", "from datasets import load_dataset",
            "ds = load_dataset(os.getcwd())",
            f'image, label = ds["{first}"][0]["jpg"], ds["{first}"][0]["cls"]', "```", "",
        ]  # fmt: skip
    if layout == "folders":
        lines += [
            "Images sit in `images/<class>/<url_hash>.jpg`, so torchvision's `ImageFolder` reads them;",
            "pick a split with the table (labels are the same indices as `label` above):", "",
            "```python", "import os, pandas as pd", "from torchvision.datasets import ImageFolder",
            'df = pd.read_parquet("metadata.parquet")',
            'train_files = {os.path.abspath(p) for p in df.loc[df.split == "train", "path"]}',
            'train = ImageFolder("images", is_valid_file=lambda p: os.path.abspath(p) in train_files,',
            "                    allow_empty=True)  # classes held out whole (test_ood) have no train image",
            "```",
        ]  # fmt: skip
    else:
        lines += [
            "Images sit in WebDataset shards `shards/<split>-shard-*.tar` (`<key>.jpg`, `<key>.json` with",
            "every field of the row and its `split`, `<key>.cls` the label; key = `url_hash`); pick a split",
            "by the shards' names:", "",
            "```python", "import glob, webdataset as wds",
            'train = (wds.WebDataset(sorted(glob.glob("shards/train-*.tar")), shardshuffle=False)',
            '         .decode("pil").to_tuple("jpg", "cls", "json"))',
            "```",
        ]  # fmt: skip
    lines += [
        "", "`croissant.json` describes the files and fields in MLCommons Croissant; `mlcroissant` reads",
        "the records through it (it caches extracted shards by their path under `~/.cache/croissant`:",
        "set `CROISSANT_CACHE` to a folder of its own for each dataset):", "",
        "```python", "import mlcroissant as mlc",
        'records = mlc.Dataset(jsonld="croissant.json").records("images")', "```", "",
        "## Labels", "",
        f"The class is `{class_column}` (the GBIF taxon key; `label` in the Hugging Face tables, `cls` in",
        "the shards, is its index among the class names sorted as text, the order torchvision's",
        "`ImageFolder` uses too).",
        "Every row carries the whole taxonomy: the names `kingdom`, `phylum`, `class`, `order`, `family`,",
        "`genus`, `species` and their keys `kingdomKey` ... `speciesKey`. To train on another rank, take",
        "its column as the label, e.g. the genus:", "",
        "```python", "import pandas as pd", 'df = pd.read_parquet("metadata.parquet")',
        'df["label"] = df["genus"].astype("category").cat.codes', "```",
    ]  # fmt: skip
    return lines


def _bucket_section(url: str, layout: str, data_files: dict[str, list[str]]) -> list[str]:
    """Return the recipes that load the dataset straight from its bucket (fsspec URLs, ``storage_options``)."""
    first = next(iter(data_files))
    lines = [
        "", "### From the bucket", "",
        f"This dataset lives at `{url}`. The same libraries read it there through fsspec (`pip install s3fs`",
        "or `gcsfs`); `storage_options` are fsspec's options for it, and credentials come from the usual",
        "places (AWS variables, profiles and `AWS_ENDPOINT_URL`; Google application credentials):", "",
    ]
    if layout == "folders":
        tables = {split: f"{url}/{paths[0]}" for split, paths in data_files.items() if paths[0].endswith(".parquet")}
        lines += [
            "```python", "from datasets import Image, load_dataset",
            f'url = "{url}"', "storage_options = {}",
            f"tables = {json.dumps(tables or {first: url + '/metadata.parquet'})}",
            'ds = load_dataset("parquet", data_files=tables, storage_options=storage_options)',
            'ds = ds.map(lambda row: {"image": f"{url}/{row[\'file_name\']}"}).cast_column("image", Image())',
            f'image, label = ds["{first}"][0]["image"], ds["{first}"][0]["label"]', "```",
        ]  # fmt: skip
        return lines
    shards = {split: [f"{url}/{p}" for p in paths] for split, paths in data_files.items()}
    lines += [
        "```python", "from datasets import load_dataset", "storage_options = {}",
        f"files = {json.dumps(shards)}",
        'ds = load_dataset("webdataset", data_files=files, storage_options=storage_options)',
        f'image, label = ds["{first}"][0]["jpg"], ds["{first}"][0]["cls"]', "```", "",
        "`webdataset` reads the shards through fsspec too (or over `pipe:`, e.g. `pipe:aws s3 cp URL -`):", "",
        "```python", "import fsspec, webdataset as wds", "from webdataset.gopen import gopen_schemes",
        f'fs, root = fsspec.core.url_to_fs("{url}")',
        f'shards = [fs.unstrip_protocol(p) for p in sorted(fs.glob(root + "/{data_files[first][0]}"))]',
        'gopen_schemes[shards[0].split(":")[0]] = lambda u, mode="rb", bufsize=8192: fs.open(u, mode)',
        f"{first} = (wds.WebDataset(shards, shardshuffle=False)",
        '         .decode("pil").to_tuple("jpg", "cls", "json"))', "```",
    ]  # fmt: skip
    return lines


def _derived_section(facts: Any) -> list[str]:
    lines = ["## A DOI for this dataset", ""]
    derived = facts.derived
    if derived and derived.get("doi"):
        lines += [
            f"This curated dataset is registered with GBIF as a derived dataset, DOI "
            f"https://doi.org/{bare_doi(derived['doi'])}. Cite it as:", "",
            f"> {derived.get('citation') or 'https://doi.org/' + bare_doi(derived['doi'])}", "",
            f"It credits {len(derived.get('relatedDatasets') or {})} GBIF datasets with the occurrences each "
            "contributed after curation.",
        ]  # fmt: skip
    else:
        lines += [
            "GBIF expects a derived-dataset DOI when the data you publish or analyse is a filtered subset",
            "of a download (here, the images kept after selection and curation), so that the DOI credits",
            "each source dataset with the records it actually contributed. Register one with",
            "`gbifxdl derive DIR --title ... --source-url URL` once the dataset is deposited where others can",
            "reach it, and cite that DOI instead of the download's.",
        ]  # fmt: skip
    return lines


def near_duplicate_lines(root: Path) -> list[str]:
    """Return the card's paragraph on near duplicates: how many went, on what evidence, how many false
    matches to expect at this size (from ``curate_summary.json``; nothing before a curation)."""
    try:
        near = json.loads((root / "curate_summary.json").read_text()).get("near_duplicates") or {}
    except (OSError, ValueError):
        return []
    if not near:
        return []
    pairs, measured = near.get("pairs", {}), near.get("measured", {})
    lines = ["", f"Near duplicates: {near.get('removed', 0)} images removed as copies of another image (another "
             "size, JPEG quality, or a few percent cropped). The perceptual hashes proposed "
             f"{pairs.get('candidates', 0)} pairs; each was checked on its pixels: "
             f"{pairs.get('confirmed_by_pixels', 0)} confirmed on the image files, "
             f"{pairs.get('confirmed_by_signature', 0)} on the stored signatures alone, "
             f"{pairs.get('confirmed_by_hashes', 0)} on the hashes alone (images fetched before signatures), "
             f"{rejected_pairs(pairs)} rejected as look-alikes. "
             f"Measured by gbifxdl's bench: {measured.get('false_matches', 0)} false matches in "
             f"{measured.get('pairs', 0):,} pairs of different photos; at this dataset's size "
             f"({near.get('images', 0)} images) that is about {near.get('expected_false_matches', 0):.2g} "
             "expected false matches."]
    if near.get("held_back"):
        lines += ["", f"**Warning:** {near['held_back']} images would have been removed as near duplicates, far more "
                  "than copies usually are: they were kept, and `report.html` shows example pairs."]
    return lines


def model_lines(root: Path) -> list[str]:
    """Return the card's part on model rules: each model (file, sha256), each rule and how many images it
    removed, the crops (from ``curate_summary.json``; nothing when no rule applied)."""
    models = curated_models(root)
    if not models.get("models"):
        return []
    lines = ["", "Models: curation decided on these models' results (`gbifxdl infer`; no model ran while curating):", ""]
    lines += _table_md(("model", "file", "sha256", "kind", "images measured"), [
        (m["name"], f"`{m['file']}`", f"`{m['sha256']}`", m["kind"], m["images"]) for m in models["models"]])
    lines += ["", "Rules, in the order they apply (an image goes for the first that removes it):", ""]
    lines += _table_md(("rule", "reason in `removed.parquet`", "images removed"), [
        (f"`{r['rule']}`", f"`{r['reason']}`", r["removed"]) for r in models.get("rules", [])])
    if models.get("crop_model"):
        lines += ["", f"{models.get('cropped', 0)} images are crops of their original to the best box of "
                  f"`{models['crop_model']}`: `crop_box` in `metadata.parquet` is the part of the original each "
                  "shows (x, y, width, height in pixels); the originals are kept in `.gbifxdl/originals`."]
    return lines


def _source_table(prov: dict[str, Any], key: str | None, doi: str | None) -> list[str]:
    """Return the card's Source table for a dataset made from a GBIF download."""
    return _table_md(("field", "value"), [
        ("GBIF download key", key or ""),
        ("DOI", (f"https://doi.org/{bare_doi(doi)}" + (" (the emulator's, not a real DOI)" if prov.get("emulator") else ""))
         if doi else ""),
        ("download created", prov.get("created") or ""), ("archive", prov.get("archive") or ""),
        ("card written", date.today().isoformat()),
    ])  # fmt: skip


def _emulator_note(prov: dict[str, Any]) -> list[str]:
    """Return the card's warning that a dataset came from the GBIF emulator (the demo), else nothing."""
    if not prov.get("emulator"):
        return []
    return [f"> **Demo data, not from GBIF.** Made against {prov['emulator']}. Its download key",
            "> and DOI below are the emulator's (they resolve nowhere): do not cite them; `gbifxdl derive`",
            "> refuses to send this dataset to GBIF.", ""]


def write_card(dataset_dir: str | Path, *, title: str | None = None, attribution: bool = True) -> Path:
    """Return the path of the ``README.md`` dataset card written into ``dataset_dir``.

    Also writes ``ATTRIBUTION.csv`` unless ``attribution`` is False. Works best on a
    curated folder (splits, removals); on a fetched one it describes what is there.
    """
    root = Path(dataset_dir)
    if not (root / METADATA).is_file():
        read_table(root / METADATA)  # raises the helpful error
    schema = pq.read_schema(root / METADATA)
    prov = provenance(schema.empty_table())
    settings = (prov.get("curate_settings") or {})
    class_column = settings.get("class_column", "speciesKey")
    # each column the card counts is read alone, counted and let go: ten million rows of many
    # columns never sit in memory together
    col = lambda name: read_column(root / METADATA, name)  # noqa: E731
    facts = dataset_facts(root)
    images = facts.images
    classes = facts.classes if facts.class_column == class_column else _counts(col(class_column), null="unlabeled")
    layout = facts.layout
    key, doi = prov.get("download_key"), normalise_doi(prov.get("doi"))
    cite = citation_text(prov)
    name = title or (facts.derived or {}).get("title") or (
        f"GBIF images, download {key}" if key else f"GBIF images: {root.name}")
    split_tables = write_split_tables(facts)

    searched = prov.get("source") == "search"
    lines = front_matter(facts, name, split_tables) + [f"# {name}", ""]
    lines += [
        f"{images} images of {len(classes)} classes (`{class_column}`), from "
        + ("GBIF's occurrence search API (no download, so no download DOI)" if searched else
           f"the GBIF occurrence download {key or '(unknown)'}")
        + f"; {'fetched and curated' if 'split' in schema.names else 'fetched'} with gbifxdl {__version__}.", "",
        *_emulator_note(prov),
        "## Citation", "",
    ]
    if searched:  # GBIF's citation guidelines: a derived dataset's DOI stands for the occurrences used
        lines += [
            "A search gives no download DOI. GBIF asks that data used from searches be cited through a",
            "derived dataset: `gbifxdl derive` registers this dataset's occurrences (by GBIF dataset, counted",
            "below) and gives the DOI to cite.", "",
        ]
    else:
        lines += [
            ("The emulator's made-up citation, where a GBIF download's would be:" if prov.get("emulator") else
             "GBIF asks that you cite the download the data came from:"), "",
            f"> {cite}" if cite else "> (no DOI recorded: cite the GBIF download key above and the date)", "",
        ]
    lines += [
        "Each image keeps its own licence and owner: `ATTRIBUTION.csv` lists, for every image, its",
        "licence, creator, rights holder, publisher and source page. CC BY and CC BY-NC require",
        "that credit; CC BY-NC forbids commercial use.", "",
    ]  # fmt: skip
    lines += _derived_section(facts) + ["", "## Source", ""]
    if searched:
        search = prov.get("search") or {}
        lines += _table_md(("field", "value"), [
            ("GBIF occurrence search", prov.get("query") or ""), ("searched", prov.get("created") or ""),
            ("occurrences read", search.get("occurrences", "")), ("pages", search.get("pages", "")),
            ("card written", date.today().isoformat()),
        ])  # fmt: skip
        counted = search.get("datasets") or {}
        if counted:
            lines += ["", "Occurrences by GBIF dataset (what `gbifxdl derive` registers):", ""]
            lines += _table_md(("datasetKey", "occurrences"), list(counted.items()))
    else:
        lines += _source_table(prov, key, doi)
    if prov.get("query") and not searched:
        lines += ["", "The query (GBIF predicate):", ""] + _query_block(prov["query"])
    lines += ["", "## Contents", ""]
    splits = facts.splits
    occurrences = count_distinct(col("gbifID"))
    datasets = distinct(col("datasetKey"))
    lines += _table_md(("", "count"), [("images", images), ("classes", len(classes)),
                                       ("occurrences", occurrences), ("GBIF datasets", datasets), ("layout", layout)]
                       + [(f"split `{k}`", v) for k, v in splits])  # fmt: skip
    if "split" in schema.names:  # an empty split must never pass unnoticed
        lines += [f"\n**Warning:** {w}." for w in split_warnings(dict(splits), settings.get("fractions") or (0.8, 0.1, 0.1))]
    if "set" in schema.names:
        lines += ["", "Folds of the original `set` column: "
                  + ", ".join(f"`{k}` {v}" for k, v in sorted(_counts(col("set"))))]
    removed = (read_columns(root / REMOVED, ("removed_reason",)) if (root / REMOVED).is_file()
               else pa.table({}))  # fmt: skip
    if removed.num_rows:
        lines += ["", f"Removed during curation ({removed.num_rows} rows, listed in `removed.parquet`):", ""]
        lines += _table_md(("reason", "rows"), _counts(
            removed.column("removed_reason") if "removed_reason" in removed.column_names else pa.nulls(removed.num_rows)))
    lines += near_duplicate_lines(root)
    lines += model_lines(root)
    # people's review (gbifxdl review): said once, here and in croissant.json
    reviewed = review_summary(root, removed.column("removed_reason").to_pylist()
                              if "removed_reason" in removed.column_names else [])
    lines += ["", reviewed] if reviewed else []
    names = last_value_per_label(col(class_column), col("species"), [k for k, _ in classes[:20]])
    lines += ["", "Largest classes:", ""]
    lines += _table_md((class_column, "species", "images"),
                       [(k, names.get(k) or "", v) for k, v in classes[:20]])  # fmt: skip
    lines += ["", "## Licences", ""]
    licences = facts.licences
    lines += [f"Taken together the images may be used under the terms of **{facts.licence_name}** (the",
              f"`license: {facts.licence_hub}` of this card's front matter): the most restrictive conditions",
              "among them. Each image's own licence is in `ATTRIBUTION.csv`; the mix:", ""]
    lines += _table_md(("licence", "images", "share"),
                       [(k, v, f"{100 * v / max(images, 1):.1f} %") for k, v in licences])  # fmt: skip
    lines += ["", "## Settings", ""]
    for stage in ("select_settings", "fetch_settings", "curate_settings"):
        if prov.get(stage):
            lines += [f"`{stage.split('_')[0]}`:", ""] + _json_block(prov[stage]) + [""]
    data_files = hub_data_files(facts)
    lines += _load_section(layout, class_column, data_files)
    from gbifxdl.store import location_of

    url = location_of(root)  # a dataset in a bucket: the card was written in its working copy
    if url is not None:
        lines += _bucket_section(url, layout, data_files)
    lines += ["", "## Files", "",
              "- `metadata.parquet`: the curated table (provenance in its schema metadata, key `gbifxdl.provenance`)",
              "- `removed.parquet`: rows removed by curation, with `removed_reason` and `duplicate_of`",
              "- `ATTRIBUTION.csv`: licence and credits per image",
              "- `croissant.json`: this description in MLCommons Croissant (files, checksums, fields)",
              *([f"- `{n}`: the rows of one split, for Hugging Face `datasets`" for n in split_tables[:1]]),
              "- `curate_summary.json`, `report.html`: counts, plots and thumbnails", ""]  # fmt: skip
    target = root / "README.md"
    write_text_atomic(target, "\n".join(lines))
    write_croissant(facts, title=name, reviewed=reviewed)
    if attribution:
        write_attribution(root)
    return target

