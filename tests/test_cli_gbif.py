"""The GBIF commands end to end against the emulator, with --api-url; the password never shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Iterator

import pytest

import gbifxdl
from gbifxdl.cli import cli, run_command
from gbifxdl.testing.gbif_server import GbifEmulator

SECRET = "Pw-8d3!unique-SECRET"
USERS = {"demo": "demo-password", "sam": SECRET}
SRC = str(Path(gbifxdl.__file__).resolve().parents[1])


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GbifEmulator]:
    with GbifEmulator(users=USERS, n_occurrences=30, prepare_seconds=0.1, run_seconds=0.2,
                      archive_dir=tmp_path_factory.mktemp("archives")) as emulator:
        yield emulator


# no ambient credentials: every test runs in an empty folder with no GBIF variables and no netrc
pytestmark = pytest.mark.usefixtures("clean_env")


def gx(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``gbifxdl ARGS`` as the console script does; return (exit code, stdout, stderr)."""
    try:
        run_command(cli, list(args), prog_name="gbifxdl")
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def payload_file(folder: Path, value: str, creator: str = "demo") -> Path:
    path = folder / f"payload_{value}.json"
    path.write_text(json.dumps({"creator": creator, "notificationAddresses": [], "sendNotification": False,
                                "format": "DWCA", "predicate": {"type": "equals", "key": "COUNTRY", "value": value}}))
    return path


