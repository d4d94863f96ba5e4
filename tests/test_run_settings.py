"""Changing settings between runs of one dataset: speed settings freely; output settings redo only what they affect.

Every run here is `gbifxdl run --key KEY` in a subprocess, as a user types it, against a
local GBIF and image hosts on loopback; the archive then lives in the dataset folder.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from gbifxdl.testing.local import DEMO_PASSWORD, DEMO_USER, LocalGbifSettings, local_gbif
from gbifxdl.run import STAGES

BASE = """
[select]
max_per_class = 6

[fetch]
resize = 64
shard_size = 16
"""


@pytest.fixture(scope="module")
def local():
    with local_gbif(LocalGbifSettings(n_occurrences=120, prepare_seconds=0.1, run_seconds=0.1, fault_rate=0.0)) as g:
        yield g


@pytest.fixture(scope="module")
def key(local) -> str:
    from gbifxdl.credentials import Credentials
    from gbifxdl.gbif import post_request, wait
    from gbifxdl.query import build_predicate

    predicate = build_predicate(taxon_keys=[7017], years=(2005, 2025))
    key = post_request(predicate, credentials=Credentials(DEMO_USER, DEMO_PASSWORD), api_url=local.api_url)
    wait(key, api_url=local.api_url, min_interval=0.1, max_interval=0.2, progress=False)
    return key


def _gbifxdl_run(tmp_path: Path, local, key: str, config: str, *extra: str) -> subprocess.CompletedProcess:
    path = tmp_path / "run.toml"
    path.write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GBIF_")}
    env["HOME"] = str(tmp_path)
    cmd = [sys.executable, "-m", "gbifxdl", "run", "--key", key, "--api-url", local.api_url, "--config", str(path),
           "-o", str(tmp_path / "ds"), "--no-progress", "--no-report", *extra]  # fmt: skip
    return subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)


def _files(root: Path) -> dict[str, tuple[int, int]]:
    """Return {path: (inode, mtime_ns)} of every file below ``root``: a rewritten file changes."""
    return {str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def _kept(ds: Path) -> dict[str, dict]:
    return {r["url_hash"]: r for r in pq.read_table(ds / "metadata.parquet").to_pylist()}


def _removed(ds: Path, reason: str) -> set[str]:
    if not (ds / "removed.parquet").exists():
        return set()
    rows = pq.read_table(ds / "removed.parquet").to_pylist()
    return {r["url_hash"] for r in rows if r["removed_reason"].startswith(reason)}


def _archive_and_selection(ds: Path) -> dict[str, tuple[int, int]]:
    return {**{f"archive/{k}": v for k, v in _files(ds / "archive").items()},
            "selection.parquet": _files(ds)["selection.parquet"]}  # fmt: skip


@pytest.mark.slow
def test_speed_settings_change_freely_and_are_used(tmp_path: Path, local, key: str) -> None:
    first = _gbifxdl_run(tmp_path, local, key, BASE)
    assert first.returncode == 0, first.stderr
    ds = tmp_path / "ds"
    files, requests = _files(ds / "images"), local.hosts.total_requests()
    assert files

    faster = BASE + 'workers = 1\nuser_agent = "other-agent/1.0"\nretry_failed = true\nmax_attempts = 5\n'
    again = _gbifxdl_run(tmp_path, local, key, faster, "--connections", "5", "--per-host", "2")
    assert again.returncode == 0, again.stderr
    assert "Using the new fetch settings (connections 64 -> 5" in again.stdout
    assert "Nothing to do" in again.stdout
    assert _files(ds / "images") == files and local.hosts.total_requests() == requests
    saved = json.loads((ds / ".gbifxdl" / "run.json").read_text())["settings"]["fetch"]
    assert (saved["connections"], saved["per_host"], saved["user_agent"]) == (5, 2, "other-agent/1.0")


@pytest.mark.slow
def test_a_fetch_output_change_refetches_only_the_images(tmp_path: Path, local, key: str) -> None:
    first = _gbifxdl_run(tmp_path, local, key, BASE)
    assert first.returncode == 0, first.stderr
    ds = tmp_path / "ds"
    kept_sources, images = _archive_and_selection(ds), _files(ds / "images")
    fetched = sum(pq.read_table(p, columns=["outcome"]).column("outcome").to_pylist().count("ok")
                  for p in (ds / ".gbifxdl" / "fetch").glob("unit-*.parquet"))  # fmt: skip
    assert fetched > 16  # more than one unit

    refused = _gbifxdl_run(tmp_path, local, key, BASE, "--resize", "48")
    assert refused.returncode != 0
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert "was started with other fetch settings (resize 64 -> 48" in lines[0]
    assert "--allow-changed-settings" in lines[0]
    assert f"the {fetched:,} fetched images will be fetched again" in lines[0]
    assert "the archive and the selection are kept" in lines[0]
    assert _files(ds / "images") == images  # nothing lost

    redo = _gbifxdl_run(tmp_path, local, key, BASE, "--resize", "48", "--allow-changed-settings")
    assert redo.returncode == 0, redo.stderr
    assert f"fetch settings changed (resize 64 -> 48): the {fetched:,} fetched images will be fetched again" in redo.stdout
    assert _archive_and_selection(ds) == kept_sources  # neither rewritten nor downloaded again
    rows = _kept(ds).values()
    assert rows and all(max(r["width"], r["height"]) <= 48 for r in rows)
    assert any(max(r["orig_width"], r["orig_height"]) > 48 for r in rows)


def _curate_config(**settings: object) -> str:
    lines = [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    return BASE + "\n[curate]\n" + "\n".join(lines) + "\n"


# distinct synthetic photos differ by 18 bits of 64 and more: at 20, with the colour hash
# ignored (128 bits) and any pixels tolerated, a few pairs look "near-identical"
AGGRESSIVE = _curate_config(phash_threshold=20, chroma_threshold=128, pixel_tolerance=1000.0,
                            max_near_duplicate_share=1.0)
GENTLE = _curate_config(phash_threshold=20, chroma_threshold=128, pixel_tolerance=1000.0, max_near_duplicate_share=1.0,
                        near_duplicates=False)


def _first_curation(tmp_path: Path, local, key: str, *extra: str) -> tuple[Path, set[str]]:
    first = _gbifxdl_run(tmp_path, local, key, AGGRESSIVE, *extra)
    assert first.returncode == 0, first.stderr
    ds = tmp_path / "ds"
    near = _removed(ds, "near_duplicate")
    assert near and _kept(ds), "the aggressive threshold should remove some images and keep some"
    return ds, near


@pytest.mark.slow
def test_a_curate_change_downloads_and_deletes_nothing(tmp_path: Path, local, key: str) -> None:
    ds, _ = _first_curation(tmp_path, local, key)
    kept_sources, images, requests = _archive_and_selection(ds), _files(ds / "images"), local.hosts.total_requests()
    units = lambda: {k: v for k, v in _files(ds / ".gbifxdl" / "fetch").items() if k.startswith("unit-")}  # noqa: E731
    fetch_state = units()

    refused = _gbifxdl_run(tmp_path, local, key, GENTLE)
    assert refused.returncode != 0
    line = refused.stderr.strip()
    assert "\n" not in line and "other curate settings (near_duplicates True -> False)" in line
    assert "curation will run again on all" in line and "nothing is downloaded" in line

    redo = _gbifxdl_run(tmp_path, local, key, GENTLE, "--allow-changed-settings")
    assert redo.returncode == 0, redo.stderr
    assert local.hosts.total_requests() == requests
    assert _archive_and_selection(ds) == kept_sources
    assert units() == fetch_state  # fetch's finished work is kept as it was
    now = _files(ds / "images")
    assert {k: v for k, v in now.items() if k in images} == images  # every kept image untouched
    assert _removed(ds, "near_duplicate") == set()  # the new curation's record only


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["folders", "webdataset"])
def test_a_gentler_curation_brings_removed_images_back(tmp_path: Path, local, key: str, layout: str) -> None:
    ds, near = _first_curation(tmp_path, local, key, "--layout", layout)
    assert not near & set(_kept(ds)) and _on_disk(ds, layout).isdisjoint(near)
    redo = _gbifxdl_run(tmp_path, local, key, GENTLE, "--layout", layout, "--allow-changed-settings")
    assert redo.returncode == 0, redo.stderr
    kept = _kept(ds)
    assert near <= set(kept), "images removed as near duplicates by the earlier curation are back"
    assert near <= _on_disk(ds, layout)
    assert all(re.fullmatch(r"[0-9a-f]{64}", kept[h]["sha256"]) for h in near)


def _on_disk(ds: Path, layout: str) -> set[str]:
    """Return the url_hash of every image a loader sees (files under images/, samples in shards/)."""
    import tarfile

    if layout == "folders":
        return {p.stem for p in (ds / "images").rglob("*") if p.is_file()}
    keys = set()
    for shard in (ds / "shards").glob("*.tar"):
        with tarfile.open(shard) as tar:
            keys |= {m.name.split(".")[0] for m in tar.getmembers() if not m.name.endswith(".json")}
    return keys


# --- the plan itself, on folders laid out by hand (no network) -----------------------------

def _settings(ds: Path, **stage: object):
    import dataclasses

    from gbifxdl.run import RunSettings, SourceSettings

    settings = RunSettings(output=str(ds), source=SourceSettings(key="0000001-250101000000000"))
    return dataclasses.replace(settings, **{name: dataclasses.replace(getattr(settings, name), **values)
                                            for name, values in stage.items()})  # fmt: skip


def _lay_out(ds: Path) -> list[str]:
    """Write a finished run's outputs (empty files), return their paths."""
    names = ["archive/0000001-250101000000000.zip", "download_key.txt", "selection.parquet", "images/1/a.jpg",
             "shards/shard-000000.tar", ".gbifxdl/fetch/unit-000000.parquet", ".gbifxdl/removed/images/1/b.jpg",
             "metadata.parquet", "removed.parquet", "curate_summary.json", "README.md", "report.html"]  # fmt: skip
    for name in names:
        (ds / name).parent.mkdir(parents=True, exist_ok=True)
        (ds / name).write_bytes(b"x")
    return names


