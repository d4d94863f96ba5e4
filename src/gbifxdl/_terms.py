"""GBIF's vocabulary for download predicates, kept as data.

Transcribed from GBIF's gbif-api sources (``OccurrenceSearchParameter``, ``Country``,
``BasisOfRecord``, ``MediaType``, ``License``, ``OccurrenceStatus``, ``Continent``,
``GbifRegion``, ``DownloadFormat``, ``DistanceUnit``, 2025). Each predicate key maps to
the kind of value it takes; GBIF allows ``lessThan``/``greaterThan``... only on numbers
and dates, so :data:`COMPARABLE_KINDS` is what the validator checks comparisons against.
"""

from __future__ import annotations

# --- kinds of value ------------------------------------------------------------------------
INTEGER, DECIMAL, DATE = "integer", "decimal", "date"
STRING, BOOLEAN, UUID, GEOMETRY = "string", "boolean", "uuid", "geometry"
# enumerations: the kind is the name of a set in ENUMS below
COUNTRY, CONTINENT, GBIF_REGION = "country", "continent", "gbif_region"
BASIS_OF_RECORD, MEDIA_TYPE, LICENSE, OCCURRENCE_STATUS = (
    "basis_of_record", "media_type", "license", "occurrence_status",
)

COMPARABLE_KINDS = frozenset({INTEGER, DECIMAL, DATE})


def _keys(kind: str, names: str) -> dict[str, str]:
    return {name: kind for name in names.split()}


