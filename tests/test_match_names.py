"""Taxon names to keys through species match v1 and v2, against the emulator's routes on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator

import click
import pytest
from aiohttp import web
from click.testing import CliRunner

from gbifxdl.cli._query_options import predicate_from_options, query_options
from gbifxdl.errors import GbifError, GbifUnavailable
from gbifxdl.gbif import ApiSettings
from gbifxdl.query import NameMatchError, match_names, parse_v1, parse_v2, resolve_taxa
from gbifxdl.testing.species import add_species_routes, v1_body, v2_body
from gbifxdl.testing.universe import Universe


FAST = ApiSettings(retries=2, backoff=0.0, timeout=5.0)


@pytest.fixture(scope="module")
def universe() -> Universe:
    return Universe(seed=0)


class Loopback:
    """An aiohttp app served from a background thread on 127.0.0.1; ``url`` is its root."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner = web.AppRunner(app, access_log=None)

    def __enter__(self) -> Loopback:
        self.thread.start()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))

        async def start() -> None:
            await self.runner.setup()
            await web.SockSite(self.runner, sock).start()

        asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def gbif(universe: Universe) -> Iterator[Loopback]:
    """Species match routes, plus a flaky copy (two 503s), a dead one (always 503) and a non-JSON one."""
    calls = {"flaky": 0}

    async def flaky(request: web.Request) -> web.Response:
        calls["flaky"] += 1
        if calls["flaky"] % 3:  # the first two of every three calls fail
            return web.Response(status=503, text="maintenance")
        return web.json_response(v1_body(universe, request.query["name"]))

    async def down(request: web.Request) -> web.Response:
        return web.Response(status=503, text="maintenance")

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>not an API</html>", content_type="text/html")

    app = web.Application()
    add_species_routes(app, universe)
    app.router.add_get("/flaky/v1/species/match", flaky)
    app.router.add_get("/down/v1/species/match", down)
    app.router.add_get("/html/v1/species/match", html)
    with Loopback(app) as server:
        server.calls = calls  # type: ignore[attr-defined]
        yield server


@pytest.mark.parametrize("version", [1, 2])
def test_exact_match(gbif, version):
    [match] = match_names(["Helianthus  annuus"], api_url=gbif.url + "/v1", version=version)
    assert (match.key, match.taxon_key, match.match_type, match.rank) == (9206251, 9206251, "EXACT", "SPECIES")
    assert match.canonical_name == "Helianthus annuus" and match.status == "ACCEPTED"
    assert ("KINGDOM", "Plantae", 6) in match.classification
    assert ("FAMILY", "Asteraceae", 3065) in match.classification
    assert match.note is None


@pytest.mark.parametrize("version", [1, 2])
def test_synonym_resolves_to_the_accepted_key_and_says_so(gbif, universe, version):
    accepted = universe.find("Aglais io")
    synonym = universe.find("Inachis io")
    assert synonym.status == "SYNONYM"
    [match] = match_names(["Inachis io"], api_url=gbif.url + "/v1", version=version)
    assert match.key == synonym.key and match.status == "SYNONYM"
    assert match.taxon_key == match.accepted_key == accepted.key
    assert "synonym" in match.note and str(accepted.key) in match.note


@pytest.mark.parametrize("version", [1, 2])
def test_no_match_is_an_error_naming_the_name(gbif, version):
    with pytest.raises(NameMatchError) as info:
        match_names(["Helianthus annuus", "Qwxz plorb"], api_url=gbif.url + "/v1", version=version)
    message = str(info.value)
    assert "'Qwxz plorb'" in message and "no match" in message and "Helianthus" not in message


@pytest.mark.parametrize("version", [1, 2])
def test_fuzzy_match_refused_unless_not_strict(gbif, version):
    with pytest.raises(NameMatchError, match=r"'Vanesa atalanta'.*FUZZY.*--lenient"):
        match_names(["Vanesa atalanta"], api_url=gbif.url + "/v1", version=version)
    [match] = match_names(["Vanesa atalanta"], api_url=gbif.url + "/v1", version=version, strict=False)
    assert (match.key, match.match_type) == (1898286, "FUZZY")
    assert "Vanessa atalanta" in match.note


@pytest.mark.parametrize("version", [1, 2])
def test_higher_rank_match_refused_unless_not_strict(gbif, version):
    with pytest.raises(NameMatchError, match="HIGHERRANK"):
        match_names(["Helianthus imaginarius"], api_url=gbif.url + "/v1", version=version)
    [match] = match_names(["Helianthus imaginarius"], api_url=gbif.url + "/v1", version=version, strict=False)
    assert (match.key, match.rank, match.match_type) == (3119134, "GENUS", "HIGHERRANK")


def test_several_names_keep_their_order_and_repeats(gbif):
    matches = match_names(["Nymphalidae", "Helianthus annuus", "Nymphalidae"], api_url=gbif.url + "/v1")
    assert [m.key for m in matches] == [7017, 9206251, 7017]


def test_api_url_from_environment(gbif, monkeypatch):
    monkeypatch.setenv("GBIF_API_URL", gbif.url + "/v1/")
    assert match_names(["Lepidoptera"])[0].key == 797
    assert match_names(["Lepidoptera"], version=2)[0].key == 797


def test_5xx_is_retried(gbif):
    before = gbif.calls["flaky"]
    [match] = match_names(["Helianthus annuus"], api_url=gbif.url + "/flaky/v1", settings=FAST)
    assert match.key == 9206251
    assert gbif.calls["flaky"] - before == 3


def test_unavailable_after_retries(gbif):
    with pytest.raises(GbifUnavailable, match="after 3 attempts.*HTTP 503"):
        match_names(["Helianthus annuus"], api_url=gbif.url + "/down/v1", settings=FAST)


