"""A real HTTP server on 127.0.0.1 serving a release folder, with switchable failure modes per path.

Modes (``server.modes[path] = [mode, mode, ...]``, consumed one per request, the last one sticks):
``ok`` (honours Range), ``norange`` (ignores Range), ``404``, ``500``, ``truncate`` (announces the full
length, sends half, closes), ``reset`` (sends half, then a TCP reset), ``slow`` (64 KiB every 50 ms);
hostile mirrors: ``trickle`` (announces the full length, then one byte every 0.2 s), ``endless`` (no length:
the file, then zeros until the client hangs up), ``html`` (a sign-in page as text/html), ``html-binary``
(the same page as application/octet-stream).
"""
from __future__ import annotations

import http.server
import os
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Dict, List


HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>Sign in - Hospital network</title></head>"
             b"<body><form>user <input name=u></form></body></html>\n")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):  # noqa: N802
        srv: ReleaseServer = self.server.owner  # type: ignore[attr-defined]
        path = self.path.split("?", 1)[0]
        srv.requests.append((path, self.headers.get("Range")))
        queue = srv.modes.get(path, ["ok"])
        mode = queue.pop(0) if len(queue) > 1 else queue[0]
        file = srv.root / path.lstrip("/")
        if mode in ("404",) or not file.is_file():
            return self._status(404)
        if mode == "500":
            return self._status(500)
        if mode in ("html", "html-binary", "endless", "trickle"):
            return self._hostile(mode, file.read_bytes())
        data = file.read_bytes()
        start = 0
        rng = self.headers.get("Range")
        if rng and mode != "norange" and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0] or 0)
            if start >= len(data):
                return self._status(416)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if mode in ("truncate", "reset"):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            if mode == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if mode == "slow":
            for i in range(0, len(body), 65536):
                self.wfile.write(body[i:i + 65536])
                self.wfile.flush()
                time.sleep(0.05)
            return
        self.wfile.write(body)

    def _hostile(self, mode: str, data: bytes):
        self.send_response(200)
        if mode.startswith("html"):
            self.send_header("Content-Type", "text/html; charset=utf-8" if mode == "html" else
                             "application/octet-stream")
            self.send_header("Content-Length", str(len(HTML_PAGE)))
            self.end_headers()
            self.wfile.write(HTML_PAGE)
            return
        self.close_connection = True
        try:
            if mode == "trickle":
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                for i in range(len(data)):
                    self.wfile.write(data[i:i + 1])
                    self.wfile.flush()
                    time.sleep(0.2)
            else:  # endless
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
                for _ in range(4096):  # 256 MiB at most, should a client never stop
                    self.wfile.write(bytes(65536))
        except OSError:  # the client hung up, as it should
            pass

    def _status(self, code: int):
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a client hanging up early is expected here
        import sys
        if not isinstance(sys.exc_info()[1], (ConnectionError, OSError)):
            super().handle_error(request, client_address)


class ReleaseServer:
    """``with ReleaseServer(folder) as srv: srv.url`` → ``http://127.0.0.1:PORT``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.modes: Dict[str, List[str]] = {}
        self.requests: List[tuple] = []
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def gets(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)

    def __enter__(self) -> "ReleaseServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def serve_forever(root: str, port_file: str) -> None:
    """Run a server in its own process (for subprocess tests); writes its URL to ``port_file``."""
    srv = ReleaseServer(Path(root))
    modes = os.environ.get("RELEASE_SERVER_MODES", "")
    for item in filter(None, modes.split(";")):
        path, _, spec = item.partition("=")
        srv.modes[path] = spec.split(",")
    Path(port_file).write_text(srv.url)
    srv.httpd.serve_forever()


if __name__ == "__main__":
    import sys
    serve_forever(sys.argv[1], sys.argv[2])
