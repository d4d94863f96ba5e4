"""Drawing synthetic occurrences that match a predicate: datasets, places, dates, media.

Each field is drawn from a weighted domain narrowed beforehand to the values that can
still satisfy the predicate (a family, a country, a year range ...), so a narrow query
costs few rejected draws; the whole record is then checked against the predicate.
"""

from __future__ import annotations

import bisect
import json
import random
import uuid
from typing import TYPE_CHECKING, Any, Callable, Iterator, NamedTuple, Sequence

from gbifxdl.testing import _names
from gbifxdl.testing._predicates import evaluate, matches

if TYPE_CHECKING:
    from gbifxdl.testing.universe import Taxon, Universe

DEFAULT_IMAGE_BASE = "http://127.0.0.1:8080"
_RANK_KEYS = ("KINGDOM", "PHYLUM", "CLASS", "ORDER", "FAMILY", "GENUS", "SPECIES")
_GIVE_UP_AFTER = 20_000  # consecutive rejected draws: the predicate's fields contradict


class Dataset(NamedTuple):
    """A publishing dataset: its records share basis of record, licence and media habits."""

    key: str
    title: str
    publisher: str
    license: str  # GBIF's enumeration, as in occurrence.txt and the LICENSE predicate
    basis_of_record: str
    doi: str
    institution_code: str
    collection_code: str
    publishing_country: str
    media_style: str  # photo, sparse, specimen, sound, none
    scope_key: int | None  # only taxa under this key (None: any)
    weight: float


class Medium(NamedTuple):
    """One row of multimedia.txt."""

    type: str
    format: str
    identifier: str  # the URL; may be empty (a quirk real archives have)
    references: str
    title: str
    created: str
    creator: str
    publisher: str
    license: str
    rights_holder: str


class Occurrence(NamedTuple):
    """One interpreted occurrence with its media, as GBIF would export it."""

    gbif_id: int
    taxon: "Taxon"  # the name it was recorded under (a species, a genus, or a synonym)
    accepted: "Taxon"  # the accepted taxon (== taxon unless a synonym)
    dataset: Dataset
    occurrence_status: str
    country: str
    year: int
    month: int
    day: int
    time: str
    latitude: float | None
    longitude: float | None
    coordinate_uncertainty: float | None
    recorded_by: str
    life_stage: str
    sex: str
    individual_count: int | None
    issues: tuple[str, ...]
    media: tuple[Medium, ...]

    @property
    def basis_of_record(self) -> str:
        """Return the basis of record (the dataset's)."""
        return self.dataset.basis_of_record

    @property
    def license(self) -> str:
        """Return the record's licence, GBIF's enumeration (the dataset's)."""
        return self.dataset.license

    @property
    def media_types(self) -> tuple[str, ...]:
        """Return the distinct media types, sorted, as GBIF's ``mediaType`` lists them."""
        return tuple(sorted({m.type for m in self.media if m.type}))

    @property
    def event_date(self) -> str:
        """Return the interpreted ``eventDate`` (ISO 8601, local time)."""
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}T{self.time}"


def _dataset(title: str, publisher: str, license: str, basis: str, institution: str,
             collection: str, country: str, style: str, scope: int | None, weight: float,
             key: str | None = None) -> Dataset:
    """Return a dataset whose key (unless given) and DOI derive stably from its title."""
    key = key or str(uuid.uuid5(uuid.NAMESPACE_URL, "gbifxdl-dataset:" + title))
    doi = "10.15468/" + key.replace("-", "")[:6]
    return Dataset(key, title, publisher, license, basis, doi, institution, collection,
                   country, style, scope, weight)


