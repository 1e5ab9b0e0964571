"""`pds witness serve`: C2SP tlog-witness ``POST /add-checkpoint`` over HTTP."""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .config import WitnessConfig
from .state import MAX_REQUEST_BYTES, Response, Witness

REQUEST_TIMEOUT = 10  # seconds a client may take to send its request: a slow one holds a thread only that long


def make_server(config: WitnessConfig, host: str, port: int) -> tuple[ThreadingHTTPServer, Witness]:
    witness = Witness(config.state_path, config.signer(), config.logs)

    class Handler(BaseHTTPRequestHandler):
        timeout = REQUEST_TIMEOUT
        protocol_version = "HTTP/1.1"  # keep-alive, as the spec recommends
        server_version = "pds-witness"

        def _send(self, response: Response) -> None:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path != "/add-checkpoint":
                self._send(Response(404, b"not found\n"))
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self.close_connection = True
                self._send(Response(411, b"Content-Length required\n"))
                return
            if not 0 <= length <= MAX_REQUEST_BYTES:
                self.close_connection = True
                self._send(Response(413, f"request larger than {MAX_REQUEST_BYTES} bytes\n".encode()))
                return
            body = self.rfile.read(length)
            if len(body) != length:
                self.close_connection = True
                return
            self._send(witness.add_checkpoint(body))

        def do_GET(self) -> None:  # noqa: N802
            self._send(Response(405 if self.path == "/add-checkpoint" else 404, b"use POST /add-checkpoint\n"))

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            sys.stderr.write("witness: %s %s\n" % (self.address_string(), format % args))

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server, witness