def _open(ds: Path, settings, allow: bool = True) -> list[str]:
    from gbifxdl.run._job import _open_state

    said: list[str] = []
    _open_state(ds, settings, allow, said.append)
    return said


def _finished(ds: Path, settings) -> None:
    from gbifxdl.run import STAGES, RunState

    _open(ds, settings)
    state = RunState.load(ds)
    state.done = {s: 1.0 for s in STAGES}
    state.save()
    _lay_out(ds)


def _left(ds: Path) -> set[str]:
    return {str(p.relative_to(ds)) for p in ds.rglob("*") if p.is_file() and p.name != "run.json"}


def test_a_curate_only_change_keeps_images_shards_and_set_aside_files(tmp_path: Path) -> None:
    from gbifxdl.run import RunState

    _finished(tmp_path, _settings(tmp_path))
    said = _open(tmp_path, _settings(tmp_path, curate={"near_duplicates": False}))
    assert said == ["curate settings changed (near_duplicates True -> False): curation will run again on all 0 "
                    "fetched images, from the full table (nothing is downloaded; the archive, the selection and "
                    "the images are kept)."]  # fmt: skip
    assert _left(tmp_path) == {"archive/0000001-250101000000000.zip", "download_key.txt", "selection.parquet",
                               "images/1/a.jpg", "shards/shard-000000.tar", ".gbifxdl/fetch/unit-000000.parquet",
                               ".gbifxdl/removed/images/1/b.jpg"}  # fmt: skip
    assert set(RunState.load(tmp_path).done) == {"request", "wait", "get", "select"}  # fetch reassembles its table


