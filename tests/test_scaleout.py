"""Fetching to object storage (S3 and SFTP servers on loopback) and on a local Dask cluster:
the same files and rows as a local fetch, resumable from the store by any machine."""

from __future__ import annotations

import io
import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gbifxdl
from gbifxdl.fetch import FetchSettings, fetch
from gbifxdl.fetch._sink import unit_key, uploading_key
from gbifxdl.store import Store, open_store
from gbifxdl.testing.image_hosts import ImageHosts, write_selection

from _object_servers import need as _need, s3  # noqa: F401 - s3 is a fixture

SRC = str(Path(gbifxdl.__file__).resolve().parents[1])
N = 60
SETTINGS = dict(resize=64, shard_size=20, workers=1)


@pytest.fixture(scope="module")
def hosts() -> Iterator[ImageHosts]:
    with ImageHosts(2, latency=0.01, max_side=200) as h:
        yield h


@pytest.fixture(autouse=True)
def staging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "staging"
    monkeypatch.setenv("GBIFXDL_STAGING", str(path))
    return path


def _selection(hosts: ImageHosts, tmp_path: Path, n: int = N) -> Path:
    return write_selection(tmp_path / "sel.parquet", [hosts.photo_url(i, i % 2) for i in range(n)])


def _local_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and ".gbifxdl" not in p.parts and p.name not in ("metadata.parquet", "fetch.log")}


def _store_files(store: Store) -> dict[str, bytes]:
    return {k: store.read_bytes(k) for k in store.list()
            if not k.startswith(".gbifxdl/") and k not in ("metadata.parquet", "fetch.log")}


def _store_table(store: Store) -> Any:
    return pq.read_table(io.BytesIO(store.read_bytes("metadata.parquet")))


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["folders", "webdataset"])
def test_fetch_to_s3_gives_the_files_and_rows_of_a_local_fetch(hosts: ImageHosts, s3: Any, tmp_path: Path,
                                                               layout: str) -> None:
    sel = _selection(hosts, tmp_path)
    settings = FetchSettings(layout=layout, **SETTINGS)
    fetch(sel, tmp_path / "local", settings, progress=False)
    url = s3.url(f"to-s3-{layout}")
    summary = fetch(sel, url, settings, progress=False, storage_options=s3.storage_options)
    assert summary.ok == N and summary.metadata_path.startswith("s3://")
    store = open_store(url, storage_options=s3.storage_options)
    assert _store_files(store) == _local_files(tmp_path / "local")
    assert _store_table(store).equals(pq.read_table(tmp_path / "local" / "metadata.parquet"))
    # staging keeps nothing once the fetch is complete, and its log is in the store as a local fetch's
    # is beside its files (issue 20, item 17)
    assert not (tmp_path / "staging").exists(), sorted((tmp_path / "staging").rglob("*"))
    assert b"60 of 60 images ok" in store.read_bytes("fetch.log")
    hosts.reset_counts()
    again = fetch(sel, url, settings, progress=False, storage_options=s3.storage_options)
    assert again.fetched_now == 0 and hosts.total_requests() == 0


