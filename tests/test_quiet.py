"""Issue 20, item 9: one spelling, `--quiet`, on every command; summaries print unless it is given.

`--no-progress`, the older spelling of run, demo, curate, get and rebuild, still works but
is hidden and hides the bars only: the summaries (how many images failed, and why) print.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gbifxdl.cli import cli
from gbifxdl.testing.dwca import write_dwca
from gbifxdl.testing.image_hosts import ImageHosts

FETCH_SUMMARY = "images ok,"  # the fetch summary's first line: "N of M images ok, K failed ..."
SELECT_SUMMARY = "images selected in"


@pytest.fixture(scope="module")
def hosts():
    with ImageHosts(2, seed=3, fault_rate=0.2) as h:  # a fifth of the photos fail for good
        yield h


@pytest.fixture()
def archive(tmp_path: Path, hosts: ImageHosts) -> Path:
    return write_dwca(tmp_path / "0000001-250101000000000.zip", n_occurrences=40, image_base_urls=hosts.base_urls).path


def _run(tmp_path: Path, archive: Path, *flags: str) -> str:
    out = tmp_path / "ds"
    result = CliRunner().invoke(cli, ["run", "--archive", str(archive), "-o", str(out), "--no-report",
                                      "--max-per-class", "3", "--resize", "64", *flags])  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.output


def test_run_no_progress_still_prints_the_select_and_fetch_summaries(tmp_path: Path, archive: Path) -> None:
    output = _run(tmp_path, archive, "--no-progress")
    assert SELECT_SUMMARY in output
    assert FETCH_SUMMARY in output and "failed" in output  # the number of failed images is said


def test_run_quiet_prints_no_bar_and_no_summary(tmp_path: Path, archive: Path) -> None:
    output = _run(tmp_path, archive, "--quiet")
    assert SELECT_SUMMARY not in output and FETCH_SUMMARY not in output and "fetch:" not in output
    assert "[fetch]" not in output and "kept in" not in output  # neither stage lines nor curate's summary
    assert (tmp_path / "ds" / "metadata.parquet").is_file()


def test_select_and_fetch_no_progress_print_their_summaries_quiet_does_not(tmp_path: Path, archive: Path) -> None:
    runner = CliRunner(mix_stderr=False) if "mix_stderr" in CliRunner.__init__.__code__.co_varnames else CliRunner()
    selection = tmp_path / "sel.parquet"
    said = runner.invoke(cli, ["select", str(archive), "-o", str(selection), "--max-per-class", "2", "--no-progress"])
    assert said.exit_code == 0, said.output
    assert SELECT_SUMMARY in said.output + (said.stderr or "")
    quiet = runner.invoke(cli, ["select", str(archive), "-o", str(selection), "--max-per-class", "2", "--quiet"])
    assert quiet.exit_code == 0 and SELECT_SUMMARY not in quiet.output + (quiet.stderr or "")

    fetched = runner.invoke(cli, ["fetch", str(selection), "-o", str(tmp_path / "a"), "--workers", "0", "--no-progress"])
    assert fetched.exit_code == 0, fetched.output
    assert FETCH_SUMMARY in fetched.output
    quiet = runner.invoke(cli, ["fetch", str(selection), "-o", str(tmp_path / "b"), "--workers", "0", "--quiet"])
    assert quiet.exit_code == 0 and FETCH_SUMMARY not in quiet.output and quiet.output.strip() == ""


@pytest.mark.parametrize("command", ["demo", "run", "get", "select", "fetch", "infer", "curate", "rebuild"])
def test_every_command_with_bars_takes_quiet_and_hides_no_progress(command: str) -> None:
    shown = CliRunner().invoke(cli, [command, "--help"]).output
    assert "--quiet" in shown and "--no-progress" not in shown