# Every OccurrenceSearchParameter GBIF accepts in a download predicate, with its value kind.
# Taxon keys are strings since GBIF added checklists (Catalogue of Life keys are not numbers).
# Enumerations GBIF keeps changing (ISSUE, TYPE_STATUS, PROTOCOL, TAXONOMIC_STATUS...) are
# left as strings: a stale copy here must never refuse a value GBIF accepts.
PARAMETERS: dict[str, str] = {
    **_keys(UUID, "DATASET_KEY PUBLISHING_ORG NETWORK_KEY INSTALLATION_KEY HOSTING_ORGANIZATION_KEY"),
    **_keys(INTEGER, "YEAR MONTH DAY START_DAY_OF_YEAR END_DAY_OF_YEAR CRAWL_ID "
                     "HUMBOLDT_SITE_COUNT HUMBOLDT_ABUNDANCE_CAP"),
    **_keys(DECIMAL, "DECIMAL_LATITUDE DECIMAL_LONGITUDE COORDINATE_UNCERTAINTY_IN_METERS ELEVATION "
                     "DEPTH DISTANCE_FROM_CENTROID_IN_METERS ORGANISM_QUANTITY SAMPLE_SIZE_VALUE "
                     "RELATIVE_ORGANISM_QUANTITY HUMBOLDT_GEOSPATIAL_SCOPE_AREA_VALUE "
                     "HUMBOLDT_TOTAL_AREA_SAMPLED_VALUE HUMBOLDT_EVENT_DURATION_VALUE_IN_MINUTES "
                     "HUMBOLDT_EVENT_DURATION_VALUE HUMBOLDT_SAMPLING_EFFORT_VALUE"),
    **_keys(DATE, "EVENT_DATE EVENT_DATE_GTE EVENT_DATE_LTE LAST_INTERPRETED MODIFIED"),
    **_keys(BOOLEAN, "IS_SEQUENCED HAS_COORDINATE HAS_GEOSPATIAL_ISSUE REPATRIATED IS_IN_CLUSTER "
                     "HUMBOLDT_IS_TAXONOMIC_SCOPE_FULLY_REPORTED HUMBOLDT_IS_ABSENCE_REPORTED "
                     "HUMBOLDT_HAS_NON_TARGET_TAXA HUMBOLDT_ARE_NON_TARGET_TAXA_FULLY_REPORTED "
                     "HUMBOLDT_IS_LIFE_STAGE_SCOPE_FULLY_REPORTED "
                     "HUMBOLDT_IS_DEGREE_OF_ESTABLISHMENT_SCOPE_FULLY_REPORTED "
                     "HUMBOLDT_IS_GROWTH_FORM_SCOPE_FULLY_REPORTED HUMBOLDT_HAS_NON_TARGET_ORGANISMS "
                     "HUMBOLDT_IS_ABUNDANCE_REPORTED HUMBOLDT_IS_ABUNDANCE_CAP_REPORTED "
                     "HUMBOLDT_IS_VEGETATION_COVER_REPORTED "
                     "HUMBOLDT_IS_LEAST_SPECIFIC_TARGET_CATEGORY_QUANTITY_INCLUSIVE "
                     "HUMBOLDT_HAS_VOUCHERS HUMBOLDT_HAS_MATERIAL_SAMPLES HUMBOLDT_IS_SAMPLING_EFFORT_REPORTED"),
    **_keys(COUNTRY, "COUNTRY PUBLISHING_COUNTRY"),
    **_keys(GBIF_REGION, "GBIF_REGION PUBLISHED_BY_GBIF_REGION"),
    **{"CONTINENT": CONTINENT, "BASIS_OF_RECORD": BASIS_OF_RECORD, "MEDIA_TYPE": MEDIA_TYPE,
       "LICENSE": LICENSE, "OCCURRENCE_STATUS": OCCURRENCE_STATUS},
    **_keys(GEOMETRY, "GEOMETRY GEO_DISTANCE"),
    **_keys(STRING, """
        CHECKLIST_KEY EVENT_ID PARENT_EVENT_ID EVENT_ID_HIERARCHY EVENT_TYPE VERBATIM_EVENT_TYPE
        SAMPLING_PROTOCOL PREVIOUS_IDENTIFICATIONS INSTITUTION_CODE COLLECTION_CODE CATALOG_NUMBER
        RECORDED_BY IDENTIFIED_BY RECORD_NUMBER SEX
        TAXON_KEY ACCEPTED_TAXON_KEY KINGDOM_KEY PHYLUM_KEY CLASS_KEY ORDER_KEY FAMILY_KEY
        GENUS_KEY SUBGENUS_KEY SPECIES_KEY SCIENTIFIC_NAME VERBATIM_SCIENTIFIC_NAME TAXON_ID
        TAXON_CONCEPT_ID TAXONOMIC_STATUS ISSUE TAXONOMIC_ISSUE TYPE_STATUS OCCURRENCE_ID
        ESTABLISHMENT_MEANS DEGREE_OF_ESTABLISHMENT PATHWAY ORGANISM_ID STATE_PROVINCE WATER_BODY
        LOCALITY PROTOCOL PROJECT_ID PROGRAMME ORGANISM_QUANTITY_TYPE SAMPLE_SIZE_UNIT
        COLLECTION_KEY INSTITUTION_KEY RECORDED_BY_ID IDENTIFIED_BY_ID GADM_GID GADM_LEVEL_0_GID
        GADM_LEVEL_1_GID GADM_LEVEL_2_GID GADM_LEVEL_3_GID LIFE_STAGE DWCA_EXTENSION
        IUCN_RED_LIST_CATEGORY DATASET_ID DATASET_NAME OTHER_CATALOG_NUMBERS PREPARATIONS ISLAND
        ISLAND_GROUP GEOREFERENCED_BY HIGHER_GEOGRAPHY FIELD_NUMBER
        EARLIEST_EON_OR_LOWEST_EONOTHEM LATEST_EON_OR_HIGHEST_EONOTHEM EARLIEST_ERA_OR_LOWEST_ERATHEM
        LATEST_ERA_OR_HIGHEST_ERATHEM EARLIEST_PERIOD_OR_LOWEST_SYSTEM LATEST_PERIOD_OR_HIGHEST_SYSTEM
        EARLIEST_EPOCH_OR_LOWEST_SERIES LATEST_EPOCH_OR_HIGHEST_SERIES EARLIEST_AGE_OR_LOWEST_STAGE
        LATEST_AGE_OR_HIGHEST_STAGE LOWEST_BIOSTRATIGRAPHIC_ZONE HIGHEST_BIOSTRATIGRAPHIC_ZONE
        GROUP FORMATION MEMBER BED ASSOCIATED_SEQUENCES GBIF_ID GEOLOGICAL_TIME LITHOSTRATIGRAPHY
        BIOSTRATIGRAPHY DNA_SEQUENCE_ID
        HUMBOLDT_VERBATIM_SITE_NAMES HUMBOLDT_GEOSPATIAL_SCOPE_AREA_UNIT
        HUMBOLDT_TOTAL_AREA_SAMPLED_UNIT HUMBOLDT_TARGET_HABITAT_SCOPE HUMBOLDT_EVENT_DURATION_UNIT
        HUMBOLDT_TARGET_TAXONOMIC_SCOPE_USAGE_NAME HUMBOLDT_TARGET_TAXONOMIC_SCOPE_USAGE_KEY
        HUMBOLDT_TARGET_TAXONOMIC_SCOPE_TAXON_KEY HUMBOLDT_TAXON_COMPLETENESS_PROTOCOLS
        HUMBOLDT_TARGET_LIFE_STAGE_SCOPE HUMBOLDT_TARGET_DEGREE_OF_ESTABLISHMENT_SCOPE
        HUMBOLDT_TARGET_GROWTH_FORM_SCOPE HUMBOLDT_COMPILATION_TYPES
        HUMBOLDT_COMPILATION_SOURCE_TYPES HUMBOLDT_INVENTORY_TYPES HUMBOLDT_PROTOCOL_NAMES
        HUMBOLDT_VOUCHER_INSTITUTIONS HUMBOLDT_MATERIAL_SAMPLE_TYPES HUMBOLDT_SAMPLING_PERFORMED_BY
        HUMBOLDT_SAMPLING_EFFORT_UNIT
    """),
}

