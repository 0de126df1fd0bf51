"""How a Privet server writes its process log: plain text for people, or one JSON object a
line for log shippers (`configure_logging("json")`).

A JSON line holds `time` (UTC, ISO 8601 with milliseconds), `level`, `logger`, `message`, every
field a call passed in `extra=` (`log.info("job %s started", id, extra={"job_id": id})` gives
`"job_id": ...`), and `exception` with the traceback when there is one. Values JSON cannot
hold are written as their `str()`.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import IO, Any, Literal

__all__ = ["LOG_FORMATS", "JsonFormatter", "TEXT_FORMAT", "configure_logging"]

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# What every LogRecord carries: anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in out:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure_logging(format: Literal["text", "json"] = "text", level: int | str = logging.INFO, *, stream: IO[str] | None = None) -> logging.Handler:
    """Send the root logger's records to `stream` (stderr by default) as `format`, from `level`
    up (a number or a name such as "INFO"). Replaces the handlers an earlier call installed,
    so calling it again switches format. Returns the handler. ValueError for an unknown
    format or level name."""
    if format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {format!r} (known: {', '.join(LOG_FORMATS)})")
    if isinstance(level, str):
        named = logging.getLevelName(level.upper())
        if not isinstance(named, int):
            raise ValueError(f"unknown log level {level!r}")
        level = named
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else logging.Formatter(TEXT_FORMAT))
    handler._privet = True  # type: ignore[attr-defined]  # ours: the next call replaces it
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_privet", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
