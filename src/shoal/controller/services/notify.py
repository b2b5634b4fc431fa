"""Wakes long-polling agents when the change feed grows. Writers (threads) call notify();
waiters (the event loop) await a newer sequence. A poller also watches the database, so a
change made by another controller process wakes this one's waiters within a poll interval."""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["ChangeNotifier"]


class ChangeNotifier:
    def __init__(self) -> None:
        self.seq = 0
        self.waiters = 0  # long polls waiting now (a metric)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def bind(self, loop: asyncio.AbstractEventLoop, seq: int) -> None:
        self._loop = loop
        self._event = asyncio.Event()
        self.seq = seq

    def notify(self, seq: int) -> None:
        """Thread-safe: records seq and wakes every waiter."""
        if seq <= self.seq:
            return
        self.seq = seq
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = asyncio.Event()

    async def wait_beyond(self, seq: int, timeout: float) -> int:
        """Returns as soon as the feed is past seq, or after timeout; the current seq."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.waiters += 1
        try:
            while self.seq <= seq:
                remaining = deadline - loop.time()
                if remaining <= 0 or self._event is None:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._event.wait(), remaining)
        finally:
            self.waiters -= 1
        return self.seq
