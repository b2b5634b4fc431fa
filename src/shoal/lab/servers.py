"""Backend services for labs and tests: an HTTP server that names its backend in every reply,
and a TCP echo server. Run inside a backend's namespace:

    python -m shoal.lab.servers http --name b1 --port 80
    python -m shoal.lab.servers echo --port 7
"""

from __future__ import annotations

import argparse
import json
import socket
import socketserver
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def http_handler(name: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = json.dumps(
                {
                    "backend": name,
                    "path": self.path,
                    "client": self.client_address[0],
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                }
            ).encode()
            self.send_response(200)
            if self.path.startswith("/session/"):  # an application's own session cookie
                self.send_header("Set-Cookie", f"APPSESSION={self.path[9:]}; Path=/")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def echo_handler(name: str) -> type[socketserver.BaseRequestHandler]:
    class EchoHandler(socketserver.BaseRequestHandler):
        """Greets with the backend's name (so a client knows where its connection landed),
        then echoes."""

        def handle(self) -> None:
            sock: socket.socket = self.request
            sock.sendall(f"shoal-echo {name}\n".encode())
            while data := sock.recv(65536):
                sock.sendall(data)

    return EchoHandler


class DualStackServer(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class EchoServer(socketserver.ThreadingTCPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["http", "echo"])
    parser.add_argument("--name", default=socket.gethostname())
    parser.add_argument("--port", type=int, default=80)
    args = parser.parse_args()
    server: socketserver.BaseServer
    if args.kind == "http":
        server = DualStackServer(("::", args.port), http_handler(args.name))
    else:
        server = EchoServer(("::", args.port), echo_handler(args.name))
    server.serve_forever()


if __name__ == "__main__":
    main()
