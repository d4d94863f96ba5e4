"""Datasets that live in a bucket (issue 23): every command after fetch on an s3:// or gs:// URL, `run -o s3://`,
and the card's loaders reading the bucket.

S3 is moto's server and GCS gcp-storage-emulator's, both on 127.0.0.1, started and stopped here; the
commands run as a user runs them (`python -m gbifxdl ...`), their credentials and endpoints in the
environment the servers set.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import requests

from _dataset_factory import standard_dataset
from _object_servers import gcs, s3  # noqa: F401 - fixtures
from _process_group import fetched_rows
from gbifxdl.curate import curate
from gbifxdl.errors import StorageError
from gbifxdl.store import Store, open_store, working_copy
from gbifxdl.store._fsspec import FsspecStore


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("GBIFXDL_CACHE", str(path))
    return path


def _server(request: pytest.FixtureRequest, backend: str) -> Any:
    return request.getfixturevalue(backend)


def _upload(root: Path, url: str) -> Store:
    """Put every file of the dataset folder ``root`` under ``url``; return the store."""
    store = open_store(url)
    for path in sorted(root.rglob("*")):
        if path.is_file():
            store.copy_file(path, path.relative_to(root).as_posix())
    return store


def _objects(store: Store) -> dict[str, str]:
    """Return {key: sha256} of every object in ``store``."""
    return {key: hashlib.sha256(store.read_bytes(key)).hexdigest() for key in store.list()}


def _files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file()}


def _gbifxdl(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gbifxdl", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, stdin=subprocess.DEVNULL)


def _uniq(name: str) -> str:
    return f"{name}-{os.urandom(3).hex()}"


# --- the working copy, in this process ----------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_a_working_copy_pulls_only_what_changed_and_pushes_back_what_the_command_changed(
        backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    server = _server(request, backend)
    root = standard_dataset(tmp_path / "ds", "folders").root
    url = server.url(_uniq("ds"))
    store = _upload(root, url)
    said: list[str] = []
    with working_copy(url, echo=said.append) as copy:
        assert copy.path != root and _files(copy.path) == _files(root)  # the whole dataset, as it is
        (copy.path / "curate_summary.json").write_text("{}")  # new
        (copy.path / "metadata.parquet").write_bytes(b"changed")  # changed
        first_image = sorted((copy.path / "images").rglob("*.jpg"))[0]
        gone = first_image.relative_to(copy.path).as_posix()
        first_image.unlink()  # deleted
    assert "downloaded" in said[0] and "uploaded 2 files" in said[-1] and "deleted 1" in said[-1]
    assert store.read_bytes("metadata.parquet") == b"changed" and store.read_bytes("curate_summary.json") == b"{}"
    assert not store.exists(gone)
    assert _objects(store) == _files(copy.path)

    # another machine changes the bucket: the next pull brings that alone, and deletes what it deleted
    store.put_bytes("metadata.parquet", b"from elsewhere")
    store.remove("curate_summary.json")
    said.clear()
    with working_copy(url, images=False, push=False, echo=said.append) as again:
        assert (again.path / "metadata.parquet").read_bytes() == b"from elsewhere"
        assert not (again.path / "curate_summary.json").exists()
    assert said == [f"{url}: downloaded 1 files (0.0 MiB), deleted 1 into {copy.path}"]
    said.clear()
    with working_copy(url, echo=said.append):
        pass
    assert said == []  # nothing changed anywhere: nothing moves


def test_a_local_folder_is_its_own_working_copy(tmp_path: Path) -> None:
    root = standard_dataset(tmp_path / "ds", "folders").root
    with working_copy(root) as copy, working_copy(f"file://{root}") as by_url:
        assert copy.path == root and by_url.path == root and not copy.remote


@pytest.mark.slow
def test_a_push_killed_midway_leaves_the_bucket_whole_and_a_rerun_finishes_it(
        s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = standard_dataset(tmp_path / "ds", "folders").root
    url = s3.url(_uniq("ds"))
    store = _upload(root, url)
    before = _objects(store)
    put = FsspecStore.copy_file
    calls: list[str] = []

    def dies_on_the_third(self: FsspecStore, local: Any, key: str) -> None:
        calls.append(key)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C (or a kill) in the middle of putting back
        put(self, local, key)

    monkeypatch.setattr(FsspecStore, "copy_file", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        with working_copy(url) as copy:
            summary = curate(copy.path, progress=False)
    assert summary.removed and len(calls) >= 3  # (the puts already under way when it came finish)
    # the set-aside files go first, the tables after, the deletions last: the bucket still holds the
    # dataset as it was, whole (every object of it unchanged), beside some set-aside files
    assert all(key.startswith(".gbifxdl/removed/") for key in calls)
    after_kill = _objects(store)
    assert {k: after_kill.get(k) for k in before} == before
    assert set(after_kill) - set(before) <= set(calls)

    monkeypatch.setattr(FsspecStore, "copy_file", put)
    said: list[str] = []
    with working_copy(url, echo=said.append):
        pass  # the next command on it (here: none) finishes the push first
    assert not any("downloaded" in line for line in said)  # the copy was kept: nothing fetched back
    assert _objects(store) == _files(copy.path)
    curate(root, progress=False)  # the same curation, on a folder of its own
    here = _files(root)
    assert {k: v for k, v in _objects(store).items() if not k.endswith((".json", ".md", ".html", ".csv"))} == {
        k: v for k, v in here.items() if not k.endswith((".json", ".md", ".html", ".csv"))}


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_a_missing_bucket_or_an_empty_place_is_one_line(backend: str, request: pytest.FixtureRequest) -> None:
    server = _server(request, backend)
    scheme = server.url().split("://")[0]
    with pytest.raises(StorageError, match=r"the bucket of .* does not exist: create it") as missing:
        with working_copy(f"{scheme}://no-such-bucket-{os.urandom(3).hex()}/ds"):
            pass
    with pytest.raises(StorageError, match=r"no dataset at .*: nothing is stored under it") as empty:
        with working_copy(server.url("nothing-here")):
            pass
    for error in (missing, empty):
        assert "\n" not in str(error.value)


# --- the commands, as a user runs them ----------------------------------------------------------------------

def _curated_in_bucket(server: Any, tmp_path: Path, layout: str) -> tuple[str, Path]:
    """Return the URL of a factory dataset curated with `gbifxdl curate URL`, and the same curated locally."""
    root = standard_dataset(tmp_path / "ds", layout).root
    url = server.url(_uniq("ds"))
    _upload(root, url)
    done = _gbifxdl("curate", url, "--no-progress")
    assert done.returncode == 0, done.stderr
    assert f"wrote {url}/README.md" in done.stdout and str(tmp_path) not in done.stdout
    curate(root, progress=False)
    return url, root


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_curate_report_export_clean_and_cite_take_a_bucket_url(backend: str, request: pytest.FixtureRequest,
                                                              tmp_path: Path) -> None:
    server = _server(request, backend)
    url, local = _curated_in_bucket(server, tmp_path, "folders")
    store = open_store(url)
    # the bucket holds what a local curation gives: the same rows, the same files set aside
    assert pq.read_table(store.open_read("metadata.parquet")).to_pylist() == pq.read_table(
        local / "metadata.parquet").to_pylist()
    images = {k for k in store.list() if k.endswith(".jpg")}
    assert images == {p.relative_to(local).as_posix() for p in local.rglob("*.jpg")}
    assert {"README.md", "ATTRIBUTION.csv", "removed.parquet", "metadata-train.parquet"} <= set(store.list())
    assert "### From the bucket" in store.read_bytes("README.md").decode() and url in store.read_bytes(
        "README.md").decode()

    done = _gbifxdl("report", url)
    assert done.returncode == 0 and done.stdout.strip() == f"wrote {url}/report.html", done.stderr
    assert store.read_bytes("report.html").lower().startswith(b"<!doctype html>") and b"data:image/jpeg" in store.read_bytes(
        "report.html")
    done = _gbifxdl("export", url, "--manifest", str(tmp_path / "m.parquet"))
    assert done.returncode == 0, done.stderr
    assert pq.read_table(tmp_path / "m.parquet").num_rows == pq.read_metadata(local / "metadata.parquet").num_rows
    cited = _gbifxdl("cite", url)
    assert cited.returncode == 0 and "GBIF Occurrence Download" in cited.stdout, cited.stderr
    aside = {k for k in store.list() if k.startswith(".gbifxdl/removed/")}
    assert aside
    dry = _gbifxdl("clean", url, "--dry-run")
    assert dry.returncode == 0 and f"would delete {len(aside)} set-aside files" in dry.stdout
    done = _gbifxdl("clean", url)
    assert done.returncode == 0 and not {k for k in store.list() if k.startswith(".gbifxdl/removed/")}
    again = _gbifxdl("curate", url, "--no-progress")  # the copy here learns what clean deleted there
    assert again.returncode == 0, again.stderr
    bad = _gbifxdl("curate", f"{url.split('://')[0]}://no-such-bucket-{os.urandom(3).hex()}/ds")
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1 and "does not exist" in bad.stderr


@pytest.mark.slow
def test_review_serves_a_bucket_dataset_and_puts_its_marks_back(s3: Any, tmp_path: Path) -> None:
    url, _ = _curated_in_bucket(s3, tmp_path, "folders")
    proc = subprocess.Popen([sys.executable, "-m", "gbifxdl", "review", url, "--no-open"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        found = re.search(r"(http://127\.0\.0\.1:(\d+))/\?t=([\w-]+)", line)
        assert found and f"review {url} at" in line, line + proc.stderr.read()  # type: ignore[union-attr]
        base, token = found.group(1), found.group(3)
        page = requests.get(f"{base}/?t={token}", timeout=10)
        assert page.status_code == 200 and "<html" in page.text.lower()
        items = requests.get(f"{base}/api/images?t={token}", timeout=10).json()["items"]
        first = next(item["key"] for item in items if not item["removed"])
        thumb = requests.get(f"{base}/thumb/{first}?t={token}", timeout=10)  # the image, from the copy
        assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"
        marked = requests.post(f"{base}/api/marks?t={token}", json={"marks": [{"key": first, "mark": "bad"}]},
                               timeout=10)
        assert marked.status_code == 200, marked.text
        proc.send_signal(signal.SIGINT)  # how a user stops it
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    journal = open_store(url).read_bytes(".gbifxdl/review/marks.jsonl").decode()
    assert first in journal and '"bad"' in journal
    done = _gbifxdl("curate", url, "--no-progress")  # curation in the bucket honours the mark
    removed = pq.read_table(open_store(url).open_read("removed.parquet")).to_pylist()
    assert done.returncode == 0 and {r["url_hash"]: r["removed_reason"] for r in removed}[first] == "review:bad"


@pytest.mark.slow
def test_derive_registers_a_bucket_dataset_and_its_card_in_the_bucket_gives_the_doi(s3: Any, tmp_path: Path) -> None:
    from gbifxdl.testing.gbif_server import GbifEmulator

    url, _ = _curated_in_bucket(s3, tmp_path, "folders")
    with GbifEmulator(users={"curator": "pass-w0rd"}) as gbif:
        env = {**os.environ, "GBIF_USER": "curator", "GBIF_PWD": "pass-w0rd", "GBIF_API_URL": gbif.api_url}
        done = _gbifxdl("derive", url, "--title", "Bucket photos", "--source-url", "https://zenodo.org/records/1",
                        env=env)
        assert done.returncode == 0, done.stderr
        doi = done.stdout.split("https://doi.org/", 1)[1].split()[0]
        assert "pass-w0rd" not in done.stdout + done.stderr
        store = open_store(url)
        assert f"https://doi.org/{doi}" in store.read_bytes("README.md").decode()
        assert json.loads(store.read_bytes("croissant.json"))["identifier"] == f"https://doi.org/{doi}"
        assert json.loads(store.read_bytes(".gbifxdl/derived.json"))["doi"].endswith(doi)
        cited = _gbifxdl("cite", url, env=env)
        assert cited.returncode == 0 and doi in cited.stdout


# --- the loaders the card names ------------------------------------------------------------------------------

def _card_block(card: str, starts: str) -> str:
    bucket = card.split("### From the bucket", 1)[1]
    return bucket.split(f"```python\n{starts}", 1)[1].split("```", 1)[0]


def _hugging_face_reads_buckets(datasets: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Let ``datasets`` read the loopback bucket: its cache in ``tmp_path``, and its offline switches off
    (the publishing tests turn them on for the whole session, so that nothing reaches the Hub; offline,
    ``datasets`` refuses any remote URL, the loopback S3 server's too)."""
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    if hasattr(datasets.config, "HF_DATASETS_OFFLINE"):
        monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", False)


