"""The emulator's synthetic universe and its Darwin Core Archives, checked against GBIF's.

The archive is compared with the DwC-A text guidelines (meta.xml describes every file
and column), with GBIF's describe endpoint and a real GBIF archive from
``shared/gbif``, and read back with python-dwca-reader as an independent reader.
"""

from __future__ import annotations

import collections
import datetime as dt
import io
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest
from dwca.read import DwCAReader

import gbifxdl
from gbifxdl.errors import PredicateError
from gbifxdl.testing.dwca import write_dwca
from gbifxdl.testing.universe import Universe

SRC = str(Path(gbifxdl.__file__).resolve().parents[1])
DWC_TEXT = "{http://rs.tdwg.org/dwc/text/}"
REAL_ARCHIVE = "archives/0076720-210914110416597.dwca-trimmed.zip"
CREATED = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc)
BASES = ("http://127.0.0.1:8080", "http://127.0.0.1:8081", "http://127.0.0.1:8082")
HELIANTHUS_KEYS = {"kingdomKey": "6", "phylumKey": "7707728", "classKey": "220", "orderKey": "414",
                   "familyKey": "3065", "genusKey": "3119134", "speciesKey": "9206251"}


@pytest.fixture(scope="module")
def universe() -> Universe:
    return Universe(seed=0)


@pytest.fixture(scope="module")
def archive(tmp_path_factory, universe) -> Path:
    """A 2000-occurrence archive without predicate, on three image hosts."""
    path = tmp_path_factory.mktemp("dwca") / "0000001-250101000000000.zip"
    write_dwca(path, n_occurrences=2000, universe=universe, image_base_urls=BASES, created=CREATED)
    return path


def sections(zf: zipfile.ZipFile) -> list[ET.Element]:
    """Return meta.xml's core and extension elements, in order."""
    return list(ET.fromstring(zf.read("meta.xml")))


def table(zf: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    """Return a text member's rows as dicts keyed by header (no quoting, as DwC-A says)."""
    lines = zf.read(name).decode("utf-8").split("\n")
    assert lines[-1] == "", f"{name} must end with a newline"
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:-1]]


# --- the DwC-A standard ----------------------------------------------------------------


def test_meta_xml_describes_every_file_and_every_column(archive):
    with zipfile.ZipFile(archive) as zf:
        members = set(zf.namelist())
        described = set()
        for section in sections(zf):
            location = section.find(f"{DWC_TEXT}files/{DWC_TEXT}location").text
            described.add(location)
            fields = [f for f in section.findall(f"{DWC_TEXT}field") if "index" in f.attrib]
            indexes = [int(f.attrib["index"]) for f in fields]
            assert indexes == list(range(len(fields))), f"{location}: indexes must be 0..n-1 in order"
            lines = zf.read(location).decode("utf-8").split("\n")
            assert lines[-1] == "" and "\r" not in zf.read(location).decode("utf-8")
            header = lines[0].split("\t")
            assert header == [f.attrib["term"].rsplit("/", 1)[1] for f in fields], location
            widths = collections.Counter(len(line.split("\t")) for line in lines[1:-1])
            assert widths == {len(fields): len(lines) - 2}, f"{location}: every row has every field"
        assert {m for m in members if m.endswith(".txt")} == described | {"citations.txt", "rights.txt"}
        assert {"meta.xml", "metadata.xml", "citations.txt", "rights.txt"} <= members


def test_structure_matches_a_real_gbif_archive(archive, shared_gbif):
    with zipfile.ZipFile(archive) as ours, zipfile.ZipFile(shared_gbif / REAL_ARCHIVE) as real:
        ours_root, real_root = ET.fromstring(ours.read("meta.xml")), ET.fromstring(real.read("meta.xml"))
        assert ours_root.tag == real_root.tag and ours_root.attrib == real_root.attrib
        ours_sections, real_sections = list(ours_root), list(real_root)
        assert [(s.tag, s.attrib.get("rowType")) for s in ours_sections] == \
               [(s.tag, s.attrib.get("rowType")) for s in real_sections]
        for mine, theirs in zip(ours_sections, real_sections):
            assert mine.attrib == theirs.attrib  # encoding, terminators, no quoting, one header line
            assert [c.tag for c in mine if c.tag.endswith(("id", "coreid"))] == \
                   [c.tag for c in theirs if c.tag.endswith(("id", "coreid"))]
            assert mine.find(f"{DWC_TEXT}files/{DWC_TEXT}location").text == \
                   theirs.find(f"{DWC_TEXT}files/{DWC_TEXT}location").text
            defaults = lambda s: {(f.attrib["term"], f.attrib["default"]) for f in s if "default" in f.attrib}
            # a field with only a default (geodeticDatum) in the core, as GBIF writes it
            assert defaults(mine) == defaults(theirs)
            delimited = lambda s: {f.attrib["term"] for f in s if f.attrib.get("delimitedBy") == ";"}
            assert delimited(theirs) & {f.attrib.get("term") for f in mine} <= delimited(mine)
        media_terms = lambda s: [f.attrib["term"] for f in s.findall(f"{DWC_TEXT}field")]
        assert media_terms(ours_sections[2]) == media_terms(real_sections[2])
        strip = lambda names: {n for n in names if not n.startswith("dataset/")}
        assert strip(ours.namelist()) == strip(real.namelist())
        eml = ET.fromstring(ours.read("metadata.xml"))
        real_eml = ET.fromstring(real.read("metadata.xml"))
        assert [c.tag for c in eml.iter()] == [c.tag for c in real_eml.iter()]


