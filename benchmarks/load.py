"""Keep-alive HTTP clients on loopback for the benchmarks that count failed requests under load."""

from __future__ import annotations

import http.client
import threading
import time


class Load:
    """`threads` keep-alive clients GETting `path` from 127.0.0.1:`port` as `host` until the context ends;
    `samples` holds (sent, received, status, body) of every request (body cut to `body_chars`)."""

    def __init__(self, port: int, threads: int, *, host: str, path: str, timeout: float,
                 body_chars: int | None = None):
        self.port, self.host, self.path, self.timeout = port, host, path, timeout
        self.body_chars = body_chars
        self.stop = threading.Event()
        self.samples: list[tuple[float, float, int, str]] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)

    def run(self) -> None:
        conn = self._connect()
        local = []
        while not self.stop.is_set():
            sent = time.time()
            try:
                conn.request("GET", self.path, headers={"Host": self.host})
                resp = conn.getresponse()
                status, body = resp.status, resp.read().decode(errors="replace").strip()[:self.body_chars]
            except (OSError, http.client.HTTPException) as exc:
                status, body = 0, repr(exc)
                conn.close()
                conn = self._connect()
            local.append((sent, time.time(), status, body))
        with self.lock:
            self.samples.extend(local)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()
