"""The small members of a GBIF DWCA: meta.xml, metadata.xml (EML), citations, rights, datasets.

Shaped after a real GBIF download archive (namespace, attributes, EML layout), with
values escaped for XML.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Sequence
from xml.sax.saxutils import escape, quoteattr

from gbifxdl.testing._occurrences import Dataset
from gbifxdl.testing._terms import INTERPRETED, MULTIMEDIA, VERBATIM

OCCURRENCE_ROW_TYPE = "http://rs.tdwg.org/dwc/terms/Occurrence"
MULTIMEDIA_ROW_TYPE = "http://rs.gbif.org/terms/1.0/Multimedia"
LICENSE_URLS = {
    "CC0_1_0": ("http://creativecommons.org/publicdomain/zero/1.0/legalcode", "Public Domain (CC0 1.0)"),
    "CC_BY_4_0": ("http://creativecommons.org/licenses/by/4.0/legalcode",
                  "Creative Commons Attribution (CC-BY) 4.0 License"),
    "CC_BY_NC_4_0": ("http://creativecommons.org/licenses/by-nc/4.0/legalcode",
                     "Creative Commons Attribution Non Commercial (CC-BY-NC) 4.0 License"),
}
_EML_HEAD = """<?xml version="1.0" encoding="utf-8"?>
<eml:eml xmlns:eml="eml://ecoinformatics.org/eml-2.1.1" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="eml://ecoinformatics.org/eml-2.1.1 http://rs.gbif.org/schema/eml-gbif-profile/1.1/eml.xsd"
        packageId={package}  system="http://gbif.org" scope="system"
  xml:lang="en">
"""
_GBIF_PERSON = """    <individualName>
          <surName>GBIF Download Service</surName>
    </individualName>