@pytest.mark.slow
def test_an_upload_cut_short_is_resumed_by_another_machine_without_fetching_what_arrived(
        hosts: ImageHosts, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sel = _selection(hosts, tmp_path)
    settings = FetchSettings(**SETTINGS)
    url = s3.url("cut")
    fetch(sel, url, settings, progress=False, storage_options=s3.storage_options)
    store = open_store(url, storage_options=s3.storage_options)
    reference = _store_files(store)
    # as if the machine died while unit 1's images went up: rows marked "uploading", three images missing
    rows = store.read_bytes(unit_key(1))
    store.put_bytes(uploading_key(1), rows)
    store.remove(unit_key(1))
    store.remove("metadata.parquet")
    paths = pq.read_table(io.BytesIO(rows)).column("path").to_pylist()
    for path in paths[:3]:
        store.remove(path)
    monkeypatch.setenv("GBIFXDL_STAGING", str(tmp_path / "another-machine"))
    hosts.reset_counts()
    summary = fetch(sel, url, settings, progress=False, storage_options=s3.storage_options)
    assert hosts.total_requests() == 3  # the missing ones only
    assert summary.ok == N and _store_files(store) == reference
    assert not store.exists(uploading_key(1))


@pytest.mark.slow
def test_a_store_of_another_selection_or_settings_is_refused(hosts: ImageHosts, s3: Any, tmp_path: Path) -> None:
    from gbifxdl.errors import StateError

    sel = _selection(hosts, tmp_path, 20)
    url = s3.url("other")
    fetch(sel, url, FetchSettings(**SETTINGS), progress=False, storage_options=s3.storage_options)
    with pytest.raises(StateError, match="other settings .*resize: was 64, now 32"):
        fetch(sel, url, FetchSettings(**{**SETTINGS, "resize": 32}), progress=False,
              storage_options=s3.storage_options)


def test_fetch_to_sftp(hosts: ImageHosts, tmp_path: Path) -> None:
    _need("sshfs", "asyncssh")
    from gbifxdl.testing.object_stores import SFTPServer

    sel = _selection(hosts, tmp_path, 30)
    settings = FetchSettings(**SETTINGS)
    fetch(sel, tmp_path / "local", settings, progress=False)
    with SFTPServer(tmp_path / "server") as server:
        summary = fetch(sel, server.url("data"), settings, progress=False, storage_options=server.storage_options)
        assert summary.ok == 30
        assert _local_files(tmp_path / "server" / "data") == _local_files(tmp_path / "local")
        assert not [p for p in (tmp_path / "server").rglob("*") if ".tmp-" in p.name]


@pytest.mark.slow
def test_the_command_line_writes_to_s3_with_credentials_from_the_environment(hosts: ImageHosts, s3: Any,
                                                                             tmp_path: Path) -> None:
    sel = _selection(hosts, tmp_path, 20)
    url = s3.url("cli")
    # S3Server puts the loopback endpoint and its keys in AWS_* variables: nothing on the command line
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "gbifxdl", "fetch", str(sel), "-o", url, "--resize", "64",
                           "--shard-size", "10", "--workers", "1"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"{url}/metadata.parquet" in proc.stdout
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in proc.stdout + proc.stderr
    assert len(open_store(url).list("images/")) == 20


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["folders", "webdataset"])
def test_a_local_dask_cluster_gives_the_dataset_of_one_machine(hosts: ImageHosts, tmp_path: Path,
                                                               layout: str) -> None:
    _need("distributed")
    sel = _selection(hosts, tmp_path, 100)
    settings = FetchSettings(layout=layout, **SETTINGS)
    fetch(sel, tmp_path / "single", settings, progress=False)
    summary = fetch(sel, tmp_path / "cluster", settings, progress=False, cluster="local:2")
    assert summary.ok == 100
    assert not (tmp_path / "staging").exists(), sorted((tmp_path / "staging").rglob("*"))  # issue 20, item 17
    assert _local_files(tmp_path / "cluster") == _local_files(tmp_path / "single")
    assert pq.read_table(tmp_path / "cluster" / "metadata.parquet").equals(
        pq.read_table(tmp_path / "single" / "metadata.parquet"))


@pytest.mark.slow
def test_image_processes_on_a_dask_worker_run_with_glibc_malloc_tuning(hosts: ImageHosts, tmp_path: Path) -> None:
    # a Dask nanny gives its worker MALLOC_TRIM_THRESHOLD_, which costs image work 10% more
    # CPU (bench/cluster.py): the worker keeps it, its image processes start without it
    _need("distributed", "psutil")
    import distributed
    import psutil

    from gbifxdl.fetch.cluster import start_local_cluster

    with start_local_cluster(1) as local, distributed.Client(local) as client:
        summary = fetch(_selection(hosts, tmp_path, 20), tmp_path / "out", FetchSettings(**SETTINGS),
                        progress=False, cluster=local.scheduler_address)
        assert summary.ok == 20
        (pid,) = client.run(os.getpid).values()
        worker = psutil.Process(pid)
        assert "MALLOC_TRIM_THRESHOLD_" in worker.environ()
        children = worker.children(recursive=True)
        assert len(children) >= 2  # the fork server and the image process
        assert all("MALLOC_TRIM_THRESHOLD_" not in p.environ() for p in children)


