"""How one controller process hears of changes other processes made, to wake the agents
long-polling it.

On PostgreSQL a thread LISTENs on the feed's channel (writers NOTIFY in their transaction,
delivered at commit), so a write on any controller wakes every controller's waiters within
milliseconds. Whatever the database, the head of the change table is also polled every
`feed_poll_interval`: that covers SQLite, a listening connection that broke (until it is
re-established), and a notification lost with it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool

from shoal.controller.db.engine import Database
from shoal.controller.services import feed

__all__ = ["FeedWatcher"]

log = logging.getLogger(__name__)


class FeedWatcher:
    def __init__(self, db: Database, notify: Callable[[int], None], poll_interval: float) -> None:
        self.db = db
        self.notify = notify
        self.poll_interval = poll_interval
        self.listening = threading.Event()  # set while the LISTEN connection is up
        self.notifications = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self.db.is_sqlite:
            self._thread = threading.Thread(
                target=self._listen_loop, name="feed-listen", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    async def poll(self) -> None:
        """Runs until cancelled: the head, every poll_interval."""

        def head() -> int:
            with self.db.read() as session:
                return feed.head(session)

        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                self.notify(await run_in_threadpool(head))
            except Exception:  # the database is away: keep serving, retry
                log.debug("feed poll failed", exc_info=True)

    def _listen_loop(self) -> None:
        import psycopg

        url = self.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {feed.CHANNEL}")
                    self.listening.set()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self.notifications += 1
                            with contextlib.suppress(ValueError):
                                self.notify(int(note.payload))
            except psycopg.Error as exc:
                log.warning("feed LISTEN connection lost (%s); polling meanwhile", exc)
            finally:
                self.listening.clear()
            self._stop.wait(1.0)
