"""Loopback object stores for tests: an S3 API server (moto), a GCS JSON API server (gcp-storage-emulator)
and an SFTP server (asyncssh).

Both listen on 127.0.0.1 only, on an ephemeral port, run in daemon threads, and stop when
their ``with`` block ends. Nothing here reaches another address: the S3 server's context
sets fake credentials, ``AWS_ENDPOINT_URL`` (so every S3 client in the process talks to the
loopback server) and ``AWS_EC2_METADATA_DISABLED``, and hides the user's AWS files; the
SFTP server has its own host key and client key pair (password login is off) and its
clients are given a ``known_hosts`` of their own, so neither reads ``~/.aws`` nor ``~/.ssh``.

    with S3Server() as s3:
        store = open_store(s3.url("prefix"), storage_options=s3.storage_options)
    with SFTPServer() as sftp:
        store = open_store(sftp.url("data"), storage_options=sftp.storage_options)
    with GCSServer() as gcs:  # STORAGE_EMULATOR_HOST names it: gcsfs talks to it without options
        store = open_store(gcs.url("prefix"))

Each server can be made slow (``delay`` seconds per upload request), so a test can
interrupt an upload halfway.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

_FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing-key-id",
    "AWS_SECRET_ACCESS_KEY": "testing-secret",
    "AWS_SESSION_TOKEN": "testing-token",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
_HIDDEN_AWS = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
               "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
               "AWS_ENDPOINT_URL_S3")


def _set_env(wanted: dict[str, str | None], saved: dict[str, str | None]) -> None:
    """Set (or, for None, unset) each variable of ``wanted``, keeping its first earlier value in ``saved``."""
    for name, value in wanted.items():
        saved.setdefault(name, os.environ.get(name))
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


class _Slow:
    """WSGI middleware: hold each upload request (PUT) ``delay`` seconds."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.delay = 0.0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if self.delay and environ.get("REQUEST_METHOD") == "PUT":
            time.sleep(self.delay)
        return self.app(environ, start_response)


class S3Server:
    """moto's S3 API on 127.0.0.1 with one fresh bucket; fake credentials set only inside ``with``."""

    def __init__(self, bucket: str | None = None) -> None:
        self.bucket = bucket or f"gbifxdl-{uuid.uuid4().hex[:12]}"
        self.endpoint_url = ""
        self._server: Any = None
        self._saved: dict[str, str | None] = {}
        self._aws_dir: str | None = None
        self._slow: _Slow | None = None

    @property
    def storage_options(self) -> dict[str, Any]:
        """fsspec options naming the loopback endpoint explicitly (the environment names it too)."""
        return {"endpoint_url": self.endpoint_url}

    def url(self, prefix: str = "") -> str:
        """Return ``s3://BUCKET/prefix``."""
        return f"s3://{self.bucket}/{prefix}".rstrip("/")

    @property
    def delay(self) -> float:
        return self._slow.delay if self._slow else 0.0

    @delay.setter
    def delay(self, seconds: float) -> None:
        assert self._slow is not None, "start the server first"
        self._slow.delay = seconds

    def client(self) -> Any:
        """Return a boto3 S3 client of this server (to look at uploads in progress)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1")

    def multipart_uploads(self) -> list[dict[str, Any]]:
        """Return the multipart uploads begun and neither completed nor aborted."""
        return self.client().list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])

    def __enter__(self) -> S3Server:
        from moto.moto_server.threaded_moto_server import ThreadedMotoServer
        from moto.moto_server.werkzeug_app import (DomainDispatcherApplication, MotoRequestHandler,
                                                   create_backend_app)
        from werkzeug.serving import make_server

        outer = self

        class Quiet(MotoRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:  # one line per request: too many
                pass

        class Server(ThreadedMotoServer):
            def _server_entry(self) -> None:  # moto's, with the slow-down middleware
                outer._slow = _Slow(DomainDispatcherApplication(create_backend_app))
                self._server = make_server(self._ip_address, self._port, outer._slow, True,
                                           request_handler=Quiet)
                self._server_ready_event.set()
                self._server.serve_forever()

        self._aws_dir = tempfile.mkdtemp(prefix="gbifxdl-aws-")
        self._set_env()
        try:
            self._server = Server(ip_address="127.0.0.1", port=0, verbose=False)
            self._server.start()
            host, port = self._server.get_host_and_port()
            self.endpoint_url = f"http://{host}:{port}"
            os.environ["AWS_ENDPOINT_URL"] = self.endpoint_url
            self.client().create_bucket(Bucket=self.bucket)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _empty_bucket(self) -> None:
        client = self.client()
        for upload in self.multipart_uploads():
            client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=self.bucket, Key=obj["Key"])
        client.delete_bucket(Bucket=self.bucket)

    def _set_env(self) -> None:
        assert self._aws_dir is not None
        wanted: dict[str, str | None] = dict(_FAKE_AWS)
        wanted.update({k: None for k in _HIDDEN_AWS})
        wanted["AWS_CONFIG_FILE"] = f"{self._aws_dir}/config"
        wanted["AWS_SHARED_CREDENTIALS_FILE"] = f"{self._aws_dir}/credentials"
        wanted["AWS_ENDPOINT_URL"] = None
        _set_env(wanted, self._saved)

    def __exit__(self, *exc: object) -> None:
        if self._server is not None and self._server._server is not None:
            try:  # free this bucket's objects: moto keeps them in memory, per process
                self._empty_bucket()
            except Exception:
                pass
            self._server.stop()
        self._server = None
        _set_env(self._saved, {})
        self._saved.clear()
        if self._aws_dir:
            shutil.rmtree(self._aws_dir, ignore_errors=True)


class GCSServer:
    """gcp-storage-emulator's GCS JSON API on 127.0.0.1 with one fresh bucket, in memory.

    Inside ``with``, ``STORAGE_EMULATOR_HOST`` names it (gcsfs, and every process started
    there, talks to it anonymously) and ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`` keeps
    gcsfs off its gRPC bucket-type lookup, which the emulator does not serve (it would wait a
    minute per bucket); that one must be set before gcsfs is first imported.
    """

    def __init__(self, bucket: str | None = None) -> None:
        self.bucket = bucket or f"gbifxdl-{uuid.uuid4().hex[:12]}"
        self.endpoint_url = ""
        self._server: Any = None
        self._saved: dict[str, str | None] = {}

    def url(self, prefix: str = "") -> str:
        """Return ``gs://BUCKET/prefix``."""
        return f"gs://{self.bucket}/{prefix}".rstrip("/")

    @property
    def storage_options(self) -> dict[str, Any]:
        """fsspec options naming the loopback endpoint explicitly (the environment names it too)."""
        return {"endpoint_url": self.endpoint_url, "token": "anon"}

    def __enter__(self) -> GCSServer:
        import logging

        from gcp_storage_emulator.server import create_server

        logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)  # a line per request otherwise
        self._server = create_server("127.0.0.1", 0, in_memory=True, default_bucket=self.bucket)
        self._server.start()
        port = self._server._api._httpd.server_address[1]
        self.endpoint_url = f"http://127.0.0.1:{port}"
        _set_env({"STORAGE_EMULATOR_HOST": self.endpoint_url, "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
                  "GOOGLE_APPLICATION_CREDENTIALS": None}, self._saved)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        _set_env(self._saved, {})
        self._saved.clear()