def test_connection_refused_is_unavailable():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(GbifUnavailable, match="connection refused"):
        match_names(["Aves"], api_url=f"http://127.0.0.1:{port}/v1", settings=FAST)


def test_not_json_is_a_clear_error(gbif):
    with pytest.raises(GbifError, match="did not answer JSON.*--api-url"):
        match_names(["Aves"], api_url=gbif.url + "/html/v1")


def test_resolve_taxa_keeps_keys_and_resolves_names(gbif, universe):
    keys, matches = resolve_taxa(["212", "Inachis io", 7017], api_url=gbif.url + "/v1")
    assert keys == [212, universe.find("Aglais io").key, 7017]
    assert [m.name for m in matches] == ["Inachis io"]


@click.command()
@click.option("--api-url")
@query_options
def show(api_url, **options):
    click.echo(json.dumps(predicate_from_options(api_url, **options)))


def test_taxon_names_in_options_are_matched_and_shown(gbif, universe):
    result = CliRunner().invoke(show, ["--api-url", gbif.url + "/v1", "--taxon", "Nymphalidae,Inachis io",
                                       "--country", "DK,GB", "--year", "2015-2024"])
    assert result.exit_code == 0, result.output
    predicate = json.loads(result.stdout)
    assert predicate["predicates"][0] == {
        "type": "in", "key": "TAXON_KEY", "values": ["7017", str(universe.find("Aglais io").key)]}
    assert "'Inachis io' ->" in result.stderr and "synonym" in result.stderr


def test_lenient_option_accepts_a_fuzzy_name(gbif):
    args = ["--api-url", gbif.url + "/v1", "--taxon", "Vanesa atalanta", "--media-type", "any"]
    refused = CliRunner().invoke(show, args)
    assert isinstance(refused.exception, NameMatchError) and "--lenient" in str(refused.exception)
    accepted = CliRunner().invoke(show, [*args, "--lenient"])
    assert json.loads(accepted.stdout) == {"type": "equals", "key": "TAXON_KEY", "value": "1898286"}
    assert "fuzzy" in accepted.stderr.lower()


def test_unknown_taxon_in_options_fails_with_the_name(gbif):
    result = CliRunner().invoke(show, ["--api-url", gbif.url + "/v1", "--taxon", "Qwxz plorb"])
    assert isinstance(result.exception, NameMatchError)
    assert "'Qwxz plorb'" in str(result.exception)


# --- recorded GBIF bodies: parsing, and the emulator's answers have their shape ----------------

def load(shared_gbif, name):
    return json.loads((shared_gbif / "api" / f"species_match_{name}.json").read_text())


def test_parse_recorded_bodies(shared_gbif):
    for body in (parse_v1("Helianthus annuus", load(shared_gbif, "v1_exact")),
                 parse_v2("Helianthus annuus", load(shared_gbif, "v2_exact")),
                 parse_v2("Helianthus annuus", load(shared_gbif, "v2_exact_verbose"))):
        assert (body.key, body.accepted_key, body.match_type, body.confidence) == (9206251, 9206251, "EXACT", 99)
        assert body.classification[-1] == ("SPECIES", "Helianthus annuus", 9206251)
        assert len(body.classification) == 7
    synonym = parse_v2("Anastrophyllum minutum", load(shared_gbif, "v2_synonym"))
    assert (synonym.key, synonym.taxon_key, synonym.status) == (4277323, 2689422, "SYNONYM")
    assert synonym.accepted_name.startswith("Sphenolobus minutus")
    for none in (parse_v1("x", load(shared_gbif, "v1_none")), parse_v2("x", load(shared_gbif, "v2_none"))):
        assert (none.key, none.match_type, none.taxon_key) == (None, "NONE", None)


def shape(value):
    """Return the field names and JSON types of a body, recursively (lists by their first item)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def test_emulator_answers_have_the_recorded_shape(shared_gbif, universe):
    assert shape(v1_body(universe, "Helianthus annuus")) == shape(load(shared_gbif, "v1_exact"))
    assert v1_body(universe, "Qwxz plorb") == load(shared_gbif, "v1_none")
    exact, recorded = shape(v2_body(universe, "Helianthus annuus")), shape(load(shared_gbif, "v2_exact"))
    recorded["additionalStatus"] = []  # the emulator has no IUCN statuses
    assert exact == recorded
    none = v2_body(universe, "Qwxz plorb")
    assert shape(none) == shape(load(shared_gbif, "v2_none"))
    synonym, recorded = v2_body(universe, "Inachis io"), load(shared_gbif, "v2_synonym")
    assert set(synonym) >= set(recorded) - {"additionalStatus"}
    assert set(synonym["acceptedUsage"]) == set(recorded["acceptedUsage"]) - {"code"}
    assert synonym["synonym"] is True and isinstance(synonym["usage"]["key"], str)


def test_match_prints_what_matched_and_says_what_did_not(gbif, capsys):
    from gbifxdl.cli import cli, run_command

    with pytest.raises(SystemExit) as exited:
        run_command(cli, ["match", "--api-url", gbif.url + "/v1", "Vanessa atalanta", "Aglais io", "Notarealname xyz"],
                    prog_name="gbifxdl")
    out, err = capsys.readouterr()
    assert exited.value.code == 2
    printed = [line.split("\t")[0] for line in out.splitlines()]
    assert printed == ["Vanessa atalanta", "Aglais io"]  # the good names, in order, with their keys
    assert all(line.split("\t")[1].isdigit() for line in out.splitlines())
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Notarealname xyz" in lines[0] and "Aglais io" not in lines[0]