def test_a_fetch_output_change_keeps_archive_and_selection(tmp_path: Path) -> None:
    _finished(tmp_path, _settings(tmp_path, fetch={"resize": 512}))
    said = _open(tmp_path, _settings(tmp_path, fetch={"resize": 256}))
    assert said[0].startswith("fetch settings changed (resize 512 -> 256): the 0 fetched images will be fetched again")
    assert _left(tmp_path) == {"archive/0000001-250101000000000.zip", "download_key.txt", "selection.parquet"}


def test_a_select_change_keeps_the_archive(tmp_path: Path) -> None:
    _finished(tmp_path, _settings(tmp_path, select={"max_per_class": 5}))
    said = _open(tmp_path, _settings(tmp_path, select={"max_per_class": 6}))
    assert said[0].startswith("select settings changed (max_per_class 5 -> 6): the selection will be made again")
    assert _left(tmp_path) == {"archive/0000001-250101000000000.zip", "download_key.txt"}


def test_speed_only_changes_redo_nothing_and_are_saved(tmp_path: Path) -> None:
    from gbifxdl.run import RunState

    _finished(tmp_path, _settings(tmp_path))
    before = _left(tmp_path)
    said = _open(tmp_path, _settings(tmp_path, fetch={"connections": 3, "workers": 1, "user_agent": "x/1",
                                                      "retry_failed": True, "max_attempts": 9},
                                     wait={"max_interval": 900.0}, source={"notification": True,
                                                                         "api_url": "http://127.0.0.1:9/v1"}),
                 allow=False)  # fmt: skip
    assert _left(tmp_path) == before
    assert any(s.startswith("Using the new fetch settings (connections 64 -> 3") for s in said), said
    assert any(s.startswith("Using the new source settings (api_url None -> http") for s in said), said
    state = RunState.load(tmp_path)
    assert len(state.done) == len(STAGES) and state.settings["fetch"]["user_agent"] == "x/1"