class SFTPServer:
    """An SSH server on 127.0.0.1 serving a temporary folder over SFTP, key login only."""

    def __init__(self, root: str | Path | None = None, username: str = "gbifxdl") -> None:
        self.username = username
        self._given_root = Path(root) if root is not None else None
        self.root = Path()
        self.port = 0
        self.delay = 0.0  # seconds held before each write request
        self._dir = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._acceptor: Any = None
        self._conns: list[Any] = []

    @property
    def known_hosts(self) -> str:
        return f"{self._dir}/known_hosts"

    @property
    def client_key(self) -> str:
        return f"{self._dir}/id_ed25519"

    @property
    def storage_options(self) -> dict[str, Any]:
        """asyncssh options for this server: its host key and our client key, no agent, no ~/.ssh."""
        return {"known_hosts": self.known_hosts, "client_keys": [self.client_key],
                "agent_path": None, "config": [], "gss_host": None}

    def url(self, path: str = "data") -> str:
        """Return ``sftp://USER@127.0.0.1:PORT/path`` (a path in the served folder)."""
        return f"sftp://{self.username}@127.0.0.1:{self.port}/{path}".rstrip("/")

    def __enter__(self) -> SFTPServer:
        import asyncssh

        self._dir = tempfile.mkdtemp(prefix="gbifxdl-sftp-")
        self.root = self._given_root or Path(self._dir) / "served"
        self.root.mkdir(parents=True, exist_ok=True)
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        client_key = asyncssh.generate_private_key("ssh-ed25519")
        client_key.write_private_key(self.client_key)
        os.chmod(self.client_key, 0o600)
        authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode())
        outer = self

        class Served(asyncssh.SFTPServer):
            def __init__(self, chan: Any) -> None:
                super().__init__(chan, chroot=str(outer.root).encode())

            async def write(self, file_obj: object, offset: int, data: bytes) -> Any:
                if outer.delay:
                    await asyncio.sleep(outer.delay)
                return super().write(file_obj, offset, data)

        ready = threading.Event()
        failure: list[BaseException] = []

        async def start() -> None:
            self._acceptor = await asyncssh.listen(
                "127.0.0.1", 0, server_host_keys=[host_key], authorized_client_keys=authorized,
                sftp_factory=Served, allow_scp=False, password_auth=False, kbdint_auth=False,
                gss_host=None, acceptor=self._conns.append)
            self.port = self._acceptor.get_port()

        def serve() -> None:
            loop = self._loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(start())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=serve, name="gbifxdl-sftp", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure or not self.port:
            self.__exit__()
            raise RuntimeError(f"the loopback SFTP server did not start: {failure[0] if failure else 'timeout'}")
        line = f"[127.0.0.1]:{self.port} {host_key.export_public_key().decode().strip()}\n"
        Path(self.known_hosts).write_text(line)
        return self

    def __exit__(self, *exc: object) -> None:
        loop = self._loop
        if loop is not None and loop.is_running():
            async def stop() -> None:
                if self._acceptor is not None:
                    self._acceptor.close()
                for conn in self._conns:
                    conn.close()

            try:
                asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
            finally:
                loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._thread = self._loop = None
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