DATASETS: tuple[Dataset, ...] = (
    _dataset("iNaturalist research-grade observations", "iNaturalist.org", "CC_BY_NC_4_0",
             "HUMAN_OBSERVATION", "iNaturalist", "Observations", "US", "photo", None, 50,
             key="50c9509d-22c7-4a22-a47d-8c48425ef4a7"),
    _dataset("Observation.org, Nature data from around the World", "Observation.org",
             "CC_BY_4_0", "HUMAN_OBSERVATION", "Observation.org", "OBS", "NL", "photo", None, 12),
    _dataset("Artportalen (Swedish Species Observation System)", "ArtDatabanken", "CC0_1_0",
             "HUMAN_OBSERVATION", "SLU", "Artportalen", "SE", "sparse", None, 7),
    _dataset("EOD - eBird Observation Dataset", "Cornell Lab of Ornithology", "CC_BY_4_0",
             "HUMAN_OBSERVATION", "CLO", "EBIRD", "US", "none", 212, 8),
    _dataset("Pl@ntNet automatically identified occurrences", "Pl@ntNet", "CC_BY_4_0",
             "MACHINE_OBSERVATION", "PlantNet", "AutomaticId", "FR", "photo", 6, 5),
    _dataset("Natural History Museum (London) Collection Specimens", "Natural History Museum",
             "CC0_1_0", "PRESERVED_SPECIMEN", "NHMUK", "BMNH", "GB", "specimen", None, 4),
    _dataset("Xeno-canto - Bird sounds from around the world", "Xeno-canto Foundation",
             "CC_BY_NC_4_0", "HUMAN_OBSERVATION", "XC", "xeno-canto", "NL", "sound", 212, 3),
    _dataset("Danish Mycological Society, fungal records database", "Danish Mycological Society",
             "CC_BY_4_0", "HUMAN_OBSERVATION", "DMS", "Svampeatlas", "DK", "photo", 5, 3),
    _dataset("MNHN - Vascular plant herbarium (P)", "Muséum national d'Histoire naturelle",
             "CC_BY_4_0", "PRESERVED_SPECIMEN", "MNHN", "P", "FR", "specimen", 6, 3),
    _dataset("Naturalis Biodiversity Center (NL) - Lepidoptera", "Naturalis Biodiversity Center",
             "CC0_1_0", "PRESERVED_SPECIMEN", "Naturalis", "Lepidoptera", "NL", "specimen", 797, 2),
    _dataset("Automated moth monitoring stations (camera traps)", "Insect Monitoring Network",
             "CC_BY_4_0", "MACHINE_OBSERVATION", "AMI", "Traps", "CA", "photo", 216, 2),
    _dataset("International Barcode of Life project (iBOL)", "Centre for Biodiversity Genomics",
             "CC_BY_4_0", "MATERIAL_SAMPLE", "BIOUG", "BOLD", "CA", "sparse", 1, 1),
)

# code, name, weight, latitude, longitude, spread in degrees, continent, GBIF region, ISO3
COUNTRIES = [
    (c, n, float(w), float(la), float(lo), float(sp), cont, reg, iso3)
    for c, n, w, la, lo, sp, cont, reg, iso3 in (line.split("|") for line in _names.COUNTRIES.strip().splitlines())
]
YEARS = [(year, 2.0 ** ((year - 1990) / 5)) for year in range(1990, 2026)]  # recent-heavy
MONTHS = [(m, w) for m, w in zip(range(1, 13), (2, 2, 4, 7, 10, 12, 13, 12, 9, 6, 3, 2))]
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

# media profiles: kinds I image, N row without URL, S sound, V video, X IIIF manifest
MEDIA_STYLES: dict[str, list[tuple[str, float]]] = {
    "photo": [("", 6), ("I", 50), ("II", 20), ("III", 9), ("IIIII", 4), ("IIIIIIII", 1),
              ("IN", 2), ("N", 1), ("IS", 0.5), ("V", 0.3), ("IV", 0.3), ("S", 0.3), ("IX", 0.3)],
    "sparse": [("", 75), ("I", 18), ("II", 7)],
    "specimen": [("", 15), ("I", 40), ("X", 15), ("IX", 15), ("II", 10), ("N", 5)],
    "sound": [("S", 70), ("SI", 20), ("", 10)],
    "none": [("", 97), ("I", 3)],
}
_KIND_TYPE = {"I": "StillImage", "N": "StillImage", "S": "Sound", "V": "MovingImage",
              "X": "InteractiveResource"}