# ISO 3166-1 alpha-2 codes, plus GBIF's own: AA user defined, XK Kosovo, XZ international
# waters, QO Oceania, ZZ unknown.
COUNTRIES: frozenset[str] = frozenset("""
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR
BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ
EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW
GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY
KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV
MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY
QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG
TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM
ZW AA XK XZ QO ZZ
""".split())

# Common mistakes for country codes: the user meant the ISO code on the right.
COUNTRY_HINTS: dict[str, str] = {"UK": "GB", "EL": "GR"}

ENUMS: dict[str, tuple[str, ...]] = {
    COUNTRY: tuple(sorted(COUNTRIES)),
    CONTINENT: ("AFRICA", "ANTARCTICA", "ASIA", "EUROPE", "NORTH_AMERICA", "OCEANIA", "SOUTH_AMERICA"),
    GBIF_REGION: ("AFRICA", "ANTARCTICA", "ASIA", "EUROPE", "LATIN_AMERICA", "NORTH_AMERICA", "OCEANIA"),
    # LITERATURE and UNKNOWN are deprecated but still understood by GBIF
    BASIS_OF_RECORD: ("PRESERVED_SPECIMEN", "FOSSIL_SPECIMEN", "LIVING_SPECIMEN", "OBSERVATION",
                      "HUMAN_OBSERVATION", "MACHINE_OBSERVATION", "MATERIAL_SAMPLE",
                      "MATERIAL_CITATION", "OCCURRENCE", "LITERATURE", "UNKNOWN"),
    MEDIA_TYPE: ("StillImage", "MovingImage", "Sound", "InteractiveResource"),
    LICENSE: ("CC0_1_0", "CC_BY_4_0", "CC_BY_NC_4_0", "UNSPECIFIED", "UNSUPPORTED"),
    OCCURRENCE_STATUS: ("PRESENT", "ABSENT"),
}

