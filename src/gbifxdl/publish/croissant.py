"""``croissant.json``: the dataset described in MLCommons Croissant 1.0 (JSON-LD).

It names the dataset and how to cite it (the GBIF download DOI, and the derived-dataset
DOI once registered), its files with their sha256 (``metadata.parquet``; the images as a
FileSet, or each WebDataset shard), two record sets — ``metadata`` (one record per image:
its label, the taxonomy and the Darwin Core terms kept) and ``images`` (each image's bytes
joined to its row by path or sample key) — and the responsible-AI facts that fit: how the
data was collected and its known biases (geographic and taxonomic skew, measured here).
Written with the standard library only; ``mlcroissant`` reads and validates it offline.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gbifxdl import __version__
from gbifxdl._io import sha256_file, write_text_atomic
from gbifxdl._locate import REMOVED
from gbifxdl._marks import MARKS, REMOVING, latest_marks
from gbifxdl._meta import HOMEPAGE
from gbifxdl.publish.credit import citation_text
from gbifxdl.publish.facts import TAXON_RANKS, DatasetFacts, dataset_facts

__all__ = ["CROISSANT", "write_croissant"]

CROISSANT = "croissant.json"
CONTEXT: dict[str, Any] = {
    "@language": "en", "@vocab": "https://schema.org/", "citeAs": "cr:citeAs", "column": "cr:column",
    "conformsTo": "dct:conformsTo", "cr": "http://mlcommons.org/croissant/", "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"}, "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/", "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"}, "extract": "cr:extract", "field": "cr:field",
    "fileProperty": "cr:fileProperty", "fileObject": "cr:fileObject", "fileSet": "cr:fileSet", "format": "cr:format",
    "includes": "cr:includes", "isLiveDataset": "cr:isLiveDataset", "jsonPath": "cr:jsonPath", "key": "cr:key",
    "md5": "cr:md5", "parentField": "cr:parentField", "path": "cr:path", "recordSet": "cr:recordSet",
    "references": "cr:references", "regex": "cr:regex", "repeated": "cr:repeated", "replace": "cr:replace",
    "samplingRate": "cr:samplingRate", "sc": "https://schema.org/", "separator": "cr:separator", "source": "cr:source",
    "subField": "cr:subField", "transform": "cr:transform",
}  # fmt: skip
# Darwin Core terms (and GBIF keys) kept as fields, with their schema.org type
_TEXT = ("scientificName", "taxonRank", "basisOfRecord", "countryCode", "eventDate", "datasetKey", "license",
         "creator", "rightsHolder", "publisher", "references", "identifier", "url_hash", "sha256", "split")
_INTEGER = ("gbifID",) + tuple(f"{r}Key" for r in TAXON_RANKS) + ("taxonKey", "acceptedTaxonKey")
_FLOAT = ("decimalLatitude", "decimalLongitude")
_LICENCE_URLS = {"cc0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/"}


def _licence_url(hub: str) -> str:
    if hub in _LICENCE_URLS:
        return _LICENCE_URLS[hub]
    *code, version = hub[3:].split("-")
    return f"https://creativecommons.org/licenses/{'-'.join(code)}/{version}/"


def _field(record_set: str, name: str, data_type: str, column: str, **extra: Any) -> dict[str, Any]:
    return {"@type": "cr:Field", "@id": f"{record_set}/{name}", "name": name, "dataType": data_type,
            "source": {"fileObject": {"@id": "metadata.parquet"}, "extract": {"column": column}}, **extra}


def _distribution(facts: DatasetFacts) -> list[dict[str, Any]]:
    root = facts.root
    files: list[dict[str, Any]] = [{
        "@type": "cr:FileObject", "@id": "metadata.parquet", "name": "metadata.parquet",
        "description": "One row per image: its class, split, taxonomy, Darwin Core terms, licence and sha256.",
        "contentUrl": "metadata.parquet", "encodingFormat": "application/x-parquet",
        "sha256": facts.table_sha256,
    }]  # fmt: skip
    if facts.layout == "folders":
        files.append({
            "@type": "cr:FileSet", "@id": "image-files", "name": "image-files",
            "description": "The images, one folder per class; each file's sha256 is in metadata.parquet.",
            "encodingFormat": "image/jpeg", "includes": "images/*/*",
        })  # fmt: skip
        return files
    shards = sorted(s for s in pc.unique(facts.arrow("shard")).to_pylist() if s)
    for shard in shards:
        files.append({"@type": "cr:FileObject", "@id": shard, "name": shard, "contentUrl": shard,
                      "encodingFormat": "application/x-tar", "sha256": sha256_file(root / shard)})  # fmt: skip
    files.append({
        "@type": "cr:FileSet", "@id": "image-files", "name": "image-files",
        "description": "The images inside the WebDataset shards (<key>.jpg next to <key>.json).",
        "containedIn": [{"@id": s} for s in shards], "encodingFormat": "image/jpeg", "includes": "*.jpg",
    })  # fmt: skip
    return files


def _record_sets(facts: DatasetFacts) -> list[dict[str, Any]]:
    columns = set(facts.schema.names if facts.schema is not None else facts.table.column_names)
    meta = [_field("metadata", "label", "sc:Text", facts.class_column,
                   description=f"The class: `{facts.class_column}` (a GBIF taxon key).")]
    meta += [_field("metadata", r, "sc:Text", r, description=f"Taxon name at rank {r}.") for r in TAXON_RANKS if r in columns]
    meta += [_field("metadata", c, "sc:Integer", c) for c in _INTEGER if c in columns]
    meta += [_field("metadata", c, "sc:Float", c) for c in _FLOAT if c in columns]
    meta += [_field("metadata", c, "sc:Text", c) for c in _TEXT if c in columns]
    join = "path" if facts.layout == "folders" else "key"
    meta.append(_field("metadata", join, "sc:Text", join))
    # the image's file path (or sample key) is taken from the FileSet and joined to the row
    regex = r"^.*?(images/[^/]+/[^/]+)$" if facts.layout == "folders" else r"^(?:.*/)?([^/.]+)(?:\.[a-z]+)?$"
    images = [
        {"@type": "cr:Field", "@id": "images/image", "name": "image", "dataType": "sc:ImageObject",
         "source": {"fileSet": {"@id": "image-files"}, "extract": {"fileProperty": "content"}}},
        {"@type": "cr:Field", "@id": f"images/{join}", "name": join, "dataType": "sc:Text",
         "source": {"fileSet": {"@id": "image-files"}, "extract": {"fileProperty": "fullpath"},
                    "transform": {"regex": regex}},
         "references": {"field": {"@id": f"metadata/{join}"}}},
        {"@type": "cr:Field", "@id": "images/label", "name": "label", "dataType": "sc:Text",
         "source": {"field": {"@id": "metadata/label"}}},
        {"@type": "cr:Field", "@id": "images/scientificName", "name": "scientificName", "dataType": "sc:Text",
         "source": {"field": {"@id": "metadata/scientificName"}}},
    ]  # fmt: skip
    return [
        {"@type": "cr:RecordSet", "@id": "metadata", "name": "metadata", "key": {"@id": f"metadata/{join}"},
         "description": "One record per image, from metadata.parquet.", "field": meta},
        {"@type": "cr:RecordSet", "@id": "images", "name": "images",
         "description": "Each image with its label, joined to its metadata record.", "field": images},
    ]  # fmt: skip


def _biases(facts: DatasetFacts) -> str:
    n = max(facts.images, 1)
    top = facts.countries[:3]
    geo = ", ".join(f"{c} {100 * k / n:.0f} %" for c, k in top) or "unknown"
    sizes = [k for _, k in facts.classes]
    taxa = (f"the largest class holds {max(sizes)} images and the smallest {min(sizes)} "
            f"(ratio {max(sizes) / max(min(sizes), 1):.1f})") if sizes else "no classes"  # fmt: skip
    return (
        "GBIF occurrences reflect where and what people record, not where species live. "
        f"Geographic skew: the three most frequent countries hold {geo} of the images "
        f"({len(facts.countries)} countries in all). Taxonomic skew: {taxa}; common, large and "
        "conspicuous species are over-represented. Images come from a few platforms and photographers."
    )


def curated_models(root: Path) -> dict[str, Any]:
    """Return what the last curation's model rules did (``curate_summary.json``'s ``models``: each model with
    its file and sha256, each rule with the images it removed, the crops), {} when none applied."""
    try:
        return json.loads((root / "curate_summary.json").read_text()).get("models") or {}
    except (OSError, ValueError, AttributeError):
        return {}


def model_protocol(models: dict[str, Any]) -> list[str]:
    """Return one sentence per model and per rule of a curation's model rules (Croissant's
    ``rai:dataPreprocessingProtocol``; the card says the same in tables)."""
    out = [f"Model {m['name']}: {m['file']} (sha256 {m['sha256']}, {m['kind']}), run over the images with "
           f"gbifxdl infer; {m['images']} images measured." for m in models.get("models", [])]
    for rule in models.get("rules", []):
        out.append(f"Rule `{rule['rule']}`: {rule['removed']} images removed (removed_reason {rule['reason']})"
                   + (f"; {rule['cropped']} images cropped to the detector's box (crop_box, pixels x, y, width, "
                      "height of the original)" if "cropped" in rule else "") + ".")
    return out


def review_summary(root: Path, reasons: list[str | None] | None = None) -> str | None:
    """Return the sentence on people's review (``gbifxdl review``): how many images they marked, and how
    many curation removed for it (``reasons``: ``removed.parquet``'s removed_reason, read when not given);
    None when nobody reviewed."""
    marks = latest_marks(root)
    if not marks:
        return None
    if reasons is None:
        try:
            reasons = pq.read_table(root / REMOVED, columns=["removed_reason"]).column(0).to_pylist()
        except (OSError, KeyError, pa.ArrowInvalid):
            reasons = []
    gone = sum(1 for r in reasons if r in REMOVING.values())
    counts = Counter(marks.values())
    return (f"Reviewed by people: {len(marks)} images marked on the review page ("
            + ", ".join(f"{counts[m]} {m.replace('_', ' ')}" for m in MARKS if counts[m])
            + f"); {gone} removed for it (`review:bad`, `review:wrong_species` in `removed.parquet`).")


def croissant_json(facts: DatasetFacts, title: str | None = None, reviewed: str | None = None) -> dict[str, Any]:
    """Return the Croissant JSON-LD object describing the dataset of ``facts`` (``reviewed``: ``review_summary``'s
    sentence when the caller has it; else it is made here)."""
    prov, derived = facts.prov, facts.derived or {}
    key = prov.get("download_key")
    cite = (derived.get("citation") or "") if derived.get("doi") else ""
    cite = cite or citation_text(prov) or f"GBIF.org, GBIF Occurrence Download {key or '(unknown key)'}"
    doc: dict[str, Any] = {
        "@context": CONTEXT, "@type": "sc:Dataset", "conformsTo": "http://mlcommons.org/croissant/1.0",
        "name": title or (f"GBIF images, download {key}" if key else f"GBIF images: {facts.root.name}"),
        "description": (f"{facts.images} images of {len(facts.classes)} classes (`{facts.class_column}`) from "
                        f"{facts.occurrences} GBIF occurrences in {len(facts.per_dataset)} datasets, "
                        f"made with gbifxdl {__version__}."
                        + (f" Demo data, not from GBIF: made against {prov['emulator']}; its download key and "
                           "DOI are the emulator's." if prov.get("emulator") else "")),
        "citeAs": cite,
        # the licence covering every image; when one is unknown, the list of licences present
        "license": (_licence_url(facts.licence_hub) if facts.licence_hub.startswith("cc")
                    else sorted(v for v in pc.unique(facts.arrow("license")).to_pylist() if v)),
        "url": derived.get("sourceUrl") or (f"https://doi.org/{prov['doi']}" if prov.get("doi") else HOMEPAGE),
        "creator": {"@type": "sc:Organization", "name": "GBIF.org and the image rights holders listed in ATTRIBUTION.csv"},
        "datePublished": date.today().isoformat(), "version": "1.0.0",
        "keywords": ["biodiversity", "GBIF", "species", "image classification"],
        "isBasedOn": [f"https://doi.org/{d}" for d in (prov.get("doi"),) if d],
        "rai:dataCollection": (
            "Occurrence records with still images were downloaded from GBIF with the query in README.md; "
            "images were fetched from their publishers' hosts, validated, resized and de-duplicated by gbifxdl."),
        "rai:dataCollectionType": "Secondary data analysis",
        "rai:dataBiases": _biases(facts),
        "rai:dataLimitations": ("Labels are the identifications recorded in GBIF (many by citizen scientists) "
                                "and may be wrong; each image keeps the licence of its rights holder."),
        "rai:personalSensitiveInformation": "Recorder and photographer names (creator, rightsHolder) for attribution.",
        "distribution": _distribution(facts),
        "recordSet": _record_sets(facts),
    }  # fmt: skip
    protocol = model_protocol(curated_models(facts.root))
    reviewed = reviewed or review_summary(facts.root)
    protocol += [reviewed] if reviewed else []
    if protocol:
        doc["rai:dataPreprocessingProtocol"] = protocol
    if derived.get("doi"):
        doc["identifier"] = f"https://doi.org/{derived['doi']}"
    return doc


def write_croissant(dataset: str | Path | DatasetFacts, *, title: str | None = None,
                    reviewed: str | None = None) -> Path:
    """Return the path of ``croissant.json`` written into the dataset folder."""
    facts = dataset if isinstance(dataset, DatasetFacts) else dataset_facts(dataset)
    target = facts.root / CROISSANT
    write_text_atomic(target, json.dumps(croissant_json(facts, title, reviewed), indent=2, ensure_ascii=False) + "\n")
    return target
