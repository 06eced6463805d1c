"""A local HTTP server on 127.0.0.1 serving canned responses, for download tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Response:
    body: bytes = b""
    status: int = 200
    delay: float = 0.0  # seconds before answering: makes a client time out
    content_type: str = "application/octet-stream"
    trickle: float = 0.0  # seconds between single bytes of the body: a server that never stalls long


@contextmanager
def serve(routes: dict[str, Response]) -> Iterator[tuple[str, dict[str, int]]]:
    """Serve ``routes`` (path -> Response); yields the base URL and a per-path request count."""
    hits: dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits[self.path] = hits.get(self.path, 0) + 1
            response = routes.get(self.path, Response(b"not found", status=404))
            time.sleep(response.delay)
            try:
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                if not response.trickle:
                    self.wfile.write(response.body)
                for byte in response.body if response.trickle else b"":
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(response.trickle)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): expected for slow routes

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
