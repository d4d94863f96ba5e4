"""gbifxdl.store: atomic whole-object puts on a folder, file://, memory://, S3 (moto) and SFTP (asyncssh).

The S3 and SFTP servers are real servers on 127.0.0.1, started and stopped here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gbifxdl.errors import GbifxdlError, StorageError
from gbifxdl.store import LocalStore, Store, is_temporary, open_store, redact_url

BACKENDS = ["local", "file", "memory", "s3", "sftp"]
NEEDS = {  # backend -> (module, what to install), to skip only when the package is absent
    "memory": [("fsspec", "pip install fsspec (any of the s3/gcs/sftp extras brings it)")],
    "s3": [("s3fs", "the s3 extra: pip install 'gbifxdl[s3]'"),
           ("moto.server", "the test extra: pip install 'gbifxdl[test]' (moto[server])")],
    "sftp": [("sshfs", "the sftp extra: pip install 'gbifxdl[sftp]'"),
             ("asyncssh", "the sftp extra: pip install 'gbifxdl[sftp]'")],
}


def _need(backend: str) -> None:
    for module, what in NEEDS.get(backend, []):
        pytest.importorskip(module, reason=f"{module} is not installed; install {what}")


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    _need("s3")
    from gbifxdl.testing.object_stores import S3Server

    with S3Server() as server:
        yield server


@pytest.fixture(scope="module")
def sftp() -> Iterator[Any]:
    _need("sftp")
    from gbifxdl.testing.object_stores import SFTPServer

    with SFTPServer() as server:
        yield server


def _target(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """Return a fresh target of ``backend`` and the storage options to open it with."""
    _need(backend)
    name = f"t-{uuid.uuid4().hex[:8]}"
    if backend == "local":
        return str(tmp_path / name), {}
    if backend == "file":
        return f"file://{tmp_path}/{name}", {}
    if backend == "memory":
        return f"memory://{name}", {}
    server = request.getfixturevalue(backend)
    return server.url(name), server.storage_options


@pytest.fixture(params=BACKENDS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    return _target(request.param, request, tmp_path)


@pytest.fixture
def store(target: tuple[str, dict[str, Any]]) -> Iterator[Store]:
    opened = open_store(target[0], storage_options=target[1], check=True)
    yield opened
    opened.close()


def test_round_trip(store: Store, tmp_path: Path) -> None:
    store.put_bytes("images/123/aa.jpg", b"jpeg bytes")
    store.put_bytes("images/123/ab.jpg", [b"two ", b"chunks"])
    store.put_bytes("images/456/ba.jpg", b"x" * 70_000)
    built = Path(store.temp_path("shards/shard-000000.tar"))
    built.write_bytes(b"tar" * 1000)
    store.put_file(built, "shards/shard-000000.tar")
    store.put_bytes("state/unit-000000.parquet", b"rows")

    assert not built.exists(), "put_file moves the file"
    assert store.read_bytes("images/123/ab.jpg") == b"two chunks"
    assert store.size("images/456/ba.jpg") == 70_000 and store.size("images/999.jpg") is None
    assert store.exists("shards/shard-000000.tar") and not store.exists("shards/shard-000001.tar")
    with store.open_read("shards/shard-000000.tar") as fh:
        fh.seek(3000 - 3)
        assert fh.read() == b"tar"
    store.get_file("images/123/aa.jpg", tmp_path / "copy.jpg")
    assert (tmp_path / "copy.jpg").read_bytes() == b"jpeg bytes"
    assert store.list() == ["images/123/aa.jpg", "images/123/ab.jpg", "images/456/ba.jpg",
                            "shards/shard-000000.tar", "state/unit-000000.parquet"]
    assert store.list_sizes("images/123/") == {"images/123/aa.jpg": 10, "images/123/ab.jpg": 10}
    assert store.list("images/123/ab") == ["images/123/ab.jpg"]  # a prefix of names, not only folders
    assert store.list("nothing/") == []

    store.put_bytes("images/123/aa.jpg", b"replaced")
    assert store.read_bytes("images/123/aa.jpg") == b"replaced"
    store.remove("images/123/aa.jpg")
    store.remove("images/123/aa.jpg")  # absent: nothing happens
    with pytest.raises(FileNotFoundError):
        store.read_bytes("images/123/aa.jpg")
    store.remove_prefix("images/")
    assert store.list() == ["shards/shard-000000.tar", "state/unit-000000.parquet"]


def test_two_processes_share_one_target(store: Store, target: tuple[str, dict[str, Any]]) -> None:
    # another machine (here: another store object) removes a folder this one has written to
    other = open_store(target[0], storage_options=target[1])
    store.put_bytes("spool/unit-000001/a.jpg", b"a")
    assert other.read_bytes("spool/unit-000001/a.jpg") == b"a"
    other.remove_prefix("spool/")
    store.put_bytes("spool/unit-000001/b.jpg", b"b")
    other.remove_prefix("spool/")
    built = Path(store.temp_path("spool/unit-000001/c.jpg"))
    built.write_bytes(b"c")
    store.put_file(built, "spool/unit-000001/c.jpg")
    assert other.list() == ["spool/unit-000001/c.jpg"]
    other.close()


def test_bad_keys_are_refused(store: Store) -> None:
    for key in ("/abs.jpg", "a/../b.jpg", "a//b.jpg", "", "a\\b.jpg"):
        with pytest.raises(ValueError, match="not a store key"):
            store.put_bytes(key, b"x")


def test_temporaries_are_hidden_and_swept(store: Store) -> None:
    # what a put killed midway leaves on a folder or SFTP: a temporary name beside the final one
    store.put_bytes("images/1/.aa.jpg.tmp-4242-0badf00d", b"half")
    store.put_bytes("images/1/bb.jpg", b"whole")
    assert store.list() == ["images/1/bb.jpg"]
    assert not store.exists("images/1/aa.jpg")
    assert store.remove_temporaries() == 1
    assert store.remove_temporaries() == 0
    assert store.list() == ["images/1/bb.jpg"]
    assert is_temporary("a/.b.jpg.tmp-1-2") and not is_temporary("a/b.jpg")


def test_concurrent_reader_sees_old_or_new_never_part(store: Store) -> None:
    size = 3 * 2**20
    versions = [bytes([65 + i]) * size for i in range(4)]
    done = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(2):
                for data in versions:
                    store.put_bytes("shards/shard-000000.tar", data)
        except BaseException as exc:
            failures.append(exc)
        finally:
            done.set()

    seen: list[tuple[int, int]] = []
    writer = threading.Thread(target=write)
    writer.start()
    while not done.is_set() or not seen:
        try:
            data = store.read_bytes("shards/shard-000000.tar")
        except FileNotFoundError:
            continue
        seen.append((len(data), len(set(data))))
    writer.join()
    assert not failures, failures
    assert seen and all(s == (size, 1) for s in seen), f"partial reads: {[s for s in seen if s != (size, 1)]}"
    assert store.read_bytes("shards/shard-000000.tar") == versions[-1]
    assert store.list() == ["shards/shard-000000.tar"]


_PUT_SCRIPT = textwrap.dedent("""
    import json, sys
    from gbifxdl.store import open_store
    url, options, local, key = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
    store = open_store(url, storage_options=options)
    store.put_file(local, key)
    print("finished", flush=True)
