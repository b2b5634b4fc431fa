"""A byte-counting TCP relay on loopback: an agent talks to the controller through its own
relay, so the bytes the controller sends that agent are counted on the wire, whatever the
feed's format (whole state, deltas, compression). Threads, one per direction and connection:
agents hold a handful of connections."""

from __future__ import annotations

import contextlib
import socket
import threading

__all__ = ["Relay"]

CHUNK = 1 << 16


class Relay:
    """Listens on 127.0.0.1:<free port> and forwards each connection to target."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._lock = threading.Lock()
        self.down = 0  # bytes controller -> agent
        self.up = 0  # bytes agent -> controller
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._closed = threading.Event()
        self._sockets: set[socket.socket] = set()
        threading.Thread(target=self._accept, name=f"relay-{self.port}", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def retarget(self, target: tuple[str, int]) -> None:
        """New connections go to target (a controller switch); open ones stay where they are."""
        self.target = target

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return self.down, self.up

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets |= {client, server}
            for src, dst, down in ((server, client, True), (client, server, False)):
                threading.Thread(
                    target=self._pump, args=(src, dst, down), name="relay-pump", daemon=True
                ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, down: bool) -> None:
        try:
            while data := src.recv(CHUNK):
                dst.sendall(data)
                with self._lock:
                    if down:
                        self.down += len(data)
                    else:
                        self.up += len(data)
        except OSError:
            pass
        finally:
            # Half-close towards the other side, so it sees the end of this direction.
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.close()
