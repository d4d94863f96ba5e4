"""`gbifxdl run` end to end against the local GBIF: both layouts, SIGKILL and resume.

The killed series runs first (so it lives through PREPARING and RUNNING); the
uninterrupted reference run then posts the identical request, which GBIF (and the
emulator) answers with the same download, so both runs select from the same archive and
their datasets must be equal.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Callable

import pyarrow.parquet as pq
import pytest

from gbifxdl.testing.local import DEMO_PASSWORD, DEMO_USER, LocalGbifSettings, local_gbif

from _process_group import fetched_rows

CONFIG = """
[wait]
min_interval = 0.2
max_interval = 0.5

[select]
max_per_class = 12

[fetch]
resize = 96
per_host = 3
shard_size = 16
"""

# columns whose values depend on timing or on how a run went, not on what it produced
VOLATILE = {"attempts", "error"}


@pytest.fixture(scope="module")
def local():
    settings = LocalGbifSettings(
        n_occurrences=160, prepare_seconds=0.8, run_seconds=1.2, fault_rate=0.06, latency=0.05
    )
    with local_gbif(settings) as g:
        yield g


@pytest.fixture()
def env(tmp_path: Path, local) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GBIF_", "NETRC"))},
        "HOME": str(home),
        "GBIF_USER": DEMO_USER,
        "GBIF_PWD": DEMO_PASSWORD,
        "GBIF_EMAIL": "demo@example.org",
        "GBIF_API_URL": local.api_url,
    }


def _command(config: Path, out: Path, layout: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "gbifxdl", "run", "--taxon", "Nymphalidae", "--year", "2005-2025",
            "--config", str(config), "--layout", layout, "-o", str(out), "--no-progress", *extra]  # fmt: skip


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def _images(dataset: Path) -> set[str]:
    return {p.stem for p in (dataset / "images").rglob("*") if p.is_file() and not p.name.startswith(".")}


def _fraction_fetched(share: float) -> Callable[[Path], bool]:
    def check(d: Path) -> bool:
        selection = d / "selection.parquet"
        return selection.exists() and fetched_rows(d) >= share * pq.read_metadata(selection).num_rows

    return check


# the moments to kill at, in pipeline order: each is checked in a fresh (resumed) run
KILL_MOMENTS: list[tuple[str, Callable[[Path], bool]]] = [
    ("state written", lambda d: (d / ".gbifxdl" / "run.json").exists()),
    ("key saved, waiting", lambda d: (d / "download_key.txt").exists()),
    ("still waiting", lambda d: (d / "gbifxdl.log").exists() and "RUNNING" in (d / "gbifxdl.log").read_text()),
    ("archive arriving", lambda d: (d / "archive").is_dir() and any((d / "archive").iterdir())),
    ("archive complete", lambda d: any((d / "archive").glob("*.zip"))),
    ("selection written", lambda d: (d / "selection.parquet").exists()),
    ("first images", lambda d: fetched_rows(d) >= 1),
    ("a quarter fetched", _fraction_fetched(0.25)),
    ("two thirds fetched", _fraction_fetched(0.66)),
    ("fetch complete", lambda d: (d / "metadata.parquet").exists()),
    ("curated", lambda d: (d / "removed.parquet").exists()),
    ("card written", lambda d: (d / "README.md").exists()),
]


def _kill_when(cmd: list[str], env: dict[str, str], cwd: Path, dataset: Path, moment: Callable[[Path], bool]) -> bool:
    """Start a run and SIGKILL it once ``moment`` holds; return False if it ended first."""
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if dataset.exists() and moment(dataset):
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    return True
            except (OSError, ValueError):
                pass  # a file caught mid-rename: look again
            time.sleep(0.005)
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _table(dataset: Path) -> list[dict]:
    rows = pq.read_table(dataset / "metadata.parquet").to_pylist()
    return sorted(({k: v for k, v in r.items() if k not in VOLATILE} for r in rows), key=lambda r: r["url_hash"])


def _file_digests(dataset: Path, layout: str) -> dict[str, str]:
    if layout == "folders":
        root = dataset / "images"
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in root.rglob("*") if p.is_file()}  # fmt: skip
    digests = {}
    for shard in sorted((dataset / "shards").glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                data = tar.extractfile(member).read()
                digests[f"{shard.name}/{member.name}"] = hashlib.sha256(data).hexdigest()
    return digests


def _posts(local) -> list:
    return [r for r in local.emulator.requests if r.method == "POST"]


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["folders", "webdataset"])
def test_killed_run_equals_uninterrupted_run(tmp_path: Path, env: dict[str, str], local, layout: str) -> None:
    config = tmp_path / "gbifxdl.toml"
    config.write_text(CONFIG)
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    cmd = _command(config, killed, layout)
    local.hosts.reset_counts()
    posts_before = len(_posts(local))

    moments = KILL_MOMENTS if layout == "folders" else [m for m in KILL_MOMENTS if m[0] in
                                                         ("key saved, waiting", "a quarter fetched", "two thirds fetched", "curated")]  # fmt: skip
    kills, written_at_kill, posts_once_saved = 0, [], None
    for name, moment in moments:
        if _kill_when(cmd, env, tmp_path, killed, moment):
            kills += 1
            if posts_once_saved is None and (killed / "download_key.txt").exists():
                posts_once_saved = len(_posts(local))
            if layout == "folders":
                written_at_kill.append((name, _images(killed), local.hosts.request_counts()))
    assert kills >= (10 if layout == "folders" else 3), f"only {kills} kills landed"

    done = _run(cmd, env, tmp_path)
    assert done.returncode == 0, done.stderr
    killed_counts = local.hosts.request_counts()

    # an image written before a kill is never requested again
    selection = pq.read_table(killed / "selection.parquet", columns=["identifier", "url_hash"]).to_pylist()
    url_of = {r["url_hash"]: r["identifier"] for r in selection}
    for name, written, counts in written_at_kill:
        refetched = [h for h in written if h in url_of and killed_counts.get(url_of[h], 0) != counts.get(url_of[h], 0)]
        assert not refetched, f"fetched again after the kill at '{name}': {refetched[:3]}"

    # once the key is saved, the request is never posted again (a kill between GBIF's
    # answer and the save may post it again: GBIF then answers with the same key)
    assert posts_once_saved is not None and len(_posts(local)) == posts_once_saved
    assert posts_once_saved - posts_before >= 1

    local.hosts.reset_counts()
    ref = _run(_command(config, reference, layout), env, tmp_path)
    assert ref.returncode == 0, ref.stderr
    assert (reference / "download_key.txt").read_text() == (killed / "download_key.txt").read_text()

    assert _table(killed) == _table(reference)
    assert _file_digests(killed, layout) == _file_digests(reference, layout)
    for name in ("README.md", "ATTRIBUTION.csv", "report.html", "selection.parquet"):
        assert (killed / name).is_file() and (reference / name).is_file(), name

    # a second run after success does no work
    counts = local.hosts.total_requests()
    again = _run(cmd, env, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "Nothing to do" in again.stdout
    assert local.hosts.total_requests() == counts


def test_a_key_saved_only_in_the_state_is_written_on_resume(tmp_path: Path) -> None:
    """A kill between saving the key in the run state and in download_key.txt loses neither."""
    from gbifxdl.run._stages import stage_request
    from gbifxdl.run import RunState

    state = RunState(path=tmp_path / ".gbifxdl" / "run.json", download_key="0000001-250101000000000")
    stage_request(None, state, tmp_path, progress=False, echo=print)  # type: ignore[arg-type]  # posts nothing
    assert (tmp_path / "download_key.txt").read_text() == "0000001-250101000000000\n"


@pytest.mark.slow
def test_changed_settings_are_refused(tmp_path: Path, env: dict[str, str], local) -> None:
    config = tmp_path / "gbifxdl.toml"
    config.write_text(CONFIG)
    out = tmp_path / "ds"
    first = _run(_command(config, out, "folders", "--max-per-class", "3"), env, tmp_path)
    assert first.returncode == 0, first.stderr
    before = _table(out)

    other = _run(_command(config, out, "folders", "--max-per-class", "4"), env, tmp_path)
    assert other.returncode != 0
    message = other.stderr.strip().splitlines()[-1]
    assert "other select settings" in message and "--allow-changed-settings" in message
    assert "Traceback" not in other.stderr
    assert _table(out) == before  # nothing lost

    redo = _run(_command(config, out, "folders", "--max-per-class", "4", "--allow-changed-settings"), env, tmp_path)
    assert redo.returncode == 0, redo.stderr
    per_class: dict = {}
    for row in _table(out):
        per_class[row["speciesKey"]] = per_class.get(row["speciesKey"], 0) + 1
    assert max(per_class.values()) <= 4 and len(_table(out)) > len(before)


@pytest.mark.slow
def test_run_from_existing_key_and_archive(tmp_path: Path, env: dict[str, str], local) -> None:
    from gbifxdl.credentials import Credentials
    from gbifxdl.gbif import post_request, wait
    from gbifxdl.query import build_predicate

    predicate = build_predicate(taxon_keys=[797], years=(2020, 2021))
    key = post_request(predicate, credentials=Credentials(DEMO_USER, DEMO_PASSWORD), api_url=local.api_url)
    wait(key, api_url=local.api_url, min_interval=0.1, max_interval=0.2, progress=False)
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    base = [sys.executable, "-m", "gbifxdl", "run", "--config", str(config), "--no-progress", "--no-report"]
    by_key = _run([*base, "--key", key, "-o", str(tmp_path / "k")], env, tmp_path)
    assert by_key.returncode == 0, by_key.stderr
    archive = tmp_path / "k" / "archive" / f"{key}.zip"
    assert archive.is_file()
    by_archive = _run([*base, "--archive", str(archive), "-o", str(tmp_path / "a")], env, tmp_path)
    assert by_archive.returncode == 0, by_archive.stderr
    assert _table(tmp_path / "k") == _table(tmp_path / "a")
    assert not (tmp_path / "k" / "report.html").exists()


@pytest.mark.slow
def test_gbifpipe_runs_the_original_pipeline(tmp_path: Path, env: dict[str, str], local) -> None:
    from gbifxdl.credentials import Credentials
    from gbifxdl.gbif import post_request, wait
    from gbifxdl.query import build_predicate

    key = post_request(build_predicate(taxon_keys=[7017], years=(2019, 2019)),
                       credentials=Credentials(DEMO_USER, DEMO_PASSWORD), api_url=local.api_url)  # fmt: skip
    wait(key, api_url=local.api_url, min_interval=0.1, max_interval=0.2, progress=False)  # gbifpipe polls slowly
    key_file = tmp_path / "key.txt"
    key_file.write_text(key + "\n")
    gbifpipe = Path(sys.executable).with_name("gbifpipe")
    done = _run([str(gbifpipe), "-d", str(tmp_path / "ds"), "-k", str(key_file)], env, tmp_path)
    assert done.returncode == 0, done.stderr
    table = _table(tmp_path / "ds")
    assert table and all(max(r["width"], r["height"]) <= 512 for r in table)
    assert (tmp_path / "ds" / "report.html").is_file()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-o", "x"], "give exactly one source"),
        (["--key", "k", "--archive", "a.zip", "-o", "x"], "give exactly one source"),
        (["--key", "k"], "no dataset folder"),
        (["missing.json", "-o", "x"], "payload file missing.json not found"),
        (["--config", "nope.toml", "--key", "k", "-o", "x"], "config file nope.toml not found"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path: Path, env: dict[str, str], args: list[str], expected: str) -> None:
    done = _run([sys.executable, "-m", "gbifxdl", "run", *args], env, tmp_path)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], done.stderr


@pytest.mark.slow
def test_init_writes_a_config_that_runs(tmp_path: Path, env: dict[str, str]) -> None:
    from gbifxdl.cli.run import _stage_sections
    from gbifxdl.run.config import read_config, settings_from

    done = _run([sys.executable, "-m", "gbifxdl", "init", "my.toml"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    config = read_config(tmp_path / "my.toml")
    for name, default in _stage_sections().items():
        assert settings_from(type(default), config.get(name, {}), section=name) == default
    assert config["source"]["taxon"] == ("Nymphalidae",) and config["source"]["media_type"] == "StillImage"
    again = _run([sys.executable, "-m", "gbifxdl", "init", "my.toml"], env, tmp_path)
    assert again.returncode != 0 and "--force" in again.stderr

    (tmp_path / "bad.toml").write_text("[fetch]\nresise = 5\n")
    bad = _run([sys.executable, "-m", "gbifxdl", "run", "--config", "bad.toml", "--key", "k", "-o", "x"], env, tmp_path)
    assert bad.returncode != 0 and "[fetch]: unknown setting(s) resise" in bad.stderr


@pytest.mark.slow
def test_demo_leaves_a_dataset_and_says_what_to_open(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GBIF_")}
    done = _run([sys.executable, "-m", "gbifxdl", "demo", "-o", "demo", "--occurrences", "80", "--no-progress"],
                env, tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    demo = tmp_path / "demo"
    for name in ("metadata.parquet", "README.md", "ATTRIBUTION.csv", "report.html", "gbifxdl.log"):
        assert (demo / name).is_file(), name
    assert f"Open {(demo / 'report.html').resolve()}" in done.stdout
    card = (demo / "README.md").read_text()
    assert "doi.org/10.15468/dl." in card
    again = _run([sys.executable, "-m", "gbifxdl", "demo", "-o", "demo", "--no-progress"], env, tmp_path)
    assert again.returncode == 0 and "is complete" in again.stdout