def test_a_change_before_the_stage_ran_needs_no_confirmation(tmp_path: Path) -> None:
    from gbifxdl.run import RunState

    _open(tmp_path, _settings(tmp_path, fetch={"resize": 512}))
    state = RunState.load(tmp_path)
    state.done = {"wait": 1.0}
    state.save()
    _open(tmp_path, _settings(tmp_path, fetch={"resize": 256}), allow=False)
    assert RunState.load(tmp_path).settings["fetch"]["resize"] == 256


def test_a_removal_interrupted_by_a_kill_is_finished_first(tmp_path: Path) -> None:
    from gbifxdl.run import RunState

    _finished(tmp_path, _settings(tmp_path))
    state = RunState.load(tmp_path)
    state.pending_removal = ["images", "metadata.parquet"]  # saved, then killed before deleting
    state.save()
    _open(tmp_path, _settings(tmp_path), allow=False)
    assert not (tmp_path / "images").exists() and not (tmp_path / "metadata.parquet").exists()
    assert RunState.load(tmp_path).pending_removal == []


def test_a_refused_change_is_one_line_and_changes_nothing(tmp_path: Path) -> None:
    from gbifxdl.errors import StateError
    from gbifxdl.run import RunState

    _finished(tmp_path, _settings(tmp_path, fetch={"layout": "folders"}))
    before, saved = _left(tmp_path), (tmp_path / ".gbifxdl" / "run.json").read_bytes()
    with pytest.raises(StateError) as caught:
        _open(tmp_path, _settings(tmp_path, fetch={"layout": "webdataset"}), allow=False)
    message = str(caught.value)
    assert "other fetch settings" in message and "layout folders -> webdataset" in message
    assert "--allow-changed-settings" in message and "\n" not in message
    assert _left(tmp_path) == before and (tmp_path / ".gbifxdl" / "run.json").read_bytes() == saved
    assert len(RunState.load(tmp_path).done) == len(STAGES)


def test_a_change_of_several_stages_names_each(tmp_path: Path) -> None:
    from gbifxdl.errors import StateError

    _finished(tmp_path, _settings(tmp_path))
    with pytest.raises(StateError) as caught:
        _open(tmp_path, _settings(tmp_path, select={"seed": 3}, curate={"seed": 3}), allow=False)
    assert "other select and curate settings (select: seed 0 -> 3; curate: seed 0 -> 3)" in str(caught.value)
    assert "the selection will be made again from the kept archive" in str(caught.value)