<electronicMailAddress>support@gbif.org</electronicMailAddress>"""


def meta_xml() -> str:
    """Return meta.xml describing occurrence.txt, verbatim.txt and multimedia.txt."""
    attributes = ('encoding="UTF-8" fieldsTerminatedBy="\\t" linesTerminatedBy="\\n" '
                  'fieldsEnclosedBy="" ignoreHeaderLines="1"')
    parts = ['<archive xmlns="http://rs.tdwg.org/dwc/text/" metadata="metadata.xml">']

    def section(tag: str, row_type: str, location: str, id_tag: str,
                columns: Sequence[tuple[str, str, bool]], defaults: Sequence[tuple[str, str]] = ()) -> None:
        parts.append(f'  <{tag} {attributes} rowType="{row_type}">')
        parts.append(f"    <files>\n      <location>{location}</location>\n    </files>")
        parts.append(f'    <{id_tag} index="0" />')
        for term, value in defaults:  # a constant column: a default and no index
            parts.append(f'    <field default="{value}" term="{term}"/>')
        for index, (_, term, is_array) in enumerate(columns):
            delimited = ' delimitedBy=";"' if is_array else ""
            parts.append(f'    <field index="{index}"{delimited} term="{term}"/>')
        parts.append(f"  </{tag}>")

    section("core", OCCURRENCE_ROW_TYPE, "occurrence.txt", "id", INTERPRETED,
            [("http://rs.tdwg.org/dwc/terms/geodeticDatum", "WGS84")])
    section("extension", OCCURRENCE_ROW_TYPE, "verbatim.txt", "coreid", VERBATIM)
    section("extension", MULTIMEDIA_ROW_TYPE, "multimedia.txt", "coreid", MULTIMEDIA)
    parts.append("</archive>\n")
    return "\n".join(parts)


def query_text(predicate: dict | None, describe: Any) -> str:
    """Return the predicate as GBIF words it in the abstract ("Country is Belgium", ...)."""

    def word(node: Any) -> Any:
        kind = node.get("type")
        if kind in ("and", "or"):
            return {kind: [word(child) for child in node.get("predicates", [])]}
        if kind == "not":
            return {"not": word(node.get("predicate", {}))}
        key = str(node.get("key") or node.get("parameter") or "")
        label = "".join(part.capitalize() for part in key.split("_"))
        if kind == "equals":
            return f"{label} is {describe(key, node.get('value'))}"
        if kind == "in":
            return f"{label} is one of ({', '.join(describe(key, v) for v in node.get('values', []))})"
        if kind in ("isNull", "isNotNull"):
            return f"{label} is {'empty' if kind == 'isNull' else 'not empty'}"
        if kind in ("within", "geoDistance"):
            return f"Geometry {kind} {node.get('geometry') or node.get('distance', '')}".strip()
        words = {"lessThan": "<", "lessThanOrEquals": "<=", "greaterThan": ">",
                 "greaterThanOrEquals": ">=", "like": "like"}
        return f"{label} {words.get(kind, kind)} {node.get('value')}"

    if not predicate:
        return "{ }"
    return json.dumps(word(predicate), indent=2, ensure_ascii=False).replace('": ', '" : ')


# what marks the emulator's archives (their zip comment, read back as the provenance's `emulator`)
# and search answers (a header): the card, the report and `gbifxdl derive` tell a demo dataset from
# one of GBIF's by it
EMULATOR_NOTE = "gbifxdl's offline GBIF emulator (gbifxdl.testing), whose records, photos, key and DOI are made up"


def metadata_xml(download_key: str, doi: str | None, created: dt.datetime, query: str,
                 counts: Sequence[tuple[Dataset, int]]) -> str:
    """Return the download's EML: DOI as packageId, key, query abstract, citation.

    ``doi=None`` writes a download from before GBIF minted DOIs (2014): the key stands
    where the DOI goes (packageId, the citation's identifier, the title).
    """
    lines = "\n".join(f"{n} records from {d.title}" for d, n in counts)
    doi = doi or download_key
    title = f"GBIF Occurrence Download {doi}"
    return (_EML_HEAD.format(package=quoteattr(doi)) + f"""
<dataset>
        <alternateIdentifier>{escape(download_key)}</alternateIdentifier>
    <title>{escape(title)}</title>
    <creator>
{_GBIF_PERSON}    </creator>
    <metadataProvider>
{_GBIF_PERSON}    </metadataProvider>
      <pubDate>
      {created:%Y-%m-%d}
      </pubDate>
    <language>ENGLISH</language>
    <abstract>
        <para>{_xml(f"A dataset containing all occurrences available in GBIF matching the query:{chr(10)}{query}{chr(10)}The dataset includes records from the following constituent datasets. The full metadata for each constituent is also included in this archive:{chr(10)}{lines}")}</para>
    </abstract>
      <contact>
{_GBIF_PERSON}      </contact>

</dataset>

<additionalMetadata>
    <metadata>
      <gbif>
        <dateStamp>{created:%Y-%m-%dT%H:%M:%SZ}</dateStamp>
      <citation identifier={quoteattr(doi)}>{escape(title)}</citation>
              <physical>
                  <objectName>Darwin Core Archive</objectName>
                  <characterEncoding>UTF-8</characterEncoding>
                  <dataFormat>
                      <externallyDefinedFormat>
                          <formatName>Darwin Core Archive</formatName>
                      </externallyDefinedFormat>
                  </dataFormat>
                  <distribution>
                      <online>
                          <url function="download">https://api.gbif.org/v1/occurrence/download/request/{escape(download_key)}.zip</url>
                      </online>
                  </distribution>
              </physical>
      </gbif>
    </metadata>
</additionalMetadata>

</eml:eml>
""")


def dataset_citation(dataset: Dataset, created: dt.datetime) -> str:
    """Return the dataset's citation line as GBIF writes it in citations.txt."""
    return (f"{dataset.publisher} ({created.year}). {dataset.title}. Occurrence dataset "
            f"https://doi.org/{dataset.doi} accessed via GBIF.org on {created:%Y-%m-%d}.")


def citations_txt(datasets: Sequence[Dataset], created: dt.datetime) -> str:
    """Return citations.txt: the usage note, then one citation per dataset."""
    head = ("When using this dataset please use the following citation and pay attention to "
            "the rights documented in rights.txt:\n")
    return head + "".join(dataset_citation(d, created) + "\n" for d in datasets)


def rights_txt(datasets: Sequence[Dataset]) -> str:
    """Return rights.txt: each dataset's title and licence."""
    return "\n" + "".join(f"Dataset: {d.title}\nRights as supplied: {LICENSE_URLS[d.license][0]}\n"
                          for d in datasets)


def dataset_xml(dataset: Dataset, created: dt.datetime) -> str:
    """Return dataset/<uuid>.xml: the constituent dataset's EML."""
    url, label = LICENSE_URLS[dataset.license]
    return (_EML_HEAD.format(package=quoteattr(dataset.key)) + f"""
<dataset>
      <alternateIdentifier>{escape(dataset.doi)}</alternateIdentifier>
    <title>{escape(dataset.title)}</title>
    <creator>
    <organizationName>{escape(dataset.publisher)}</organizationName>
    </creator>
    <language>en</language>
      <intellectualRights>
        <para>This work is licensed under a <ulink url={quoteattr(url)}><citetitle>{escape(label)}</citetitle></ulink>.</para>
      </intellectualRights>
</dataset>

<additionalMetadata>
    <metadata>
      <gbif>
        <dateStamp>{created:%Y-%m-%dT%H:%M:%SZ}</dateStamp>
      <citation>{escape(dataset_citation(dataset, created))}</citation>
      </gbif>
    </metadata>
</additionalMetadata>

</eml:eml>
""")


def _xml(text: str) -> str:
    """Return text escaped for an XML element, quotes as entities (as GBIF writes them)."""
    return escape(text, {'"': "&quot;"})
