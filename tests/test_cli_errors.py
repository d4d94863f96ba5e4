"""Every GBIF-facing command: bad input and an unreachable GBIF give one line, fast, with no prompt.

Nothing here leaves the machine: an unresolvable host name is simulated at the resolver
(``socket.getaddrinfo`` raises for that one name, in this process), and refused
connections use a closed port on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from pathlib import Path
from typing import Any, Iterator

import click
import pytest

from gbifxdl.cli import COMMANDS, cli, run_command
from gbifxdl.cli.legacy import gbifpost
from gbifxdl.cli.run import gbifpipe

KEY = "0026011-250827131500795"
DOI = "10.15468/dl.3xkznf"
NO_SUCH_HOST = "gbif-api.invalid"
QUICK = 15.0  # seconds: "within seconds", generous for a loaded machine

pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make NO_SUCH_HOST unresolvable in this process; return the names looked up."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        asked.append(name)
        if name == NO_SUCH_HOST:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        assert name in ("127.0.0.1", "localhost"), f"a test tried to resolve {name}"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:  # nobody listens once it is closed
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def prompts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Pretend stdin is a terminal and record every credential prompt (answering it)."""
    asked: list[str] = []

    def ask(text: str = "") -> str:
        asked.append(text)
        return "prompted-user" if "username" in text else "prompted-password"

    monkeypatch.setattr("gbifxdl.credentials._stdin_is_tty", lambda: True)
    monkeypatch.setattr("builtins.input", ask)
    monkeypatch.setattr("getpass.getpass", ask)
    return asked