""")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["s3", "sftp"])
def test_put_killed_mid_upload_leaves_no_object(backend: str, request: pytest.FixtureRequest,
                                                tmp_path: Path) -> None:
    _need(backend)
    server = request.getfixturevalue(backend)
    name = f"kill-{uuid.uuid4().hex[:8]}"
    url = server.url(name)
    store = open_store(url, storage_options=server.storage_options)
    big = tmp_path / "shard.tar"
    big.write_bytes(os.urandom(2**20) * 24)  # 24 MiB: a multipart upload on S3

    def uploading() -> bool:
        if backend == "s3":
            return bool(server.multipart_uploads())
        # any file at all (temporary or final) with bytes in it: the upload is under way
        return any(p.stat().st_size > 0 for p in (server.root / name).rglob("*") if p.is_file())

    server.delay = 0.5 if backend == "s3" else 0.02  # per upload request: the kill lands midway
    try:
        child = subprocess.Popen([sys.executable, "-c", _PUT_SCRIPT, url, json.dumps(server.storage_options),
                                  str(big), "shards/shard-000000.tar"], stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not uploading():
            assert child.poll() is None, "the upload ended before it could be interrupted"
            assert time.monotonic() < deadline, "the upload never started"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        server.delay = 0
    assert "finished" not in (child.stdout.read() if child.stdout else "")

    assert not store.exists("shards/shard-000000.tar")
    assert store.list() == []
    # S3: the begun multipart upload is no object (a bucket lifecycle rule aborts it later);
    # SFTP: the temporary beside the final name is what a later run sweeps
    if backend == "s3":
        assert server.multipart_uploads()
    swept = store.remove_temporaries()
    assert swept == (0 if backend == "s3" else 1)
    # the next run puts it whole
    store.put_file(big, "shards/shard-000000.tar")
    assert store.size("shards/shard-000000.tar") == 24 * 2**20
    store.close()


def test_put_file_error_leaves_no_object(store: Store, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        store.put_file(tmp_path / "never-written.tar", "shards/shard-000000.tar")
    assert store.list() == [] and store.remove_temporaries() == 0


# --- credentials are never shown -------------------------------------------------------------


@pytest.mark.parametrize("url", ["sftp://alice:hunter2-pw@127.0.0.1:22/data",
                                 "s3://AKIAEXAMPLE:hunter2-pw@bucket/prefix",
                                 "gs://user:hunter2-pw@bucket/prefix"])
def test_password_in_url_is_refused_without_showing_it(url: str) -> None:
    with pytest.raises(StorageError) as info:
        open_store(url)
    shown = "".join(traceback.format_exception(info.value)) + repr(info.value) + str(info.value)
    assert "hunter2-pw" not in shown
    assert "password in the URL is refused" in str(info.value)
    assert isinstance(info.value, GbifxdlError)


def test_stores_never_show_credentials(s3: Any, sftp: Any) -> None:
    # the secret is made at run time: a traceback quotes this file's source lines (Python
    # 3.13 whole calls), which must not be what the assertions find
    secret = "-".join(("testing", "secret", uuid.uuid4().hex[:6]))
    options = {**s3.storage_options, "key": "testing-key-id", "secret": secret}
    keyed = open_store(s3.url("p"), storage_options=options)
    assert secret not in str(keyed) + repr(keyed) + keyed.describe("a/b.jpg")
    with pytest.raises(StorageError) as info:
        open_store(f"s3://no-such-bucket-{uuid.uuid4().hex[:6]}/p", storage_options=options, check=True)
    assert secret not in "".join(traceback.format_exception(info.value))
    assert "does not exist" in str(info.value)
    remote = open_store(sftp.url("data"), storage_options=sftp.storage_options)
    assert str(remote).startswith(f"sftp://{sftp.username}@127.0.0.1:")  # a user name is not a secret
    remote.close()


@settings(max_examples=60, deadline=None)
@given(user=st.text("abcXYZ019-_.", min_size=1, max_size=12),
       secret=st.text("abcXYZ019!$&'()*+,;=-_.~%", min_size=4, max_size=20),
       rest=st.sampled_from(["host/path", "host:2222/a/b", "bucket", "bucket/k@v"]))
def test_redact_url_drops_any_password(user: str, secret: str, rest: str) -> None:
    for scheme in ("sftp", "s3", "gs", "ssh"):
        shown = redact_url(f"{scheme}://{user}:{secret}@{rest}")
        assert shown == f"{scheme}://{rest}"
    assert redact_url(f"sftp://{user}@{rest}") == f"sftp://{user}@{rest}"


# --- errors say what to do --------------------------------------------------------------------


_MISSING_SCRIPT = textwrap.dedent("""
    import json, sys
    blocked = sys.argv[1].split(",")
    for name in blocked:
        sys.modules[name] = None  # as if not installed: importing it raises ImportError
    from gbifxdl.store import open_store
    from gbifxdl.errors import StorageError
    try:
        open_store(sys.argv[2])
    except StorageError as exc:
        print(json.dumps(str(exc)))
