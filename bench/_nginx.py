"""Debian's nginx serving a folder on loopback, for the fetch benchmark (installed with apt if missing)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Nginx:
    """Debian's nginx serving a folder on loopback with its own config (started and stopped here)."""

    def __init__(self, root: Path, host: str = "127.0.0.1") -> None:
        if shutil.which("nginx") is None:
            subprocess.run(["apt-get", "install", "-y", "-qq", "nginx"], check=True)
        self.dir = Path(tempfile.mkdtemp(prefix="gbifxdl-nginx-"))
        self.port = free_port(host)
        self.base = f"http://{host}:{self.port}"
        conf = self.dir / "nginx.conf"
        conf.write_text(f"""
worker_processes 1; daemon off; pid {self.dir}/nginx.pid; error_log {self.dir}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000; keepalive_timeout 60;
  client_body_temp_path {self.dir}; proxy_temp_path {self.dir}; fastcgi_temp_path {self.dir};
  uwsgi_temp_path {self.dir}; scgi_temp_path {self.dir};
  types {{ image/jpeg jpg; }}
  server {{ listen {host}:{self.port} backlog=4096; root {root}; }}
}}
""")
        self.proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(self.dir)])
        for _ in range(100):
            try:
                socket.create_connection((host, self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not start: {(self.dir / 'error.log').read_text()}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