def invoke(capsys: pytest.CaptureFixture[str], command: click.Command, args: list[str],
           prog: str = "gbifxdl") -> tuple[int, str, str, float]:
    """Run a command as its console script does; return (exit code, stdout, stderr, seconds)."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    start = time.monotonic()
    try:
        run_command(command, args, prog_name=prog)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        root.handlers[:] = handlers  # the group adds a console handler per invocation
    seconds = time.monotonic() - start
    out = capsys.readouterr()
    return code, out.out, out.err, seconds


def files(folder: Path) -> dict[str, str]:
    """Write the payloads and key files the cases use; return their names."""
    predicate = {"type": "and", "predicates": [{"type": "equals", "key": "COUNTRY", "value": "DK"},
                                               {"type": "equals", "key": "MEDIA_TYPE", "value": "StillImage"}]}
    content = {
        "good.json": json.dumps(predicate),
        "request.json": json.dumps({"creator": "sam", "format": "DWCA", "predicate": predicate}),
        "bad_key.json": json.dumps({"type": "equals", "key": "taxonKey", "value": "1"}),
        "bad.json": "{not json",
        "list.json": "[1, 2]",
        "extra.json": json.dumps({"predicate": predicate, "colour": "blue"}),
        "key.txt": KEY + "\n",
        "badkey.txt": "not-a-key\n",
        "empty.txt": "",
    }
    for name, text in content.items():
        (folder / name).write_text(text)
    (folder / "emptydir").mkdir()
    return content


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def options_of(name: str) -> set[str]:
    command = gbifpost if name == "gbifpost" else gbifpipe if name == "gbifpipe" else cli.get_command(None, name)  # type: ignore[arg-type]
    assert command is not None, name
    return {opt for p in command.params for opt in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])} | {"--help", "-h"}


def assert_names_exist(line: str, where: str) -> None:
    """Every `gbifxdl CMD --opt` quoted in ``line`` exists, and every bare --option exists in ``where``."""
    for quoted in re.findall(r"`([^`]*)`", line):
        words = quoted.split()
        assert words[0] == "gbifxdl" and words[1] in COMMANDS, quoted
        for option in (w for w in words[2:] if w.startswith("-")):
            assert option in options_of(words[1]), (option, quoted)
    bare = re.sub(r"`[^`]*`", "", line)
    for option in re.findall(r"(?<![\w/-])(--?[a-z][a-z-]*)", bare):
        if option.startswith("--") or len(option) == 2:
            assert option in options_of(where) | {"--debug"}, (option, where, line)


# (program, arguments, exit code, words the one line must hold); {port} is a closed port
BAD_INPUT = [
    ("status", [""], 2, "no download key given"),
    ("status", ["notakey"], 2, "'notakey' is not a GBIF download key"),
    ("status", ["emptydir"], 2, "is not a GBIF download key"),
    ("status", ["empty.txt"], 2, "key file empty.txt is empty"),
    ("status", ["badkey.txt"], 2, "'not-a-key' is not a GBIF download key"),
    ("get", ["", "-o", "out"], 2, "no download key given"),
    ("wait", ["12345"], 2, "0026011-250827131500795"),
    ("wait", [KEY, "--min-interval", "0"], 2, "--min-interval"),
    ("wait", [KEY, "--timeout", "-5"], 2, "--timeout"),
    ("cite", ["dl.3xkznf"], 2, "not a GBIF download key"),
    ("cancel", ["abc", "-u", "sam"], 2, "not a GBIF download key"),
    ("post", [], 2, "give a PAYLOAD JSON file or builder options"),
    ("post", [""], 2, "no payload file given"),
    ("post", ["missing.json"], 2, "missing.json does not exist"),
    ("post", ["emptydir"], 2, "is a folder"),
    ("post", ["bad.json"], 2, "cannot read payload bad.json as JSON"),
    ("post", ["list.json"], 2, "not an object"),
    ("post", ["bad_key.json"], 2, "TAXON_KEY"),
    ("post", ["extra.json"], 2, "colour"),
    ("post", ["good.json", "--format", "zip"], 2, "--format 'zip' is not a GBIF download format"),
    ("post", ["good.json", "--taxon", "212"], 2, "not both"),
    ("post", ["good.json", "-k", "emptydir"], 2, "-k/--key-file emptydir is a folder"),
    ("post", ["--taxon", "Aglais io", "--year", "abc"], 2, "year: 'abc'"),
    ("post", ["--taxon", "Aglais io", "--country", "XX"], 2, "'XX'"),
    ("post", ["--taxon", " , "], 2, "--taxon is empty"),
    ("match", [""], 2, "taxon name is empty"),
    ("run", ["-o", "ds", "--key", "nope"], 2, "'nope' is not a GBIF download key"),
    ("run", ["-o", "ds", "bad_key.json"], 2, "TAXON_KEY"),
    ("run", ["-o", "ds", "--taxon", "Aglais io", "--year", "abc"], 2, "year: 'abc'"),
    ("gbifpost", ["-p", "missing.json"], 2, "missing.json does not exist"),
    ("gbifpost", ["-p", "bad_key.json"], 2, "TAXON_KEY"),
    ("gbifpipe", ["-d", "ds", "-k", "badkey.txt"], 2, "'not-a-key' is not a GBIF download key"),
    ("report", ["emptydir"], 1, "`gbifxdl run` (or `gbifxdl fetch`) first"),
]


def run_cli(capsys: pytest.CaptureFixture[str], program: str, args: list[str]) -> tuple[int, str, str, float]:
    if program == "gbifpost":
        return invoke(capsys, gbifpost, args, prog="gbifpost")
    if program == "gbifpipe":
        return invoke(capsys, gbifpipe, args, prog="gbifpipe")
    return invoke(capsys, cli, [program, *args])


@pytest.mark.parametrize("program,args,code,words", BAD_INPUT, ids=[f"{p} {' '.join(a)}" for p, a, _, _ in BAD_INPUT])
def test_bad_input_is_one_line_before_any_prompt_or_request(
    program: str, args: list[str], code: int, words: str, clean_env: Path, closed_port: int,
    resolver: list[str], prompts: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    files(clean_env)
    # credentials wherever they are asked for would come from a prompt; GBIF would be a closed port
    monkeypatch.setenv("GBIF_API_URL", f"http://127.0.0.1:{closed_port}/v1")
    exit_code, out, err, seconds = run_cli(capsys, program, args)
    line = one_error_line(err)
    assert exit_code == code and words in line, line
    assert "connection refused" not in line  # said locally, nothing was sent
    assert seconds < QUICK and prompts == [] and resolver == []
    assert not (clean_env / "ds").exists()  # a run makes no folder for input it cannot use
    assert_names_exist(line, program)


def _unreachable_cases() -> list[tuple[str, list[str]]]:
    return [
        ("match", ["Aglais io"]),
        ("post", ["good.json"]),
        ("post", ["request.json", "--wait"]),
        ("post", ["--taxon", "Aglais io"]),
        ("status", [KEY]),
        ("status", [DOI]),
        ("status", ["key.txt", "--json"]),
        ("wait", [KEY]),
        ("get", [KEY, "-o", "out"]),
        ("get", [f"https://doi.org/{DOI}", "--wait"]),
        ("cancel", [KEY]),
        ("downloads", []),
        ("cite", [KEY]),
        ("cite", [DOI]),
        ("run", ["-o", "ds_key", "--key", KEY]),
        ("run", ["-o", "ds_payload", "good.json"]),
        ("run", ["-o", "ds_taxon", "--taxon", "Aglais io"]),
        ("gbifpost", ["-p", "request.json"]),
        ("gbifpipe", ["-d", "ds_pipe", "-k", "key.txt"]),
    ]


@pytest.mark.parametrize("program,args", _unreachable_cases(), ids=[f"{p} {' '.join(a)}" for p, a in _unreachable_cases()])
@pytest.mark.parametrize("failure", ["dns", "refused"])
def test_unreachable_gbif_fails_within_seconds_in_one_line(
    program: str, args: list[str], failure: str, clean_env: Path, closed_port: int, resolver: list[str],
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    files(clean_env)
    monkeypatch.setenv("GBIF_USER", "sam")
    monkeypatch.setenv("GBIF_PWD", "sam-password")
    host = NO_SUCH_HOST if failure == "dns" else f"127.0.0.1:{closed_port}"
    api = ["--api-url", f"http://{host}/v1"]
    exit_code, out, err, seconds = run_cli(capsys, program, [*args, *api])
    line = one_error_line(err)
    assert exit_code == 1 and seconds < QUICK, (seconds, line)
    if failure == "dns":
        assert f"the host name {NO_SUCH_HOST} does not resolve" in line and NO_SUCH_HOST in resolver
    else:
        assert f"connection refused by 127.0.0.1:{closed_port}" in line
    assert "check your network connection and the API URL (--api-url or GBIF_API_URL)" in line
    assert_names_exist(line, program)


@pytest.mark.parametrize("program,args,hint", [
    ("post", ["good.json"], "pass -u/--user USER"),
    ("downloads", [], "pass -u/--user USER"),
    ("run", ["-o", "ds", "good.json"], None),
    ("gbifpost", ["-p", "good.json"], 'put "creator": "USER" in the payload'),
])
def test_missing_credentials_name_only_what_the_command_has(
    program: str, args: list[str], hint: str | None, clean_env: Path, closed_port: int, resolver: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    files(clean_env)
    exit_code, _, err, _ = run_cli(capsys, program, [*args, "--api-url", f"http://127.0.0.1:{closed_port}/v1"])
    line = one_error_line(err)
    assert exit_code == 2 and "no GBIF username found" in line and "GBIF_USER" in line and "~/.netrc" in line
    assert (hint in line) if hint else ("--user" not in line and "-u/" not in line)
    assert_names_exist(line, program)


def test_a_good_request_prompts_after_the_checks(clean_env: Path, closed_port: int, prompts: list[str],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # the control for the "no prompt" assertions above: with a valid payload the prompt does come
    files(clean_env)
    code, _, err, _ = invoke(capsys, cli, ["post", "good.json", "--api-url", f"http://127.0.0.1:{closed_port}/v1"])
    assert prompts == ["GBIF username: ", "GBIF password for prompted-user: "]
    assert code == 1 and "connection refused" in one_error_line(err) and "prompted-password" not in err


def test_report_on_a_fetched_folder_names_curate(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from _dataset_factory import standard_dataset

    root = clean_env / "fetched"
    standard_dataset(root)
    assert (root / "metadata.parquet").is_file() and not (root / "curate_summary.json").exists()
    code, out, err, _ = invoke(capsys, cli, ["report", str(root)])
    assert code == 0 and "report.html" in out
    assert err.strip() == f"not curated yet: `gbifxdl curate {root}` removes duplicates and adds the splits"


def test_key_forms(capsys: pytest.CaptureFixture[str]) -> None:
    from gbifxdl.gbif import InvalidKey, check_key

    assert check_key(f" {KEY}\n") == KEY
    for doi in (DOI, f"doi:{DOI}", f"https://doi.org/{DOI}", DOI.upper()):
        assert check_key(doi) == DOI
    for bad in ("", "  ", "0026011-25082713150079", "26011-250827131500795", "10.1000/xyz", f"{KEY}x", None):
        with pytest.raises(InvalidKey):
            check_key(bad)


@pytest.mark.parametrize("args", [["cite", "{dir}"], ["export", "{dir}", "--manifest", "{dir}/m.parquet"],
                                  ["curate", "{dir}"], ["derive", "{dir}", "--title", "t", "--source-url", "https://zenodo.org/records/1", "--dry-run"]])
def test_a_folder_that_is_no_dataset_is_named_as_such_whatever_the_command(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str]) -> None:
    folder = tmp_path / "not-a-dataset"
    folder.mkdir()
    code, out, err, _ = invoke(capsys, cli, [a.format(dir=folder) for a in args])
    line = one_error_line(err)
    assert code != 0 and f"{folder} is not a dataset folder" in line
    assert "curate works" not in line  # the message fits every command that takes a dataset folder
    assert list(folder.iterdir()) == []  # and nothing was written there


def test_a_missing_archive_creates_nothing_and_exits_as_select_does(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing, ds = tmp_path / "nonexistent.zip", tmp_path / "ds"
    run_code, _, run_err, _ = invoke(capsys, cli, ["run", "--archive", str(missing), "-o", str(ds)])
    assert f"{missing}: no such file" in one_error_line(run_err)
    assert not ds.exists()  # not even a log: a bad argument creates nothing
    select_code, _, select_err, _ = invoke(capsys, cli, ["select", str(missing), "-o", str(tmp_path / "s.parquet")])
    one_error_line(select_err)
    assert run_code == select_code == 2


def test_run_says_its_own_errors_before_asking_gbif(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                     closed_port: int) -> None:
    # issue 20, item 2: a bad --cluster was said only after the taxon name was matched at GBIF
    api = f"http://127.0.0.1:{closed_port}/v1"  # nothing answers: a request would fail otherwise
    code, out, err, _ = invoke(capsys, cli, ["run", "--taxon", "Nymphalidae", "--cluster", "local:0",
                                             "-o", str(tmp_path / "ds"), "--api-url", api])
    line = one_error_line(err)
    assert code == 2 and "local:0" in line and "Nymphalidae" not in out + err
    assert not (tmp_path / "ds").exists()


def test_a_dataset_run_again_reuses_its_api_address_and_matched_names(clean_env: Path, resolver: list[str],
                                                                      closed_port: int) -> None:
    # issue 20, item 2: running a dataset again matched its taxon names at GBIF again, and without
    # GBIF_API_URL went to api.gbif.org although the dataset came from another API; a finished run
    # run again needs no network at all
    import dataclasses

    from gbifxdl.cli.run import run as run_command_object, settings_from_context
    from gbifxdl.run import RunSettings, RunState, SourceSettings
    from gbifxdl.run._job import STATE_FILE

    api = f"http://127.0.0.1:{closed_port}/v1"  # nothing answers there: a request would fail
    dataset = clean_env / "ds"
    (dataset / STATE_FILE).parent.mkdir(parents=True)
    made = RunSettings(output=str(dataset), source=SourceSettings(
        predicate={"type": "equals", "key": "TAXON_KEY", "value": "7017"}, api_url=api,
        taxon_names=(("Nymphalidae", 7017),)))
    state = RunState(path=dataset / STATE_FILE, settings=json.loads(json.dumps(dataclasses.asdict(made))))
    state.save()
    ctx = run_command_object.make_context("run", ["--taxon", "Nymphalidae", "-o", str(dataset)])
    settings = settings_from_context(ctx)
    assert settings.source.api_url == api  # the dataset's own API, not api.gbif.org
    assert "7017" in json.dumps(settings.source.predicate) and settings.source.taxon_names == (("Nymphalidae", 7017),)
    assert resolver == []  # nothing was looked up, nothing was asked