# Licence short forms a user types -> GBIF's LICENSE enum value.
LICENSE_ALIASES: dict[str, str] = {
    "CC0": "CC0_1_0", "CC0-1.0": "CC0_1_0", "CC0_1_0": "CC0_1_0", "PUBLIC-DOMAIN": "CC0_1_0",
    "CC-BY": "CC_BY_4_0", "CC-BY-4.0": "CC_BY_4_0", "CC_BY_4_0": "CC_BY_4_0", "BY": "CC_BY_4_0",
    "CC-BY-NC": "CC_BY_NC_4_0", "CC-BY-NC-4.0": "CC_BY_NC_4_0", "CC_BY_NC_4_0": "CC_BY_NC_4_0",
    "BY-NC": "CC_BY_NC_4_0",
}

# Predicate types GBIF's download API accepts, and the fields each may carry.
# (GBIF also parses "range" and "fullTextSearch", but does not offer them for downloads.)
_SIMPLE = frozenset({"type", "key", "value", "matchCase", "checklistKey"})
PREDICATE_FIELDS: dict[str, frozenset[str]] = {
    "and": frozenset({"type", "predicates"}),
    "or": frozenset({"type", "predicates"}),
    "not": frozenset({"type", "predicate"}),
    "equals": _SIMPLE,
    "like": _SIMPLE,
    "lessThan": _SIMPLE,
    "lessThanOrEquals": _SIMPLE,
    "greaterThan": _SIMPLE,
    "greaterThanOrEquals": _SIMPLE,
    "in": frozenset({"type", "key", "values", "matchCase", "checklistKey"}),
    "within": frozenset({"type", "geometry"}),
    "geoDistance": frozenset({"type", "latitude", "longitude", "distance"}),
    "isNull": frozenset({"type", "parameter"}),
    "isNotNull": frozenset({"type", "parameter"}),
}
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "and": ("predicates",), "or": ("predicates",), "not": ("predicate",),
    "in": ("key", "values"), "within": ("geometry",),
    "geoDistance": ("latitude", "longitude", "distance"),
    "isNull": ("parameter",), "isNotNull": ("parameter",),
}
COMPARISONS = frozenset({"lessThan", "lessThanOrEquals", "greaterThan", "greaterThanOrEquals"})

# Distance units GBIF's geoDistance understands (DistanceUnit names).
DISTANCE_UNITS: tuple[str, ...] = (
    "in", "inch", "yd", "yards", "ft", "feet", "km", "kilometers", "NM", "nmi", "nauticalmiles",
    "mm", "millimeters", "cm", "centimeters", "mi", "miles", "m", "meters",
)

# Download request body ------------------------------------------------------------------------
DOWNLOAD_FORMATS: tuple[str, ...] = (
    "DWCA", "SIMPLE_CSV", "SIMPLE_AVRO", "SIMPLE_WITH_VERBATIM_AVRO", "SPECIES_LIST",
    "MAP_OF_LIFE", "BIONOMIA", "SIMPLE_PARQUET", "SQL_TSV_ZIP", "FASTA_ARCHIVE",
)
DOWNLOAD_TYPES: tuple[str, ...] = ("OCCURRENCE", "EVENT")
# Properties GBIF's DownloadRequestSerde reads; any other property is refused. GBIF also
# reads a few spellings of the notification fields (kept for old clients such as rgbif).
REQUEST_PROPERTIES: frozenset[str] = frozenset({
    "creator", "notificationAddresses", "sendNotification", "format", "predicate", "sql",
    "description", "machineDescription", "checklistKey", "type", "verbatimExtensions",
    "interpretedExtensions", "created",
})
REQUEST_ALIASES: dict[str, str] = {
    "notificationAddress": "notificationAddresses",
    "notification_addresses": "notificationAddresses",
    "notification_address": "notificationAddresses",
    "send_notification": "sendNotification",
}
