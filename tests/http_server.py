"""A tiny local HTTP file server for offline download tests.

    with serve_directory(folder) as server:
        download_file(f"{server.url}/dev_data_fan.zip", ...)
        assert server.requests == [...]

It serves the files of one folder on 127.0.0.1 (ephemeral port, own thread) and
records every request (path and Range header) in ``server.requests``. The
``mode`` attribute, changeable while serving, picks the behaviour:

- ``"range"`` (default): honours ``Range: bytes=N-`` with 206 and Content-Range.
- ``"ignore_range"``: always answers 200 with the whole file.
- ``"drop_once"``: the first GET of each file sends the headers and about half of the
  body, then closes the connection; later requests behave like ``"range"``.
- ``"wrong_bytes"``: serves the right length with altered bytes (checksum mismatch).
- ``"error_500"``: answers 500 to every request.

Missing files get 404. The pytest fixture ``http_server`` (tests/conftest.py)
wraps :func:`serve_directory` around a fresh temporary folder.
"""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote

MODES = ("range", "ignore_range", "drop_once", "wrong_bytes", "error_500")


@dataclass
class FileServer:
    """State of a running server: where it serves from, its URL, what it was asked."""

    directory: Path
    url: str = ""
    mode: str = "range"
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    dropped: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def paths_requested(self) -> list[str]:
        """Request paths in arrival order."""
        with self.lock:
            return [path for path, _ in self.requests]


def _handler(server_state: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            name = unquote(self.path.split("?", 1)[0]).lstrip("/")
            range_header = self.headers.get("Range")
            with server_state.lock:
                server_state.requests.append((self.path, range_header))
                mode = server_state.mode
            if mode not in MODES:
                raise ValueError(f"unknown server mode {mode!r}")
            if mode == "error_500":
                self._send_status(500)
                return
            path = (server_state.directory / name).resolve()
            if server_state.directory.resolve() not in path.parents or not path.is_file():
                self._send_status(404)
                return
            data = path.read_bytes()
            if mode == "wrong_bytes":
                data = bytes(b ^ 0x5A for b in data)
            start = 0
            m = re.fullmatch(r"bytes=(\d+)-", range_header or "")
            if m and mode != "ignore_range":
                start = int(m.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            drop = False
            if mode == "drop_once":
                with server_state.lock:
                    drop = name not in server_state.dropped
                    server_state.dropped.add(name)
            if drop:
                self.wfile.write(body[: max(1, len(body) // 2)])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

        def _send_status(self, code: int) -> None:
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


@contextmanager
def serve_directory(directory: Path, mode: str = "range") -> Iterator[FileServer]:
    """Serve ``directory`` on 127.0.0.1 at an ephemeral port for the duration of the block."""
    state = FileServer(Path(directory), mode=mode)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