MEDIA_LICENSES = [
    ("http://creativecommons.org/licenses/by-nc/4.0/", 45), ("http://creativecommons.org/licenses/by/4.0/", 25),
    ("http://creativecommons.org/publicdomain/zero/1.0/", 12), ("http://creativecommons.org/licenses/by-sa/4.0/", 8),
    ("http://creativecommons.org/licenses/by-nc-sa/4.0/", 4), ("http://creativecommons.org/licenses/by-nc-nd/4.0/", 4),
    ("http://creativecommons.org/licenses/by-nd/4.0/", 1), ("", 1),
]
_IMAGE_EXTENSIONS = [(("jpg", "image/jpeg"), 80), (("jpeg", "image/jpeg"), 15), (("png", "image/png"), 5)]
_ISSUES = ("COORDINATE_ROUNDED", "GEODETIC_DATUM_ASSUMED_WGS84", "CONTINENT_DERIVED_FROM_COORDINATES",
           "INSTITUTION_MATCH_FUZZY", "COLLECTION_MATCH_NONE", "TAXON_MATCH_FUZZY")
_LIFE_STAGES = ("", "", "", "Adult", "Adult", "Adult", "Larva", "Juvenile", "Pupa", "Egg")
_SEXES = ("", "", "", "", "Male", "Female")


class _Domain:
    """Weighted values, narrowed to those a predicate can accept; draws by bisection."""

    def __init__(self, pairs: Sequence[tuple[Any, float]], keep: Callable[[Any], bool] = lambda v: True):
        full = sum(w for _, w in pairs)
        kept = [(v, w) for v, w in pairs if w > 0 and keep(v)]
        self.values = [v for v, _ in kept]
        self.cumulative: list[float] = []
        total = 0.0
        for _, w in kept:
            total += w
            self.cumulative.append(total)
        self.total = total
        self.mass = total / full if full else 0.0  # share of the unfiltered weight kept

    def __bool__(self) -> bool:
        return bool(self.values)

    def pick(self, rand: Callable[[], float]) -> Any:
        """Return one value, drawn in proportion to its weight."""
        if len(self.values) == 1:
            return self.values[0]
        index = bisect.bisect_right(self.cumulative, rand() * self.total)
        return self.values[min(index, len(self.values) - 1)]  # rand()*total may round up to total


def _taxon_record(taxon: "Taxon", accepted: "Taxon") -> dict[str, Any]:
    """Return the predicate record of an occurrence recorded under ``taxon``."""
    record: dict[str, Any] = {f"{rank}_KEY": accepted.key_at(rank) for rank in _RANK_KEYS}
    record["TAXON_KEY"] = frozenset({taxon.key} | {t.key for t in accepted.classification})
    record["ACCEPTED_TAXON_KEY"] = accepted.key
    return record


def _dataset_record(d: Dataset) -> dict[str, Any]:
    """Return the predicate record of a dataset's fields."""
    return {"DATASET_KEY": d.key, "BASIS_OF_RECORD": d.basis_of_record, "LICENSE": d.license,
            "PUBLISHING_COUNTRY": d.publishing_country}


def _kinds_types(kinds: str) -> frozenset[str]:
    """Return the media types a profile of kinds yields."""
    return frozenset(_KIND_TYPE[k] for k in kinds)