def test_post_status_wait_get_cite(emu: GbifEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GBIF_PWD", USERS["demo"])
    api = ["--api-url", emu.api_url]
    code, out, err = gx(capsys, "post", str(payload_file(tmp_path, "DK")), "-k", "key.txt", *api)
    key = out.strip()
    assert code == 0 and (tmp_path / "key.txt").read_text() == key + "\n" and "key.txt" in err
    code, out, _ = gx(capsys, "status", "key.txt", *api)  # a key file works as KEY
    assert code == 0 and out.startswith(key) and ("PREPARING" in out or "RUNNING" in out)
    code, out, _ = gx(capsys, "wait", key, "--min-interval", "0.05", "--max-interval", "0.1", *api)
    assert code == 0 and "SUCCEEDED" in out
    code, out, _ = gx(capsys, "status", key, "--json", *api)
    assert json.loads(out)["status"] == "SUCCEEDED"
    code, out, _ = gx(capsys, "get", key, "-o", "archive", "--no-progress", *api)
    assert code == 0 and Path(out.strip()) == Path("archive") / f"{key}.zip"
    assert zipfile.is_zipfile(tmp_path / "archive" / f"{key}.zip")
    code, out, _ = gx(capsys, "cite", key, *api)
    assert code == 0 and out.startswith("GBIF.org (") and "https://doi.org/10.15468/dl." in out
    code, out, err = gx(capsys, "downloads", "-u", "demo", *api)
    assert code == 0 and key in out and "shown" in err


def test_env_api_url_and_cancel(emu: GbifEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GBIF_API_URL", emu.api_url)
    (tmp_path / ".env").write_text(f"GBIF_USER=demo\nGBIF_PWD='{USERS['demo']}'\n")
    code, out, _ = gx(capsys, "post", str(payload_file(tmp_path, "FO")))
    key = out.strip()
    code, out, _ = gx(capsys, "cancel", key)
    assert code == 0 and out.strip() == f"{key} cancelled"
    code, out, _ = gx(capsys, "cancel", key)
    assert code == 0 and "already CANCELLED" in out
    code, out, _ = gx(capsys, "downloads", "--running")
    assert key not in out


def test_errors_are_one_line_and_exit_non_zero(emu: GbifEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = gx(capsys, "status", "0999999-250101000000000", "--api-url", emu.api_url)
    assert code == 1 and out == "" and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    code, _, err = gx(capsys, "post", str(payload_file(tmp_path, "SE")), "-u", "demo", "-w", "bad", "--api-url", emu.api_url)
    assert code == 1 and "401" in err and "Traceback" not in err
    code, _, err = gx(capsys, "post", str(payload_file(tmp_path, "SE")), "--api-url", emu.api_url)
    assert code == 2 and "GBIF_PWD" in err  # no credentials anywhere: a config error
    code, _, err = gx(capsys, "post", "--api-url", emu.api_url)
    assert code == 2 and "PAYLOAD" in err


def test_dry_run_prints_the_request_and_sends_nothing(emu: GbifEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = len(emu.requests)
    code, out, _ = gx(capsys, "post", str(payload_file(tmp_path, "NO", creator="sam")), "--dry-run", "--api-url", emu.api_url)
    body = json.loads(out)
    assert code == 0 and body["creator"] == "sam" and body["predicate"]["value"] == "NO" and body["format"] == "DWCA"
    assert len(emu.requests) == before


def test_builder_options_post(emu: GbifEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GBIF_USER", "demo")
    monkeypatch.setenv("GBIF_PWD", USERS["demo"])
    code, out, err = gx(capsys, "post", "--taxon", "Helianthus annuus", "--country", "US,CA", "--year", "1975-",
                        "--dry-run", "--api-url", emu.api_url)
    assert code == 0, err
    text = out
    assert '"9206251"' in text and '"US"' in text and "StillImage" in text
    code, out, err = gx(capsys, "match", "Helianthus annuus", "--api-url", emu.api_url)
    assert code == 0 and out.split("\t")[:3] == ["Helianthus annuus", "9206251", "EXACT"]


def _run(args: list[str], cwd: Path, env: dict[str, str], entry: str = "from gbifxdl.cli import main; main()") -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-c", entry, *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.slow
def test_password_never_appears_in_output_or_files(emu: GbifEmulator, tmp_path: Path) -> None:
    env = {"NETRC": str(tmp_path / "none")}
    payload = payload_file(tmp_path, "IE", creator="sam")
    runs = [
        _run(["post", str(payload), "-w", SECRET, "-k", "key.txt", "--api-url", emu.api_url], tmp_path, env),
        _run(["--debug", "downloads", "-u", "sam", "-w", SECRET, "--api-url", emu.api_url], tmp_path, env),
        _run(["post", str(payload), "--dry-run", "--api-url", emu.api_url], tmp_path, {**env, "GBIF_PWD": SECRET}),
        _run(["--debug", "post", str(payload_file(tmp_path, "GB", creator="sam")), "-w", SECRET + "x",
              "--api-url", emu.api_url], tmp_path, env),  # refused: traceback with --debug
        _run(["-p", str(payload), "-k", "legacy_key.txt", "--api-url", emu.api_url], tmp_path,
             {**env, "GBIF_PWD": SECRET}, entry="from gbifxdl.cli.legacy import gbifpost; gbifpost()"),
    ]
    assert runs[0].returncode == 0 and "warning" in runs[0].stderr and "process list" in runs[0].stderr
    assert runs[1].returncode == 0 and runs[2].returncode == 0
    assert runs[3].returncode != 0 and "AuthenticationError" in runs[3].stderr
    assert runs[4].returncode == 0, runs[4].stderr
    key = (tmp_path / "key.txt").read_text().strip()
    assert (tmp_path / "legacy_key.txt").read_text().strip() == key  # identical request: same key
    for run in runs:
        assert SECRET not in run.stdout and SECRET not in run.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_legacy_gbifpost_errors_are_one_line(emu: GbifEmulator, tmp_path: Path) -> None:
    payload = payload_file(tmp_path, "ES", creator="sam")
    run = _run(["-p", str(payload), "-w", "wrong", "--api-url", emu.api_url], tmp_path, {"NETRC": str(tmp_path / "none")},
               entry="from gbifxdl.cli.legacy import gbifpost; gbifpost()")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert [line for line in run.stderr.splitlines() if line.startswith("error: ")][0].count("401") == 1


def test_notification_has_one_default_as_run(emu: GbifEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # issue 20, item 13: `post` asked GBIF for an e-mail whenever one was known, while `run` (and the
    # config's [source] notification) did not: one default, no e-mail unless asked
    monkeypatch.setenv("GBIF_USER", "demo")
    from gbifxdl.run.config import SourceOptions

    assert SourceOptions().notification is False
    code, out, err = gx(capsys, "post", "--taxon", "Helianthus annuus", "-e", "demo@example.org", "--dry-run",
                        "--api-url", emu.api_url)
    assert code == 0, err
    body = json.loads(out)
    assert body["sendNotification"] is False and body["notificationAddresses"] == ["demo@example.org"]
    code, out, err = gx(capsys, "post", "--taxon", "Helianthus annuus", "--notify", "--dry-run", "--api-url", emu.api_url)
    assert code == 0 and json.loads(out)["sendNotification"] is True
    code, out, _ = gx(capsys, "post", "--help")
    assert "else no" in " ".join(out.split())