@pytest.mark.slow
def test_a_fetch_after_a_local_cluster_keeps_glibc_malloc_tuning_for_its_images(hosts: ImageHosts,
                                                                                 tmp_path: Path) -> None:
    # Dask leaves MALLOC_TRIM_THRESHOLD_ in the environment of a process that started a
    # LocalCluster (a notebook, say): a one-machine fetch there keeps its image processes free of it
    _need("distributed", "psutil")
    sel = _selection(hosts, tmp_path, 5)
    code = f"""import os, psutil
from gbifxdl.fetch import FetchSettings, fetch
from gbifxdl.fetch.cluster import start_local_cluster
start_local_cluster(1).close()
assert os.environ.get("MALLOC_TRIM_THRESHOLD_"), "Dask no longer sets it: this test checks nothing"
summary = fetch({str(sel)!r}, {str(tmp_path / 'out')!r}, FetchSettings(workers=1), progress=False)
assert summary.ok == 5, summary.format()
children = psutil.Process().children(recursive=True)
assert children, "the fork server outlives the fetch"
assert all("MALLOC_TRIM_THRESHOLD_" not in p.environ() for p in children), [p.cmdline() for p in children]
"""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_ctrl_c_on_a_local_cluster_is_one_line_quickly_and_the_same_command_resumes(tmp_path: Path) -> None:
    # SIGINT to the whole process group, as a terminal sends it: the workers' running units
    # stop at once (not after the nanny's kill timeout), nothing but one line is printed
    _need("distributed")
    import signal
    import time

    with ImageHosts(2, latency=0.3, max_side=120) as slow:
        sel = write_selection(tmp_path / "sel.parquet", [slow.photo_url(i, i % 2) for i in range(1500)])
        cmd = [sys.executable, "-m", "gbifxdl", "fetch", str(sel), "-o", str(tmp_path / "out"), "--resize", "32",
               "--shard-size", "100", "--cluster", "local:2"]
        env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
               "GBIFXDL_STAGING": str(tmp_path / "staging")}
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        first = proc.stdout.readline()  # type: ignore[union-attr]
        assert first.startswith("Dask cluster tcp://127.0.0.1:"), first
        # the README's dashboard: its address, or how to get it (issue 20, item 15)
        has_bokeh = importlib.util.find_spec("bokeh") is not None
        assert ("dashboard http://127.0.0.1:" in first) if has_bokeh else ("pip install bokeh" in first), first
        deadline = time.monotonic() + 60
        while slow.total_requests() < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert slow.total_requests() >= 200, "the fetch never started"
        os.killpg(proc.pid, signal.SIGINT)
        interrupted = time.monotonic()
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - interrupted
        assert proc.returncode == 130
        said = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "fetch:" not in line]
        assert said == ["Interrupted; nothing done so far is lost. Run the same command again to continue."], said
        assert took < 10, f"Ctrl-C took {took:.1f} s to take effect"
        assert not (tmp_path / "out" / "metadata.parquet").exists()
        again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr[-2000:]
    rows = pq.read_table(tmp_path / "out" / "metadata.parquet")
    assert rows.num_rows == 1500 and set(rows.column("outcome").to_pylist()) == {"ok"}


def test_bad_cluster_values_are_one_line_errors(tmp_path: Path) -> None:
    from gbifxdl.errors import ConfigError
    from gbifxdl.fetch.cluster import parse_cluster

    assert parse_cluster("local:3") == ("local", 3)
    assert parse_cluster("tcp://10.0.0.5:8786") == ("address", "tcp://10.0.0.5:8786")
    for bad in ("local:0", "local:x", "laptop", ""):
        with pytest.raises(ConfigError, match="expected local:N .* or a Dask scheduler address"):
            parse_cluster(bad)


    assert list(tmp_path.iterdir()) == []


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_cluster_value_is_understood_or_refused_in_one_line(value: str) -> None:
    from gbifxdl.errors import ConfigError
    from gbifxdl.fetch._jobqueue import JobSpec
    from gbifxdl.fetch.cluster import parse_cluster

    system = value.strip().partition(":")[0].lower()
    try:
        kind, where = parse_cluster(value)
    except ConfigError as exc:
        # a batch-jobs value (slurm:..., pbs:...) is refused for its own bad key; any other names the forms
        assert "\n" not in str(exc) and (system in ("slurm", "pbs", "sge") or "local:N" in str(exc))
    else:
        assert ((kind == "local" and isinstance(where, int) and where >= 1) or (kind == "address" and where)
                or (kind == "jobs" and isinstance(where, JobSpec) and system in ("slurm", "pbs")))


@pytest.mark.slow
def test_an_unreachable_scheduler_is_one_line(hosts: ImageHosts, tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sel = _selection(hosts, tmp_path, 5)
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}
    proc = subprocess.run([sys.executable, "-m", "gbifxdl", "fetch", str(sel), "-o", str(tmp_path / "out"),
                           "--cluster", f"tcp://127.0.0.1:{port}"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot reach the Dask scheduler at tcp://127.0.0.1:{port}")
    assert "start it with `dask scheduler`" in lines[0]


@pytest.mark.slow
def test_a_local_fetch_imports_neither_dask_nor_fsspec(hosts: ImageHosts, tmp_path: Path) -> None:
    sel = _selection(hosts, tmp_path, 5)
    code = f"""import sys
from gbifxdl.fetch import FetchSettings, fetch
summary = fetch({str(sel)!r}, {str(tmp_path / 'out')!r}, FetchSettings(workers=1), progress=False)
assert summary.ok == 5, summary.format()
loaded = {{'dask', 'distributed', 'fsspec', 's3fs', 'sshfs'}} & set(sys.modules)
assert not loaded, loaded
"""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