""")


@pytest.mark.slow
@pytest.mark.parametrize(("blocked", "url", "extra"), [
    ("s3fs", "s3://bucket/prefix", "s3"),
    ("fsspec,s3fs", "s3://bucket/prefix", "s3"),
    ("gcsfs", "gs://bucket/prefix", "gcs"),
    ("sshfs", "sftp://me@127.0.0.1/data", "sftp"),
])
def test_missing_extra_names_what_to_install(blocked: str, url: str, extra: str) -> None:
    out = subprocess.run([sys.executable, "-c", _MISSING_SCRIPT, blocked, url],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    message = json.loads(out.stdout)
    assert f"the {extra} extra is not installed: pip install 'gbifxdl[{extra}]'" in message
    assert url in message


@pytest.mark.slow
def test_local_target_never_imports_fsspec(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys
        from gbifxdl.store import open_store
        for target in ({str(tmp_path / 'a')!r}, {'file://' + str(tmp_path / 'b')!r}):
            store = open_store(target, check=True)
            store.put_bytes("x/y.bin", b"data")
            path = store.temp_path("x/z.bin"); open(path, "wb").write(b"z"); store.put_file(path, "x/z.bin")
            assert store.list() == ["x/y.bin", "x/z.bin"], store.list()
            store.remove_prefix("x/")
        print("fsspec" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_file_url_is_the_local_fast_path(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}/out")
    assert isinstance(store, LocalStore) and store.root == tmp_path / "out"
    with pytest.raises(StorageError, match="file:///absolute/path"):
        open_store("file://relative/out")


def test_unwritable_local_target_says_so(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(StorageError, match=r"cannot write to .*a-file/out.*writable"):
        open_store(tmp_path / "a-file" / "out", check=True)


def test_unknown_protocol_says_what_is_accepted() -> None:
    _need("memory")
    with pytest.raises(StorageError, match="unknown storage protocol 'nosuch'.*s3://"):
        open_store("nosuch://x/y")


@pytest.mark.parametrize("url", ["sftp:///data", "sftp://me@127.0.0.1:99999/data"])
def test_malformed_sftp_url_says_how_to_write_it(url: str) -> None:
    _need("sftp")
    with pytest.raises(StorageError, match=r"write sftp://user@host\[:port\]/path"):
        open_store(url)


def test_sftp_host_not_known_says_how_to_fix(sftp: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # an empty ~/.ssh: the server's key is unknown
    options = {k: v for k, v in sftp.storage_options.items() if k != "known_hosts"}
    with pytest.raises(StorageError) as info:
        open_store(sftp.url("data"), storage_options=options)
    message = str(info.value)
    assert message.startswith(f"cannot connect to {sftp.url('data')}:")
    assert "known_hosts" in message


def test_s3_credentials_come_from_the_environment(s3: Any) -> None:
    # no storage options at all: AWS_ENDPOINT_URL and the AWS_* keys, as a user would set them
    store = open_store(s3.url("env-only"), check=True)
    store.put_bytes("a.txt", b"env")
    assert store.read_bytes("a.txt") == b"env"
    store.close()


def test_an_object_another_writer_puts_after_a_listing_is_seen(s3: Any) -> None:
    # two machines on one bucket: s3fs answered reads from the listing it had cached
    reader = open_store(s3.url("two-writers"), storage_options=s3.storage_options)
    writer = open_store(s3.url("two-writers"), storage_options=s3.storage_options)
    reader.put_bytes("journal/state.json", b"{}")
    assert reader.list("journal/") == ["journal/state.json"]
    writer.put_bytes("journal/unit-000000.parquet", b"rows")
    assert reader.exists("journal/unit-000000.parquet")
    assert reader.read_bytes("journal/unit-000000.parquet") == b"rows"


@pytest.mark.slow
def test_sftp_shows_no_warning_of_a_dependency() -> None:
    # issue 20, item 16: every sftp:// command printed ten lines of CryptographyDeprecationWarning
    # from asyncssh's imports; a user sees only gbifxdl's own lines
    _need("sftp")
    script = ("from gbifxdl.store import open_store\n"
              "try:\n    open_store('sftp://me@127.0.0.1:99999/data')\n"
              "except Exception as e:\n    print(type(e).__name__)\n")
    out = subprocess.run([sys.executable, "-W", "default", "-c", script], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "StorageError"  # it did import sshfs, and said what is wrong
    assert "Warning" not in out.stderr and "asyncssh" not in out.stderr, out.stderr