def test_columns_are_gbif_columns_in_gbif_order(archive, shared_gbif):
    describe = json.loads((shared_gbif / "api/download_describe_dwca.json").read_text())
    with zipfile.ZipFile(archive) as zf:
        for section, key in zip(sections(zf), ("interpreted", "verbatim", "multimedia")):
            ours = [f.attrib["term"] for f in section.findall(f"{DWC_TEXT}field") if "index" in f.attrib]
            gbif = [f["term"] for f in describe[key]["fields"]]
            assert set(ours) <= set(gbif), f"{key}: terms GBIF does not export"
            assert ours == [t for t in gbif if t in set(ours)], f"{key}: order differs from GBIF's"
            arrays = {f["term"] for f in describe[key]["fields"] if f.get("delimiter") == ";"}
            assert {f.attrib["term"] for f in section if f.attrib.get("delimitedBy") == ";"} == arrays


def test_python_dwca_reader_reads_it_back(archive):
    with zipfile.ZipFile(archive) as zf:
        core, media = table(zf, "occurrence.txt"), table(zf, "multimedia.txt")
    media_per_id = collections.Counter(m["gbifID"] for m in media)
    with DwCAReader(str(archive)) as reader:
        assert reader.descriptor.core.type == "http://rs.tdwg.org/dwc/terms/Occurrence"
        rows = list(reader)
        assert len(rows) == len(core) == 2000
        assert len(reader.source_metadata) >= 1  # dataset/<uuid>.xml read as EML
        for row, ours in zip(rows[:300], core):
            assert row.id == ours["gbifID"]
            assert row.data["http://rs.tdwg.org/dwc/terms/geodeticDatum"] == "WGS84"  # the default
            assert row.data["http://rs.tdwg.org/dwc/terms/recordedBy"] == ours["recordedBy"]
            kinds = collections.Counter(e.rowtype for e in row.extensions)
            assert kinds["http://rs.tdwg.org/dwc/terms/Occurrence"] == 1  # its verbatim row
            assert kinds["http://rs.gbif.org/terms/1.0/Multimedia"] == media_per_id[ours["gbifID"]]


# --- content -------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path, universe):
    first = write_dwca(tmp_path / "a.zip", n_occurrences=300, universe=universe, created=CREATED)
    second = write_dwca(tmp_path / "b.zip", n_occurrences=300, seed=0, created=CREATED)
    other = write_dwca(tmp_path / "c.zip", n_occurrences=300, seed=1, created=CREATED)
    assert first.path.read_bytes() == second.path.read_bytes()
    with zipfile.ZipFile(first.path) as a, zipfile.ZipFile(other.path) as c:
        assert a.read("occurrence.txt") != c.read("occurrence.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip", "b.zip", "c.zip"]  # no temp left


def test_family_predicate_gives_only_species_under_it(tmp_path, universe):
    family = universe.find("Nymphalidae")
    stats = write_dwca(tmp_path / "n.zip", n_occurrences=500, universe=universe, created=CREATED,
                       predicate={"type": "equals", "key": "TAXON_KEY", "value": str(family.key)})
    assert stats.n_occurrences == 500
    with zipfile.ZipFile(stats.path) as zf:
        rows = table(zf, "occurrence.txt")
    species = universe.descendants(family.key)
    assert {r["familyKey"] for r in rows} == {"7017"} and {r["family"] for r in rows} == {"Nymphalidae"}
    assert {int(r["speciesKey"]) for r in rows if r["speciesKey"]} <= species
    assert len({r["speciesKey"] for r in rows}) > 5  # several species, not one


def test_country_and_year_range_predicates(universe):
    predicate = {"type": "and", "predicates": [
        {"type": "in", "key": "COUNTRY", "values": ["BE", "nl"]},
        {"type": "greaterThanOrEquals", "key": "YEAR", "value": "2000"},
        {"type": "lessThan", "key": "YEAR", "value": "2005"},
        {"type": "not", "predicate": {"type": "equals", "key": "MONTH", "value": "7"}},
        {"type": "equals", "key": "GADM_GID", "value": "BEL"},  # unknown keys match
    ]}
    found = list(universe.occurrences(400, predicate))
    assert len(found) == 400
    assert {o.country for o in found} == {"BE", "NL"}
    assert {o.year for o in found} <= set(range(2000, 2005)) and 7 not in {o.month for o in found}
    assert list(universe.occurrences(10, {"type": "equals", "key": "YEAR", "value": "2001,2002"}))[0].year in (2001, 2002)