class _Plan:
    """The narrowed domains of every field, for one universe and predicate."""

    def __init__(self, universe: "Universe", predicate: dict | None):
        p = predicate

        def keep(record_of: Callable[[Any], dict]) -> Callable[[Any], bool]:
            return lambda v: p is None or evaluate(p, record_of(v)) is not False

        self.countries = _Domain([(c, c[2]) for c in COUNTRIES], keep(lambda c: {"COUNTRY": c[0]}))
        self.years = _Domain(YEARS, keep(lambda y: {"YEAR": y}))
        self.months = _Domain(MONTHS, keep(lambda m: {"MONTH": m}))
        self.coordinates = _Domain([(True, 93), (False, 7)], keep(lambda h: {"HAS_COORDINATE": h}))
        self.statuses = _Domain([("PRESENT", 98), ("ABSENT", 2)], keep(lambda s: {"OCCURRENCE_STATUS": s}))
        self.geo_issue = _Domain([(False, 1)], keep(lambda g: {"HAS_GEOSPATIAL_ISSUE": g}))
        self.profiles = {style: _Domain(pairs, keep(lambda k: {"MEDIA_TYPE": _kinds_types(k)}))
                         for style, pairs in MEDIA_STYLES.items()}
        ok_datasets = [d for d in DATASETS if self.profiles[d.media_style]
                       and (p is None or evaluate(p, _dataset_record(d)) is not False)]
        self.dataset_mass = sum(d.weight * self.profiles[d.media_style].mass for d in ok_datasets) / sum(
            d.weight for d in DATASETS)
        # candidate taxa: species, genus-only identifications, and names recorded as synonyms
        pairs: list[tuple[tuple[Taxon, Taxon], float]] = []
        genus_weight: dict[int, float] = {}
        for t in universe.taxa:
            if t.status == "SYNONYM":
                accepted = universe.taxon(t.accepted_key)
                pairs.append(((t, accepted), 0.08 * universe.weight(accepted)))
            elif t.rank == "SPECIES":
                pairs.append(((t, t), universe.weight(t)))
                genus_weight[t.parent_key] = genus_weight.get(t.parent_key, 0.0) + 0.03 * universe.weight(t)
        pairs += [((g, g), genus_weight[g.key]) for g in map(universe.taxon, genus_weight)]
        self.datasets_for: dict[int, _Domain] = {}
        by_scope: dict[tuple[bool, ...], _Domain] = {}
        for (taxon, accepted), _ in pairs:
            lineage = {a.key for a in accepted.classification}
            scope = tuple(d.scope_key is None or d.scope_key in lineage for d in ok_datasets)
            if scope not in by_scope:
                by_scope[scope] = _Domain([(d, d.weight) for d, ok in zip(ok_datasets, scope) if ok])
            self.datasets_for[taxon.key] = by_scope[scope]
        self.taxa = _Domain(pairs, lambda v: bool(self.datasets_for[v[0].key]) and (
            p is None or evaluate(p, _taxon_record(*v)) is not False))
        self.empty = not all((self.countries, self.years, self.months, self.coordinates,
                              self.statuses, self.geo_issue, self.taxa))

    def mass(self) -> float:
        """Return the approximate share of unfiltered occurrences the narrowed domains keep."""
        if self.empty:
            return 0.0
        share = self.taxa.mass * self.dataset_mass
        for domain in (self.countries, self.years, self.months, self.coordinates, self.statuses):
            share *= domain.mass
        return share


def count_matching(universe: "Universe", predicate: dict | None, total: int) -> int:
    """Return about how many of ``total`` unfiltered occurrences match ``predicate``."""
    return round(total * _Plan(universe, predicate).mass())


def generate(universe: "Universe", n: int, predicate: dict | None,
             bases: Sequence[str]) -> Iterator[Occurrence]:
    """Return an iterator of ``n`` matching occurrences (predicate checked right away)."""
    plan = _Plan(universe, predicate)  # raises PredicateError now, not at the first next()
    bases = tuple(bases) or (DEFAULT_IMAGE_BASE,)
    # the number of hosts, not their addresses: hosts on new ports (each start of the demo's)
    # serve the same occurrences (issue 20, item 7)
    seed = f"gbifxdl-occurrences|{universe.seed}|{json.dumps(predicate, sort_keys=True)}|{len(bases)} hosts"
    return _draw(plan, max(0, n), predicate, bases, random.Random(seed))


