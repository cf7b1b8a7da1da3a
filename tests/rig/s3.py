"""An S3-compatible server for backup tests: moto in server mode on the host's loopback.

Nodes (slirp4netns with allow_host_loopback) reach the host's 127.0.0.1 as 10.0.2.2, so a node's
restic uses `s3:http://10.0.2.2:<port>/<bucket>/...`.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

NODE_HOST = "10.0.2.2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    def __init__(self, port: int, proc: subprocess.Popen, log: Path):
        self.port, self.proc, self.log = port, proc, log
        self.access_key_id = "pressluftkey" + str(port)
        self.secret_access_key = "s3secret-" + secrets.token_urlsafe(18)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def node_repository(self, bucket: str, prefix: str) -> str:
        """A restic repository URL as seen from inside a node."""
        return f"s3:http://{NODE_HOST}:{self.port}/{bucket}/{prefix}"

    def create_bucket(self, bucket: str) -> None:
        import boto3  # moto[server] brings it

        client = boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                              aws_access_key_id=self.access_key_id,
                              aws_secret_access_key=self.secret_access_key)
        client.create_bucket(Bucket=bucket)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def start(workdir: Path, timeout: float = 30) -> S3Server:
    """Start moto_server on a free loopback port and return once it answers."""
    port = free_port()
    log = workdir / f"moto-{port}.log"
    moto = Path(sys.executable).with_name("moto_server")
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
    server = S3Server(port, proc, log)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"{server.url}/moto-api/", timeout=2).close()
            return server
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"moto_server did not answer on port {port} in {timeout:.0f}s") from None
            time.sleep(0.2)
