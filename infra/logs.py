"""Logging for every Corral process (API, workers, rq cron): one JSON object per
line, with the request, operation and job ids of `shared.trace` when set.

`CORRAL_LOG_FORMAT=text` gives plain lines for a person at a terminal instead;
`CORRAL_LOG_LEVEL` sets the level (INFO by default)."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

from shared import trace

FORMAT_ENV = "CORRAL_LOG_FORMAT"
LEVEL_ENV = "CORRAL_LOG_LEVEL"
# Attributes every LogRecord has; anything else was passed in `extra=` and is shown.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def _ids() -> dict[str, str]:
    found = {
        "request_id": trace.request_id.get(),
        "operation_id": trace.operation_id.get(),
        "job_id": trace.job_id.get(),
    }
    return {k: v for k, v in found.items() if v}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_ids(),
        }
        line.update(
            (k, v) for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")
        )
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """For a terminal: time, level, logger, message, then the ids."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(f"{k}={v}" for k, v in _ids().items())
        text = super().format(record)
        return f"{text} [{ids}]" if ids else text


def configure(fmt: str | None = None, stream: Any = None, *, unless_set: bool = False) -> None:
    """Send every logger's records to `stream` (stderr) in `fmt` ("json" or "text";
    by default CORRAL_LOG_FORMAT, else json). Replaces the root logger's handlers;
    with `unless_set`, leaves a process that has some (a test run) as it is."""
    root = logging.getLogger()
    if unless_set and root.handlers:
        return
    fmt = (fmt or os.environ.get(FORMAT_ENV) or "json").strip().lower()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(TextFormatter() if fmt == "text" else JsonFormatter())
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(os.environ.get(LEVEL_ENV, "INFO").upper())