def _draw(plan: _Plan, n: int, predicate: dict | None, bases: tuple[str, ...],
          rng: random.Random) -> Iterator[Occurrence]:
    """Yield matching occurrences until ``n`` (or until the predicate proves unsatisfiable)."""
    if plan.empty or n == 0:
        return
    rand = rng.random
    people = _Domain([(f"{g} {f}", 1) for g in _names.GIVEN_NAMES for f in _names.FAMILY_NAMES])
    licenses, extensions = _Domain(MEDIA_LICENSES), _Domain(_IMAGE_EXTENSIONS)
    gbif_id = 1_000_000_000 + rng.randrange(3_000_000_000)
    media_id = 10_000_000 + rng.randrange(300_000_000)
    last_url_of_species: dict[int, str] = {}  # bounded by the number of species
    last_url = ""
    produced = rejected = 0
    while produced < n:
        taxon, accepted = plan.taxa.pick(rand)
        dataset = plan.datasets_for[taxon.key].pick(rand)
        country = plan.countries.pick(rand)
        year, month = plan.years.pick(rand), plan.months.pick(rand)
        has_coordinate, status = plan.coordinates.pick(rand), plan.statuses.pick(rand)
        kinds = plan.profiles[dataset.media_style].pick(rand)
        if predicate is not None:
            record = _taxon_record(taxon, accepted) | _dataset_record(dataset)
            record.update(COUNTRY=country[0], YEAR=year, MONTH=month, HAS_COORDINATE=has_coordinate,
                          OCCURRENCE_STATUS=status, MEDIA_TYPE=_kinds_types(kinds), HAS_GEOSPATIAL_ISSUE=False)
            if not matches(predicate, record):
                rejected += 1
                if rejected > _GIVE_UP_AFTER:
                    return
                continue
        rejected = 0
        gbif_id += 1 + int(rand() * 7)
        day = 1 + int(rand() * _DAYS_IN_MONTH[month - 1])
        time = f"{6 + int(rand() * 14):02d}:{int(rand() * 60):02d}:{int(rand() * 60):02d}"
        person = people.pick(rand)
        if rand() < 0.004:  # a raw leading quote: DwC-A has no quoting, readers must cope
            person = f'"{person.split()[0]}" {person.split()[1]}'
        recorded_by = person if rand() > 0.02 else f"{person};{people.pick(rand)}"
        lat = lon = uncertainty = None
        if has_coordinate:
            spread = country[5]
            lat = round(country[3] + (rand() - 0.5) * spread, 6)
            lon = round(country[4] + (rand() - 0.5) * spread * 1.5, 6)
            uncertainty = float(int(rand() * 500) + 1) if rand() < 0.6 else None
        animal = accepted.key_at("KINGDOM") == 1
        issues = tuple(sorted({_ISSUES[int(rand() * len(_ISSUES))] for _ in range(int(rand() * 3))}))
        media: list[Medium] = []
        created = f"{year:04d}-{month:02d}-{day:02d}T{time}Z"
        species_key = accepted.key if accepted.rank == "SPECIES" else None
        reuse = last_url_of_species.get(species_key) if rand() < 0.006 else (last_url if rand() < 0.0015 else None)
        for kind in kinds:
            media_id += 1 + int(rand() * 3)
            base = bases[0] if len(bases) == 1 or rand() < 0.7 else bases[1 + int(rand() * (len(bases) - 1))]
            page = f"{base}/photos/{media_id}"
            if kind == "I":
                ext, fmt = extensions.pick(rand)
                url = reuse or f"{base}/photos/{media_id}/original.{ext}"
                reuse = None  # at most one re-used URL per occurrence
            elif kind == "N":
                url, fmt = "", "image/jpeg"
            elif kind == "S":
                url, fmt = f"{base}/sounds/{media_id}.mp3", "audio/mpeg"
            elif kind == "V":
                url, fmt = f"{base}/videos/{media_id}.mp4", "video/mp4"
            else:
                url, fmt = f"{base}/iiif/{media_id}/manifest.json", "dzi"
            creator = person.split(";")[0]
            media.append(Medium(_KIND_TYPE[kind], fmt, url, page, "", created, creator,
                                dataset.publisher, licenses.pick(rand), creator))
            if kind == "I" and species_key is not None:
                last_url_of_species[species_key] = url
            if kind == "I":
                last_url = url
        produced += 1
        yield Occurrence(
            gbif_id, taxon, accepted, dataset, status, country[0], year, month, day, time,
            lat, lon, uncertainty, recorded_by,
            _LIFE_STAGES[int(rand() * len(_LIFE_STAGES))] if animal else "",
            _SEXES[int(rand() * len(_SEXES))] if animal else "",
            1 + int(rand() * 5) if rand() < 0.3 else None, issues, tuple(media),
        )