@pytest.mark.slow
def test_hugging_face_loads_the_folders_layout_from_the_bucket_with_the_card_recipe(
        s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    url, local = _curated_in_bucket(s3, tmp_path, "folders")
    card = open_store(url).read_bytes("README.md").decode()
    _hugging_face_reads_buckets(datasets, tmp_path, monkeypatch)
    scope: dict[str, Any] = {}
    exec("from datasets import Image, load_dataset\n" + _card_block(card, "from datasets import Image, load_dataset\n"),
         scope)
    ds = scope["ds"]
    table = pq.read_table(local / "metadata.parquet").to_pylist()
    hub = {"train": "train", "val": "validation", "test": "test", "test_ood": "test_ood"}
    counts: dict[str, int] = {}
    for row in table:
        counts[hub[row["split"]]] = counts.get(hub[row["split"]], 0) + 1
    assert {k: v.num_rows for k, v in ds.items()} == counts
    sample = ds["train"][0]
    with open(local / sample["file_name"], "rb") as fh:
        from PIL import Image

        assert sample["image"].tobytes() == Image.open(fh).tobytes()


# --- run -o s3:// ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def local_gbif_hosts() -> Iterator[Any]:
    from gbifxdl.testing.local import LocalGbifSettings, local_gbif

    with local_gbif(LocalGbifSettings(n_occurrences=120, prepare_seconds=0.3, run_seconds=0.3, latency=0.05)) as g:
        yield g


# a quick run: short waits for the emulator, few images, small ones
CONFIG = "[wait]\nmin_interval = 0.2\nmax_interval = 0.5\n[select]\nmax_per_class = 12\n[fetch]\nresize = 96\n"


@pytest.mark.slow
def test_run_to_a_bucket_is_resumable_and_loses_no_image_to_a_kill(
        s3: Any, local_gbif_hosts: Any, tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gbifxdl.testing.local import DEMO_PASSWORD, DEMO_USER

    config = tmp_path / "gbifxdl.toml"
    config.write_text(CONFIG)
    url = s3.url(_uniq("run"))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("GBIF_", "NETRC"))},
           "HOME": str(tmp_path), "GBIF_USER": DEMO_USER, "GBIF_PWD": DEMO_PASSWORD,
           "GBIF_EMAIL": "demo@example.org", "GBIF_API_URL": local_gbif_hosts.api_url}
    cmd = [sys.executable, "-m", "gbifxdl", "run", "--taxon", "Nymphalidae", "--year", "2005-2025", "--config",
           str(config), "--layout", "folders", "-o", url, "--no-progress"]
    local_gbif_hosts.hosts.reset_counts()
    # killed while fetching (a few images written in its working copy), then run again: it finishes
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    fetched_at_kill = 0
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        copies = [p.parent for p in cache.glob("buckets/*/*/selection.parquet")]
        try:
            fetched_at_kill = fetched_rows(copies[0]) if copies else 0
        except (OSError, ValueError):
            fetched_at_kill = 0  # a journal caught mid-rename: look again
        if fetched_at_kill >= 4:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait(30)
    assert fetched_at_kill >= 4, "the run ended before its fetch could be killed"
    at_kill = local_gbif_hosts.hosts.request_counts()
    written = {p.stem for p in (copies[0] / "images").rglob("*.jpg") if not p.name.startswith(".")}
    assert not open_store(url).exists("metadata.parquet")  # killed mid-fetch: the bucket has no table yet
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"The dataset is in {url}" in done.stdout
    store = open_store(url)
    keys = set(store.list())
    assert {"metadata.parquet", "README.md", "report.html", "croissant.json", ".gbifxdl/run.json",
            "selection.parquet"} <= keys
    rows = pq.read_table(store.open_read("metadata.parquet")).to_pylist()
    selected = pq.read_metadata(store.open_read("selection.parquet")).num_rows
    # the rerun went on from the images its working copy held: none written before the kill was asked again
    url_of = {r["url_hash"]: r["identifier"] for r in pq.read_table(
        store.open_read("selection.parquet"), columns=["url_hash", "identifier"]).to_pylist()}
    counts = local_gbif_hosts.hosts.request_counts()
    assert len(counts) == selected and len(written) >= 3
    assert {h: counts[url_of[h]] for h in written} == {h: at_kill[url_of[h]] for h in written}
    assert {r["path"] for r in rows} <= keys  # every kept image is in the bucket
    state = json.loads(store.read_bytes(".gbifxdl/run.json"))
    assert "report" in state["done"]

    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "Nothing to do" in again.stdout


