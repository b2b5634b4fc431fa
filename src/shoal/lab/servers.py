"""Backend services for labs and tests: an HTTP server that names its backend in every reply,
and a TCP echo server. Run inside a backend's namespace:

    python -m shoal.lab.servers http --name b1 --port 80
    python -m shoal.lab.servers echo --port 7
    python -m shoal.lab.servers udp --name b1 --port 5353 --bind 10.77.100.1

GET /bytes/N returns N bytes (downloads larger than one packet, for path-MTU tests). The UDP
server answers each datagram with its backend's name and the datagram's length, from the
address it is bound to (a VIP: the answer goes straight to the client, DSR).
"""

from __future__ import annotations

import argparse
import json
import socket
import socketserver
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_DOWNLOAD = 64 << 20


def http_handler(name: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path.startswith("/bytes/"):
                size = min(int(self.path[7:] or 0), MAX_DOWNLOAD)
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(size))
                self.send_header("X-Backend", name)
                self.end_headers()
                chunk = b"s" * 65536
                for start in range(0, size, len(chunk)):
                    self.wfile.write(chunk[: size - start])
                return
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


def serve_udp(name: str, bind: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((bind, port))
    while True:
        data, peer = sock.recvfrom(65535)
        sock.sendto(f"{name} {len(data)}".encode(), peer)


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
    parser.add_argument("kind", choices=["http", "echo", "udp"])
    parser.add_argument("--name", default=socket.gethostname())
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--bind", default="::", help="udp: the address to answer from")
    args = parser.parse_args()
    if args.kind == "udp":
        serve_udp(args.name, args.bind, args.port)
        return
    server: socketserver.BaseServer
    if args.kind == "http":
        server = DualStackServer(("::", args.port), http_handler(args.name))
    else:
        server = EchoServer(("::", args.port), echo_handler(args.name))
    server.serve_forever()


if __name__ == "__main__":
    main()
