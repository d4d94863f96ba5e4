"""Writes GBIF-shaped Darwin Core Archives from the synthetic universe, streaming.

The archive has GBIF's members and column sets (``occurrence.txt`` with the interpreted
columns in GBIF's order, ``verbatim.txt``, ``multimedia.txt``, ``meta.xml``, EML
``metadata.xml`` with the DOI, ``citations.txt``, ``rights.txt``, ``dataset/<uuid>.xml``)
and the quirks real archives have. A million occurrences are written in bounded memory:
occurrences are drawn once; occurrence.txt streams straight into the zip while the
verbatim and multimedia rows are spooled to temporary files beside the output, then
streamed in.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Sequence

from gbifxdl.testing import _dwca_text as text
from gbifxdl.testing._occurrences import COUNTRIES, Dataset, Occurrence
from gbifxdl.testing._terms import INTERPRETED, MULTIMEDIA, VERBATIM
from gbifxdl.testing.universe import RANKS, Taxon, Universe

__all__ = ["ArchiveStats", "write_dwca"]

_BATCH = 2000  # rows joined per write: few syscalls, little memory
_I = {name: i for i, (name, _, _) in enumerate(INTERPRETED)}
_V = {name: i for i, (name, _, _) in enumerate(VERBATIM)}
_COUNTRY = {c[0]: c for c in COUNTRIES}
_VERBATIM_BASIS = {"HUMAN_OBSERVATION": "HumanObservation", "PRESERVED_SPECIMEN": "PreservedSpecimen",
                   "MACHINE_OBSERVATION": "MachineObservation", "MATERIAL_SAMPLE": "MaterialSample"}


@dataclass(frozen=True)
class ArchiveStats:
    """What :func:`write_dwca` wrote."""

    path: Path
    n_occurrences: int
    n_media: int  # rows of multimedia.txt
    size: int  # bytes of the zip
    download_key: str
    doi: str | None
    n_datasets: int = 0  # constituent datasets (GBIF's ``numberDatasets``)


def write_dwca(
    path: Path,
    *,
    n_occurrences: int,
    predicate: dict | None = None,
    seed: int = 0,
    universe: Universe | None = None,
    image_base_urls: Sequence[str] = ("http://127.0.0.1:8080",),
    download_key: str = "0000001-250101000000000",
    doi: str | None = "10.15468/dl.xxxxxx",
    created: dt.datetime | None = None,
) -> ArchiveStats:
    """Return the stats of a DWCA of ``n_occurrences`` matching occurrences written at ``path``.

    Deterministic for the same arguments (pass ``created`` for byte-identical zips);
    written atomically (a temporary name, then renamed). ``universe`` defaults to
    ``Universe(seed)``. ``doi=None`` writes the EML of a download made before GBIF
    minted DOIs (2014), whose citation identifier is the download key. Raises
    PredicateError for a malformed predicate.
    """
    path = Path(path)
    universe = universe or Universe(seed)
    created = (created or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0)
    if created.tzinfo is not None:  # GBIF stamps archives in UTC
        created = created.astimezone(dt.timezone.utc)
    occurrences = universe.occurrences(n_occurrences, predicate, image_base_urls=image_base_urls)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    spool = Path(tempfile.mkdtemp(prefix=f".{path.name}.spool-", dir=path.parent))
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            # the emulator's mark, outside the Darwin Core Archive itself (whose every file is as
            # GBIF's): the zip's comment, read back as the provenance's `emulator`
            archive.comment = text.EMULATOR_NOTE.encode("utf-8")
            with (spool / "verbatim.txt").open("w", encoding="utf-8", newline="\n") as verbatim, \
                 (spool / "multimedia.txt").open("w", encoding="utf-8", newline="\n") as multimedia:
                writer = _RowWriter(created, verbatim, multimedia)
                with archive.open(_member("occurrence.txt", created), "w", force_zip64=True) as core:
                    writer.write_all(occurrences, core)
            for name in ("verbatim.txt", "multimedia.txt"):
                with (spool / name).open("rb") as src, \
                        archive.open(_member(name, created), "w", force_zip64=True) as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            counts = sorted(writer.dataset_counts.items(), key=lambda kv: (-kv[1], kv[0].title))
            datasets = [d for d, _ in counts]
            query = text.query_text(predicate, _describer(universe))
            small = [("citations.txt", text.citations_txt(datasets, created))]
            small += [(f"dataset/{d.key}.xml", text.dataset_xml(d, created)) for d in datasets]
            small += [("rights.txt", text.rights_txt(datasets)),
                      ("metadata.xml", text.metadata_xml(download_key, doi, created, query, counts)),
                      ("meta.xml", text.meta_xml())]
            for name, body in small:
                archive.writestr(_member(name, created), body.encode("utf-8"))
        os.replace(tmp, path)
    finally:
        shutil.rmtree(spool, ignore_errors=True)
        tmp.unlink(missing_ok=True)
    return ArchiveStats(path, writer.n_occurrences, writer.n_media, path.stat().st_size, download_key, doi,
                        len(datasets))


def _member(name: str, created: dt.datetime) -> zipfile.ZipInfo:
    """Return a zip entry stamped with the download's creation time (reproducible bytes)."""
    info = zipfile.ZipInfo(name, date_time=created.timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def _describer(universe: Universe):
    """Return a function wording a predicate value for the abstract (taxon keys as names)."""

    def describe(key: str, value: object) -> str:
        if key.upper().endswith("TAXON_KEY") or key.upper() in {f"{r}_KEY" for r in RANKS}:
            taxon = universe.taxon(int(value)) if str(value).isdigit() else None
            return taxon.scientific_name if taxon else str(value)
        if key.upper() == "COUNTRY" and str(value).upper() in _COUNTRY:
            return _COUNTRY[str(value).upper()][1]
        return str(value)

    return describe


class _RowWriter:
    """Formats occurrences as rows of the three text members, counting as it goes."""

    def __init__(self, created: dt.datetime, verbatim: IO[str], multimedia: IO[str]):
        self.created = created
        self.verbatim, self.multimedia = verbatim, multimedia
        self.n_occurrences = self.n_media = 0
        self.dataset_counts: dict[Dataset, int] = {}
        self._templates: dict[int, list[str]] = {}  # per taxon: bounded by the universe

    def write_all(self, occurrences, core: IO[bytes]) -> None:
        """Write every occurrence: core rows to ``core``, the others to the spool files."""
        core.write(("\t".join(n for n, _, _ in INTERPRETED) + "\n").encode())
        self.verbatim.write("\t".join(n for n, _, _ in VERBATIM) + "\n")
        self.multimedia.write("\t".join(n for n, _, _ in MULTIMEDIA) + "\n")
        core_rows: list[str] = []
        verbatim_rows: list[str] = []
        media_rows: list[str] = []
        for occ in occurrences:
            core_rows.append(self._core_row(occ))
            verbatim_rows.append(self._verbatim_row(occ))
            for m in occ.media:
                media_rows.append(f"{occ.gbif_id}\t{m.type}\t{m.format}\t{m.identifier}\t{m.references}\t"
                                  f"{m.title}\t\t\t\t{m.created}\t{m.creator}\t\t{m.publisher}\t"
                                  f"{m.license}\t{m.rights_holder}")
            self.n_occurrences += 1
            self.n_media += len(occ.media)
            self.dataset_counts[occ.dataset] = self.dataset_counts.get(occ.dataset, 0) + 1
            if len(core_rows) >= _BATCH:
                self._flush(core, core_rows, verbatim_rows, media_rows)
        self._flush(core, core_rows, verbatim_rows, media_rows)

    def _flush(self, core: IO[bytes], core_rows: list[str], verbatim_rows: list[str],
               media_rows: list[str]) -> None:
        """Write and clear the pending rows."""
        if core_rows:
            core.write(("\n".join(core_rows) + "\n").encode("utf-8"))
            self.verbatim.write("\n".join(verbatim_rows) + "\n")
        if media_rows:
            self.multimedia.write("\n".join(media_rows) + "\n")
        core_rows.clear(), verbatim_rows.clear(), media_rows.clear()

    def _template(self, taxon: Taxon, accepted: Taxon) -> list[str]:
        """Return the core row's taxonomic columns for occurrences recorded under ``taxon``."""
        row = self._templates.get(taxon.key)
        if row is not None:
            return row
        row = [""] * len(INTERPRETED)
        for rank in RANKS:
            key, name = accepted.key_at(rank), accepted.name_at(rank)
            if rank != "SPECIES" and name is not None:
                row[_I[rank.lower()]] = name
            if key is not None:
                row[_I[f"{rank.lower()}Key"]] = str(key)
        words = taxon.name.split()
        row[_I["species"]] = accepted.name if accepted.rank == "SPECIES" else ""
        row[_I["scientificName"]] = taxon.scientific_name
        row[_I["verbatimScientificName"]] = taxon.name
        row[_I["acceptedScientificName"]] = accepted.scientific_name
        row[_I["genericName"]] = words[0]
        row[_I["specificEpithet"]] = words[1] if len(words) > 1 else ""
        row[_I["taxonRank"]] = taxon.rank
        row[_I["taxonomicStatus"]] = taxon.status
        row[_I["taxonKey"]] = str(taxon.key)
        row[_I["acceptedTaxonKey"]] = str(accepted.key)
        row[_I["iucnRedListCategory"]] = "LC" if accepted.key < 100_000_000 else "NE"
        row[_I["protocol"]] = "DWC_ARCHIVE"
        self._templates[taxon.key] = row
        return row

    def _core_row(self, occ: Occurrence) -> str:
        """Return the occurrence.txt row (226 columns, GBIF's order)."""
        row = self._template(occ.taxon, occ.accepted).copy()
        d = occ.dataset
        country = _COUNTRY[occ.country]
        stamp = f"{self.created:%Y-%m-%dT%H:%M:%S}.000Z"
        inat = d.institution_code == "iNaturalist"
        catalog = str(occ.gbif_id % 900_000_007)
        row[_I["gbifID"]] = str(occ.gbif_id)
        row[_I["license"]] = d.license
        row[_I["modified"]] = f"{occ.year:04d}-{occ.month:02d}-{occ.day:02d}T21:00:00Z"
        row[_I["publisher"]] = d.publisher
        row[_I["references"]] = f"https://www.inaturalist.org/observations/{catalog}" if inat else ""
        row[_I["rightsHolder"]] = occ.recorded_by.split(";")[0]
        row[_I["institutionCode"]] = d.institution_code
        row[_I["collectionCode"]] = d.collection_code
        row[_I["datasetName"]] = d.title
        row[_I["basisOfRecord"]] = d.basis_of_record
        row[_I["occurrenceID"]] = (row[_I["references"]] if inat
                                   else f"urn:catalog:{d.institution_code}:{d.collection_code}:{catalog}")
        row[_I["catalogNumber"]] = catalog
        row[_I["recordedBy"]] = occ.recorded_by
        row[_I["identifiedBy"]] = occ.recorded_by.split(";")[0]
        row[_I["individualCount"]] = "" if occ.individual_count is None else str(occ.individual_count)
        row[_I["sex"]] = occ.sex
        row[_I["lifeStage"]] = occ.life_stage
        row[_I["occurrenceStatus"]] = occ.occurrence_status
        row[_I["eventDate"]] = occ.event_date
        row[_I["year"]], row[_I["month"]], row[_I["day"]] = str(occ.year), str(occ.month), str(occ.day)
        day_of_year = str(dt.date(occ.year, occ.month, occ.day).timetuple().tm_yday)
        row[_I["startDayOfYear"]] = row[_I["endDayOfYear"]] = day_of_year
        row[_I["continent"]] = country[6]
        row[_I["countryCode"]] = occ.country
        if occ.latitude is not None:
            row[_I["decimalLatitude"]], row[_I["decimalLongitude"]] = str(occ.latitude), str(occ.longitude)
            if occ.coordinate_uncertainty is not None:
                row[_I["coordinateUncertaintyInMeters"]] = str(occ.coordinate_uncertainty)
            row[_I["level0Gid"]], row[_I["level0Name"]] = country[8], country[1]
        row[_I["hasCoordinate"]] = "true" if occ.latitude is not None else "false"
        row[_I["hasGeospatialIssues"]] = "false"
        row[_I["datasetKey"]] = d.key
        row[_I["publishingCountry"]] = d.publishing_country
        row[_I["lastInterpreted"]] = row[_I["lastParsed"]] = stamp
        row[_I["lastCrawled"]] = stamp
        row[_I["issue"]] = ";".join(occ.issues)
        row[_I["mediaType"]] = ";".join(occ.media_types)
        row[_I["repatriated"]] = "true" if d.publishing_country != occ.country else "false"
        row[_I["gbifRegion"]] = country[7]
        row[_I["publishedByGbifRegion"]] = _COUNTRY[d.publishing_country][7]
        return "\t".join(row)

    def _verbatim_row(self, occ: Occurrence) -> str:
        """Return the verbatim.txt row: the values as a publisher might have sent them."""
        row = [""] * len(VERBATIM)
        d = occ.dataset
        row[_V["gbifID"]] = str(occ.gbif_id)
        row[_V["license"]] = text.LICENSE_URLS[d.license][0]
        row[_V["institutionCode"]], row[_V["collectionCode"]] = d.institution_code, d.collection_code
        row[_V["datasetName"]] = d.title
        row[_V["basisOfRecord"]] = _VERBATIM_BASIS.get(d.basis_of_record, d.basis_of_record)
        row[_V["occurrenceID"]] = str(occ.gbif_id % 900_000_007)
        row[_V["recordedBy"]] = occ.recorded_by.replace(";", " | ")
        row[_V["eventDate"]] = f"{occ.year:04d}-{occ.month:02d}-{occ.day:02d} {occ.time}"
        row[_V["country"]] = _COUNTRY[occ.country][1]
        row[_V["countryCode"]] = occ.country
        if occ.latitude is not None:
            row[_V["decimalLatitude"]], row[_V["decimalLongitude"]] = str(occ.latitude), str(occ.longitude)
        row[_V["associatedMedia"]] = " | ".join(m.identifier for m in occ.media if m.identifier)
        row[_V["scientificName"]] = occ.taxon.name
        row[_V["taxonRank"]] = occ.taxon.rank.lower()
        row[_V["kingdom"]] = occ.accepted.name_at("KINGDOM") or ""
        row[_V["lifeStage"]], row[_V["sex"]] = occ.life_stage.lower(), occ.sex.lower()
        return "\t".join(row)
