"""The demo's forwarder relays bytes both ways (here into the test's own namespace)."""

from __future__ import annotations

import socket
import threading

from shoal.lab.forward import Forwarder


def test_the_forwarder_relays_both_ways() -> None:
    echo = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = echo.accept()
        with conn:
            conn.sendall(conn.recv(100).upper())

    threading.Thread(target=serve, daemon=True).start()
    with Forwarder(("127.0.0.1", 0), None, echo.getsockname()) as fwd:
        c = socket.create_connection(fwd.address, timeout=10)
        c.sendall(b"hello")
        assert c.recv(100) == b"HELLO"
        c.close()
    echo.close()
