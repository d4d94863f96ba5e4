"""Predicate validation, the request body check, and the builder from options."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from gbifxdl import _terms
from gbifxdl.cli._query_options import predicate_from_options, query_options
from gbifxdl.errors import PredicateError
from gbifxdl.query import build_predicate, build_request, parse_years, validate_predicate, validate_request

TAXON = {"type": "equals", "key": "TAXON_KEY", "value": "7017"}


def eq(key: str, value: str) -> dict:
    return {"type": "equals", "key": key, "value": value}


def error_of(predicate: object) -> str:
    with pytest.raises(PredicateError) as info:
        validate_predicate(predicate)
    return str(info.value)


# --- every predicate type, valid -------------------------------------------------------------

VALID = [
    eq("COUNTRY", "DK"),
    {"type": "like", "key": "CATALOG_NUMBER", "value": "PC*"},
    {"type": "lessThan", "key": "YEAR", "value": "2000"},
    {"type": "lessThanOrEquals", "key": "ELEVATION", "value": "-2.5"},
    {"type": "greaterThan", "key": "EVENT_DATE", "value": "2001-02-11"},
    {"type": "greaterThanOrEquals", "key": "MONTH", "value": "4", "matchCase": False},
    {"type": "in", "key": "BASIS_OF_RECORD", "values": ["HUMAN_OBSERVATION", "PRESERVED_SPECIMEN"]},
    {"type": "within", "geometry": "POLYGON((-14 42, -7 26, 9 38, -14 42))"},
    {"type": "geoDistance", "latitude": "55.7", "longitude": "12.5", "distance": "5km"},
    {"type": "isNull", "parameter": "YEAR"},
    {"type": "isNotNull", "parameter": "MEDIA_TYPE"},
    {"type": "not", "predicate": eq("BASIS_OF_RECORD", "FOSSIL_SPECIMEN")},
    {"type": "or", "predicates": [eq("INSTITUTION_CODE", "USNM"), eq("INSTITUTION_CODE", "US")]},
    {"type": "and", "predicates": [TAXON, eq("MEDIA_TYPE", "StillImage"), eq("HAS_COORDINATE", "true")]},
    eq("DATASET_KEY", "50c9509d-22c7-4a22-a47d-8c48425ef4a7"),
    eq("EVENT_DATE", "2001-02,2010-01"),
    eq("YEAR", "*,1810"),
    eq("LICENSE", "CC_BY_NC_4_0"),
    eq("OCCURRENCE_STATUS", "PRESENT"),
    {"type": "equals", "key": "TAXON_KEY", "value": "4QHKG", "checklistKey": "7ddf754f-d193-4cc9-b351-99906754a03b"},
]


@pytest.mark.parametrize("predicate", VALID, ids=lambda p: p["type"] + ":" + str(p.get("key", "")))
def test_valid_predicates_pass(predicate):
    validate_predicate(predicate)


# --- invalid, with the offending part named by its JSON path ----------------------------------

INVALID = [
    ({"type": "and", "predicates": [TAXON, TAXON, {"type": "equals", "key": "taxonKey", "value": "1"}]},
     "predicate.predicates[2].key", "did you mean 'TAXON_KEY'"),
    ({"type": "equal", "key": "YEAR", "value": "1"}, "predicate.type", "did you mean 'equals'"),
    ({"key": "YEAR", "value": "1"}, "predicate", "missing 'type'"),
    ({"type": "and", "predicates": []}, "predicate.predicates", "non-empty"),
    ({"type": "or", "predicates": TAXON}, "predicate.predicates", "non-empty list"),
    ({"type": "not"}, "predicate.predicate", "missing"),
    ({"type": "equals", "key": "YEAR"}, "predicate.value", "missing"),
    ({"type": "in", "key": "COUNTRY", "values": []}, "predicate.values", "non-empty"),
    ({"type": "in", "key": "COUNTRY", "values": ["DK", "UK"]}, "predicate.values[1]", "did you mean 'GB'"),
    ({"type": "greaterThan", "key": "COUNTRY", "value": "DK"}, "predicate.type", "numbers and dates only"),
    ({"type": "lessThan", "key": "TAXON_KEY", "value": "5"}, "predicate.type", "numbers and dates only"),
    (eq("YEAR", "20x5"), "predicate.value", "whole number"),
    (eq("ELEVATION", "high"), "predicate.value", "takes a number"),
    (eq("EVENT_DATE", "2020-13-01"), "predicate.value", "ISO 8601"),
    (eq("MEDIA_TYPE", "Image"), "predicate.value", "StillImage"),
    (eq("BASIS_OF_RECORD", "OBSERVATIONS"), "predicate.value", "did you mean 'OBSERVATION'"),
    (eq("DATASET_KEY", "not-a-uuid"), "predicate.value", "UUID"),
    (eq("HAS_COORDINATE", "yes"), "predicate.value", "true or false"),
    (eq("GEOMETRY", "POLYGON((0 0, 1 0, 1 1, 0 0))"), "predicate.key", "within"),
    ({"type": "equals", "key": "YEAR", "value": "2000", "values": ["1"]}, "predicate.values", "not a field"),
    ({"type": "within", "geometry": "CIRCLE(1 2)"}, "predicate.geometry", "WKT"),
    ({"type": "within", "geometry": "POLYGON((0 0, 1 0, 1 1, 2 2))"}, "predicate.geometry", "end where it starts"),
    ({"type": "geoDistance", "latitude": "95", "longitude": "0", "distance": "5km"}, "predicate.latitude", "-90"),
    ({"type": "geoDistance", "latitude": "1", "longitude": "0", "distance": "far"}, "predicate.distance", "5km"),
    ({"type": "isNull", "parameter": "year"}, "predicate.parameter", "did you mean 'YEAR'"),
    ({"type": "not", "predicate": {"type": "in", "key": "LICENSE", "values": ["CC_BY", None]}},
     "predicate.predicate.values[0]", "LICENSE"),
    ({"type": "equals", "key": "MONTH", "value": "3", "matchCase": "no"}, "predicate.matchCase", "true or false"),
    (["TAXON_KEY", "1"], "predicate", "expected a predicate object"),
]


@pytest.mark.parametrize("predicate, path, words", INVALID, ids=[w for _, _, w in INVALID])
def test_invalid_predicates_name_the_offending_part(predicate, path, words):
    message = error_of(predicate)
    assert message.startswith(path + ":"), message
    assert words in message


def test_every_key_has_a_known_kind():
    kinds = {v for v in _terms.PARAMETERS.values()}
    assert kinds <= {"integer", "decimal", "date", "string", "boolean", "uuid", "geometry", *_terms.ENUMS}
    assert len(_terms.PARAMETERS) > 150
    assert all(key == key.upper() for key in _terms.PARAMETERS)


# --- recorded bodies GBIF accepted -------------------------------------------------------------

def recorded_requests(api: Path) -> list[tuple[str, dict]]:
    found = []
    for path in sorted(api.glob("download_status_*.json")):
        found.append((path.name, json.loads(path.read_text())["request"]))
    page = json.loads((api / "download_list_user_page.json").read_text())
    found += [(f"listing[{i}]", r["request"]) for i, r in enumerate(page["results"])]
    return found


def test_every_recorded_request_validates(shared_gbif):
    requests = recorded_requests(shared_gbif / "api")
    assert len(requests) >= 20
    for name, request in requests:
        try:
            validate_request(request)
        except PredicateError as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"{name}: {exc}")
    predicates = [r["predicate"] for _, r in requests if "predicate" in r]
    assert any(p.get("type") == "and" for p in predicates)


def test_the_rgbif_request_body_validates(shared_gbif):
    body = json.loads((shared_gbif / "api" / "download_request_POST_body_rgbif.json").read_text())
    validate_predicate(body["predicate"])
    # GBIF reads notification_address as an old spelling of notificationAddresses
    validate_request(body)


def test_request_unknown_property_is_refused():
    with pytest.raises(PredicateError, match=r"^notificationAdresses: unknown property.*'notificationAddresses'"):
        validate_request({"creator": "u", "notificationAdresses": ["a@b.org"], "predicate": TAXON})


@pytest.mark.parametrize("change, words", [
    ({"format": "CSV"}, "format: 'CSV' is not a GBIF download format"),
    ({"format": "SQL_TSV_ZIP"}, "only for SQL downloads"),
    ({"predicate": None}, "predicate: missing"),
    ({"predicate": {"type": "in", "key": "YEAR", "values": ["x"]}}, "predicate.values[0]"),
    ({"notificationAddresses": "me@example.org"}, "notificationAddresses: must be a list"),
    ({"notificationAddresses": ["nobody"]}, "notificationAddresses[0]"),
    ({"sendNotification": "maybe"}, "sendNotification: must be true or false"),
    ({"creator": ""}, "creator:"),
    ({"type": "SAMPLE"}, "type:"),
])
def test_request_body_errors(change, words):
    request = {"creator": "u", "notificationAddresses": ["u@example.org"], "sendNotification": False,
               "format": "DWCA", "predicate": TAXON, **change}
    with pytest.raises(PredicateError) as info:
        validate_request(request)
    assert words in str(info.value)


def test_sql_request_needs_the_sql_format():
    validate_request({"creator": "u", "format": "SQL_TSV_ZIP", "sql": "SELECT 1 FROM occurrence"})
    with pytest.raises(PredicateError, match="SQL_TSV_ZIP"):
        validate_request({"creator": "u", "format": "DWCA", "sql": "SELECT 1 FROM occurrence"})


# --- builder -------------------------------------------------------------------------------------

def test_parse_years():
    assert parse_years("2015-2024") == (2015, 2024)
    assert parse_years("2020") == (2020, 2020)
    assert parse_years("2015-") == (2015, None)
    assert parse_years("-2010") == (None, 2010)
    assert parse_years(" 1990 .. 2000 ") == (1990, 2000)
    for bad in ("2024-2015", "last year", "-", ""):
        with pytest.raises(PredicateError, match="year"):
            parse_years(bad)


def test_builder_issue_example():
    predicate = build_predicate(taxon_keys=[7017], countries=["dk", "GB"], years="2015-2024")
    assert predicate == {"type": "and", "predicates": [
        {"type": "equals", "key": "TAXON_KEY", "value": "7017"},
        {"type": "equals", "key": "MEDIA_TYPE", "value": "StillImage"},
        {"type": "in", "key": "COUNTRY", "values": ["DK", "GB"]},
        {"type": "greaterThanOrEquals", "key": "YEAR", "value": "2015"},
        {"type": "lessThanOrEquals", "key": "YEAR", "value": "2024"},
    ]}


def test_builder_every_option():
    extra = {"type": "equals", "key": "HAS_COORDINATE", "value": "true"}
    predicate = build_predicate(
        taxon_keys=[797, "7017", 797], media_type="stillimage", countries=["FR"], years=(2020, 2020),
        basis_of_record=["human observation", "PRESERVED_SPECIMEN"], licenses=["CC0", "cc-by", "CC_BY_NC_4_0"],
        dataset_keys=["50C9509D-22C7-4A22-A47D-8C48425EF4A7"], extra=[extra],
    )
    assert predicate["predicates"] == [
        {"type": "in", "key": "TAXON_KEY", "values": ["797", "7017"]},
        {"type": "equals", "key": "MEDIA_TYPE", "value": "StillImage"},
        {"type": "equals", "key": "COUNTRY", "value": "FR"},
        {"type": "equals", "key": "YEAR", "value": "2020"},
        {"type": "in", "key": "BASIS_OF_RECORD", "values": ["HUMAN_OBSERVATION", "PRESERVED_SPECIMEN"]},
        {"type": "in", "key": "LICENSE", "values": ["CC0_1_0", "CC_BY_4_0", "CC_BY_NC_4_0"]},
        {"type": "equals", "key": "DATASET_KEY", "value": "50c9509d-22c7-4a22-a47d-8c48425ef4a7"},
        extra,
    ]


def test_builder_single_condition_is_bare_and_open_year_range():
    assert build_predicate(taxon_keys=[5], media_type=None) == {"type": "equals", "key": "TAXON_KEY", "value": "5"}
    assert build_predicate(media_type=None, years=1999) == {"type": "equals", "key": "YEAR", "value": "1999"}
    assert build_predicate(media_type=None, years="-1900") == {
        "type": "lessThanOrEquals", "key": "YEAR", "value": "1900"}


@pytest.mark.parametrize("kwargs, words", [
    ({"countries": ["UK"]}, "did you mean 'GB'"),
    ({"licenses": ["GPL"]}, "license: 'GPL'"),
    ({"basis_of_record": ["photo"]}, "basis of record"),
    ({"media_type": "Picture"}, "media type"),
    ({"dataset_keys": ["abc"]}, "dataset key"),
    ({"taxon_keys": ["Vanessa atalanta"]}, "not a taxon key"),
    ({"years": "2030-2020"}, "ends before it starts"),
    ({"extra": [{"type": "equals", "key": "year", "value": "1"}]}, "extra[0].key"),
    ({"media_type": None}, "no condition given"),
])
def test_builder_errors(kwargs, words):
    with pytest.raises(PredicateError) as info:
        build_predicate(**kwargs)
    assert words in str(info.value)


def test_build_request():
    request = build_request(TAXON, creator="alice", notification_addresses=["alice@example.org"],
                            description="butterflies")
    assert request == {"creator": "alice", "notificationAddresses": ["alice@example.org"],
                       "sendNotification": False, "format": "DWCA", "predicate": TAXON,
                       "description": "butterflies"}
    with pytest.raises(PredicateError, match="creator"):
        build_request(TAXON, creator="")
    with pytest.raises(PredicateError, match="format"):
        build_request(TAXON, creator="alice", format="ZIP")


# --- shared click options --------------------------------------------------------------------------

@click.command()
@query_options
def show(**options):
    predicate = predicate_from_options(None, **options)
    click.echo(json.dumps(predicate))


def test_query_options_build_from_keys_without_network():
    result = CliRunner().invoke(show, ["--taxon", "7017,797", "--country", "dk,GB", "--year", "2015-2024",
                                       "--license", "CC-BY", "--basis-of-record", "HUMAN_OBSERVATION"])
    assert result.exit_code == 0, result.output
    predicate = json.loads(result.output)
    validate_predicate(predicate)
    assert predicate["predicates"][0] == {"type": "in", "key": "TAXON_KEY", "values": ["7017", "797"]}
    assert {"type": "in", "key": "COUNTRY", "values": ["DK", "GB"]} in predicate["predicates"]


def test_query_options_media_type_alone_is_no_predicate_and_any_drops_it():
    assert json.loads(CliRunner().invoke(show, ["--media-type", "Sound"]).output) is None
    result = CliRunner().invoke(show, ["--taxon", "212", "--media-type", "any"])
    assert json.loads(result.output) == {"type": "equals", "key": "TAXON_KEY", "value": "212"}


def test_query_options_bad_value_is_a_clear_error():
    result = CliRunner().invoke(show, ["--country", "Denmark"])
    assert result.exit_code != 0
    assert isinstance(result.exception, PredicateError)
    assert "ISO 3166-1" in str(result.exception)
