"""Log set-up for the controller and the agents: the usual text lines, or JSON (one object
per line, for a log pipeline), with the fields a line was given (`extra=`: request_id,
load_balancer_id, revision, seq, ...) as keys of their own.

In the controller, every line logged while a request is served carries that request's id
(RequestIdFilter), so the id a client sees in x-openstack-request-id finds every line of
its request, and the agents log the same id when they apply the revision it published."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import Any, Literal

__all__ = ["ContextFilter", "JsonFormatter", "LogFormat", "setup_logging"]

LogFormat = Literal["text", "json"]

# What every LogRecord has; anything else came from extra= or a filter.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's copy of the message with terminal colours
}


class JsonFormatter(logging.Formatter):
    def __init__(self, static: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.static = static or {}  # e.g. the node's name, on every line

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **self.static,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and value is not None:
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class ContextFilter(logging.Filter):
    """Adds fields from the current context (e.g. the request id) to every record that does
    not set them itself."""

    def __init__(self, fields: Callable[[], dict[str, Any]]) -> None:
        super().__init__()
        self.fields = fields

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self.fields().items():
            if value is not None and not hasattr(record, key):
                setattr(record, key, value)
        return True


def setup_logging(
    level: str | int = "info",
    fmt: LogFormat = "text",
    *,
    name: str | None = None,
    context: Callable[[], dict[str, Any]] | None = None,
) -> logging.Handler:
    """Replaces the root logger's handlers with one on stderr; returns it."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter({"node": name} if name else None))
    else:
        who = f" {name}" if name else ""
        handler.setFormatter(logging.Formatter(f"%(asctime)s{who} %(levelname)s %(message)s"))
    if context is not None:
        handler.addFilter(ContextFilter(context))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler
