"""A TCP forwarder from an address on the host into a lab namespace: how `make demo` makes
the controller (and its console) reachable from the host's browser. Bytes are relayed
unchanged, so TLS stays end to end between the browser and the controller."""

from __future__ import annotations

import contextlib
import socket
import threading

from shoal import netns

__all__ = ["Forwarder"]


class Forwarder:
    def __init__(
        self, listen: tuple[str, int], namespace: str | None, target: tuple[str, int]
    ) -> None:
        self.namespace = namespace
        self.target = target
        self.server = socket.create_server(listen, reuse_port=False)
        self.address: tuple[str, int] = self.server.getsockname()[:2]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True, name="forward")

    def __enter__(self) -> Forwarder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.server.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            with netns.entered(self.namespace):  # the socket keeps the namespace it was made in
                upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        pump = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
        pump.start()
        _pipe(client, upstream)
        pump.join(60)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    for s in (src, dst):
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
    src.close()