@pytest.mark.slow
def test_the_shards_load_from_the_bucket_with_the_card_recipes(s3: Any, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # the card's loaders, on the bucket: Hugging Face datasets and webdataset over fsspec
    url, local = _curated_in_bucket(s3, tmp_path, "webdataset")
    store = open_store(url)
    card = store.read_bytes("README.md").decode()
    rows = pq.read_table(local / "metadata.parquet").to_pylist()
    datasets = pytest.importorskip("datasets")
    _hugging_face_reads_buckets(datasets, tmp_path, monkeypatch)
    scope: dict[str, Any] = {}
    exec("from datasets import load_dataset\n" + _card_block(card, "from datasets import load_dataset\n"), scope)
    by_key = {r["key"]: r for r in rows}
    loaded = sum(part.num_rows for part in scope["ds"].values())
    assert loaded == len(rows) and by_key[scope["ds"]["train"][0]["__key__"]]["split"] == "train"
    pytest.importorskip("webdataset")
    scope = {}
    exec("import fsspec, webdataset as wds\n" + _card_block(card, "import fsspec, webdataset as wds\n"), scope)
    samples = list(scope["train"])
    assert len(samples) == sum(1 for r in rows if r["split"] == "train")
    image, label, meta = samples[0]
    assert meta["split"] == "train" and image.size[0] > 0 and isinstance(label, int)


@pytest.mark.slow
def test_run_to_a_missing_bucket_is_one_line(s3: Any, tmp_path: Path) -> None:
    archive = tmp_path / "0000001-250101000000000.zip"
    archive.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip: the bucket is said first
    done = _gbifxdl("run", "--archive", str(archive), "-o", f"s3://no-such-bucket-{os.getpid()}/ds")
    assert "does not exist" in done.stderr, done.stderr
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1