def test_media_type_and_basis_predicates(universe):
    still = list(universe.occurrences(300, {"type": "equals", "key": "MEDIA_TYPE", "value": "StillImage"}))
    assert all("StillImage" in o.media_types for o in still)
    sounds = list(universe.occurrences(50, {"type": "equals", "key": "MEDIA_TYPE", "value": "Sound"}))
    assert len(sounds) == 50 and all("Sound" in o.media_types for o in sounds)
    specimens = list(universe.occurrences(100, {"type": "equals", "key": "BASIS_OF_RECORD",
                                                "value": "PRESERVED_SPECIMEN"}))
    assert {o.basis_of_record for o in specimens} == {"PRESERVED_SPECIMEN"}


def test_unsatisfiable_predicate_gives_an_empty_well_formed_archive(tmp_path, universe):
    never = {"type": "and", "predicates": [{"type": "equals", "key": "COUNTRY", "value": "FR"},
                                           {"type": "equals", "key": "COUNTRY", "value": "DE"}]}
    stats = write_dwca(tmp_path / "e.zip", n_occurrences=50, predicate=never, universe=universe)
    assert (stats.n_occurrences, stats.n_media) == (0, 0)
    with zipfile.ZipFile(stats.path) as zf:
        assert table(zf, "occurrence.txt") == [] and table(zf, "multimedia.txt") == []


def test_malformed_predicate_is_refused_before_anything_is_written(tmp_path, universe):
    with pytest.raises(PredicateError, match="predicates"):
        write_dwca(tmp_path / "x.zip", n_occurrences=5, universe=universe, predicate={"type": "and"})
    with pytest.raises(PredicateError, match="unknown predicate type"):
        list(universe.occurrences(5, {"type": "sameAs", "key": "COUNTRY", "value": "FR"}))
    assert list(tmp_path.iterdir()) == []


def test_quirks_real_archives_have_are_present(archive):
    with zipfile.ZipFile(archive) as zf:
        core, media = table(zf, "occurrence.txt"), table(zf, "multimedia.txt")
    assert 1.2 < len(media) / len(core) < 1.7  # about 1.4 media rows per occurrence
    assert any(m["identifier"] == "" for m in media)  # media without a URL
    assert {"Sound", "MovingImage", "InteractiveResource"} <= {m["type"] for m in media}
    assert {m["format"] for m in media if m["type"] == "InteractiveResource"} == {"dzi"}
    per_occurrence = collections.Counter(m["gbifID"] for m in media)
    assert max(per_occurrence.values()) >= 3
    genus_only = [r for r in core if r["speciesKey"] == ""]
    assert genus_only and {r["taxonRank"] for r in genus_only} == {"GENUS"}
    assert all(r["genusKey"] for r in genus_only)
    owners = collections.defaultdict(set)
    for m in media:
        if m["identifier"]:
            owners[m["identifier"]].add(m["gbifID"])
    assert any(len(ids) > 1 for ids in owners.values())  # the same URL under two occurrences
    assert any(r["recordedBy"].startswith('"') for r in core)  # a raw quote: no quoting in DwC-A
    assert any(";" in r["recordedBy"] for r in core) and any(";" in r["issue"] for r in core)
    assert any(r["taxonomicStatus"] == "SYNONYM" and r["taxonKey"] != r["acceptedTaxonKey"] for r in core)
    assert {r["mediaType"] for r in core if r["gbifID"] not in per_occurrence} == {""}
    images = [m["identifier"] for m in media if m["type"] == "StillImage" and m["identifier"]]
    assert {u.rsplit(".", 1)[1] for u in images} == {"jpg", "jpeg", "png"}
    hosts = collections.Counter(u.split("/photos/")[0] for u in images)
    assert set(hosts) == set(BASES) and hosts[BASES[0]] > 0.6 * len(images)  # one dominant host


