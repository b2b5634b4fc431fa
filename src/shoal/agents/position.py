"""The agent's feed position and the load balancers it holds, kept on disk next to its
state so that a restarted agent asks for what changed since, not for everything.

One SQLite file (mode 0600 in the agent's private directory): a change writes the load
balancers it touched and the new position in one transaction, so the cost is what changed
and a crash leaves either the old position with the old rows or the new with the new. Only
what carries no secret is stored (an L7 agent's certificates are never written here)."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from shoal.agents.files import private_dir
from shoal.wire.feed import (
    SCHEMA_VERSION,
    DesiredState,
    FeedNode,
    FeedSettings,
    LbState,
    NodeCheck,
)

__all__ = ["FeedStore"]


class FeedStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        private_dir(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)  # whatever the umask; SQLite gives its journal the same mode
        os.close(fd)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        self._db.execute("CREATE TABLE IF NOT EXISTS lbs (id TEXT PRIMARY KEY, doc TEXT)")

    def close(self) -> None:
        self._db.close()

    def load(self) -> DesiredState:
        """What was last saved; an empty state (position -1: ask for a snapshot) when
        nothing was, or when it was written by another schema."""
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        state = DesiredState()
        if meta.get("schema_version") != str(SCHEMA_VERSION) or "seq" not in meta:
            return state
        try:
            for (doc,) in self._db.execute("SELECT doc FROM lbs ORDER BY rowid"):
                lb = LbState.model_validate_json(doc)
                state.lbs[lb.id] = lb
            state.node = FeedNode.model_validate_json(meta.get("node", "{}"))
            state.settings = FeedSettings.model_validate_json(meta.get("settings", "{}"))
            # The L7 nodes an L4 node checks: without them a restarted agent would stop
            # checking (and watching) them until the controller's next answer.
            state.node_checks = [
                NodeCheck.model_validate(c) for c in json.loads(meta.get("node_checks", "[]"))
            ]
        except ValidationError:
            return DesiredState()
        state.seq = int(meta["seq"])
        return state

    def save(self, state: DesiredState, touched: Iterable[str], snapshot: bool) -> None:
        """Writes the touched load balancers (all of them after a snapshot) and the
        position, atomically."""
        touched = set(touched)
        cur = self._db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            if snapshot:
                cur.execute("DELETE FROM lbs")
                ordered = [i for i in state.lbs if i in touched]
            else:  # a delta: few ids; their order of change is their feed position
                ordered = sorted(
                    touched, key=lambda i: (state.lbs[i].seq if i in state.lbs else -1, i)
                )
            for lb_id in ordered:
                lb = state.lbs.get(lb_id)
                # Delete then insert: the row order follows the order of changes.
                cur.execute("DELETE FROM lbs WHERE id = ?", (lb_id,))
                if lb is not None:
                    cur.execute(
                        "INSERT INTO lbs (id, doc) VALUES (?, ?)", (lb_id, lb.model_dump_json())
                    )
            meta = {
                "schema_version": str(SCHEMA_VERSION),
                "seq": str(state.seq),
                "node": state.node.model_dump_json(),
                "settings": state.settings.model_dump_json(),
                "node_checks": json.dumps([c.model_dump() for c in state.node_checks]),
            }
            cur.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", meta.items())
            cur.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                cur.execute("ROLLBACK")
            raise

    def forget(self) -> None:
        """The next start takes a snapshot (the node was deleted, or re-registered)."""
        self._db.execute("DELETE FROM meta")