def test_long_tail_and_european_bias(archive):
    with zipfile.ZipFile(archive) as zf:
        core = table(zf, "occurrence.txt")
    per_species = sorted(collections.Counter(r["speciesKey"] for r in core if r["speciesKey"]).values())
    assert len(per_species) > 100 and per_species[-1] > 20 * per_species[len(per_species) // 2]
    european = sum(r["continent"] == "EUROPE" for r in core)
    assert european > 0.6 * len(core)
    assert {int(r["year"]) for r in core} <= set(range(1990, 2026))
    assert len({r["datasetKey"] for r in core}) >= 8
    assert {r["license"] for r in core} <= {"CC0_1_0", "CC_BY_4_0", "CC_BY_NC_4_0"}


def test_helianthus_annuus_has_gbifs_keys(tmp_path, universe, shared_gbif):
    match = json.loads((shared_gbif / "api/species_match_v1_exact.json").read_text())
    taxon, match_type, _ = universe.search("Helianthus annuus")
    assert (taxon.key, match_type) == (match["usageKey"], "EXACT")
    assert [t.key for t in taxon.classification] == [match[f"{r}Key"] for r in
                                                     ("kingdom", "phylum", "class", "order", "family", "genus", "species")]
    stats = write_dwca(tmp_path / "h.zip", n_occurrences=40, universe=universe, created=CREATED,
                       predicate={"type": "equals", "key": "TAXON_KEY", "value": "9206251"})
    with zipfile.ZipFile(stats.path) as zf:
        rows = table(zf, "occurrence.txt")
        abstract = zf.read("metadata.xml").decode()
    assert len(rows) == 40 and all({k: r[k] for k in HELIANTHUS_KEYS} == HELIANTHUS_KEYS for r in rows)
    assert {r["kingdom"] for r in rows} == {"Plantae"} and {r["species"] for r in rows} == {"Helianthus annuus"}
    assert "TaxonKey is Helianthus annuus L." in abstract and 'packageId="10.15468/dl.xxxxxx"' in abstract


def test_metadata_carries_doi_key_and_constituent_datasets(archive):
    with zipfile.ZipFile(archive) as zf:
        eml = ET.fromstring(zf.read("metadata.xml"))
        datasets = {n[len("dataset/"):-4] for n in zf.namelist() if n.startswith("dataset/")}
        used = {r["datasetKey"] for r in table(zf, "occurrence.txt")}
        citations = zf.read("citations.txt").decode()
        rights = zf.read("rights.txt").decode()
    assert eml.attrib["packageId"] == "10.15468/dl.xxxxxx"
    assert eml.findtext("dataset/alternateIdentifier") == "0000001-250101000000000"
    assert eml.find("additionalMetadata/metadata/gbif/citation").attrib["identifier"] == "10.15468/dl.xxxxxx"
    assert datasets == used
    assert citations.count("accessed via GBIF.org on 2025-03-04") == len(used)
    assert rights.count("Rights as supplied: http://creativecommons.org/") == len(used)


def test_universe_names_keys_and_hierarchy(universe):
    for name, key in [("Animalia", 1), ("Arthropoda", 54), ("Insecta", 216), ("Lepidoptera", 797),
                      ("Fungi", 5), ("Aves", 212), ("Plantae", 6), ("Chordata", 44), ("Nymphalidae", 7017)]:
        assert universe.find(name.upper()).key == key
    assert universe.find("vanessa ATALANTA").classification[-3].name == "Nymphalidae"
    assert universe.find("Pieris rapae").name_at("FAMILY") == "Pieridae"
    synonym = universe.find("Inachis io")
    assert synonym.status == "SYNONYM" and universe.taxon(synonym.accepted_key).name == "Aglais io"
    assert universe.search("Aglais ioo")[:2] == (universe.find("Aglais io"), "FUZZY")
    assert universe.search("Pieris nonexistentis")[:2] == (universe.find("Pieris"), "HIGHERRANK")
    assert universe.search("Qwxz zzzy") == (None, "NONE", 100)
    assert len(universe.species) == 400 and len({t.key for t in universe.taxa}) == len(universe.taxa)
    assert universe.descendants(9206251) == {9206251}
    assert universe.find("Helianthus annuus").key in universe.descendants(6)
    assert len(universe.descendants(1)) > 100 and universe.find("Fungi").key not in universe.descendants(1)
    assert universe.count({"type": "equals", "key": "TAXON_KEY", "value": "7017"}) < universe.count(None)


@pytest.mark.slow
def test_writing_is_streaming_in_bounded_memory(tmp_path):
    # a child process writes ~90 MB of text; its peak resident memory must stay far below
    # that (the interpreter alone is ~30 MB), so the rows are never all held at once
    script = (
        "import sys; from pathlib import Path; from gbifxdl.testing.dwca import write_dwca; "
        "write_dwca(Path(sys.argv[1]), n_occurrences=60_000); "
        "print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])"
    )  # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "big.zip")], env=env,
                          capture_output=True, text=True, check=True)
    peak = int(done.stdout.split()[-1]) * 1024
    with zipfile.ZipFile(tmp_path / "big.zip") as zf:
        text = sum(i.file_size for i in zf.infolist())
    assert text > 80_000_000
    assert peak < text / 2, f"peak {peak / 1e6:.0f} MB for {text / 1e6:.0f} MB of text"
