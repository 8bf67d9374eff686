"""Log lines as text (default) or one JSON object a line (``AUDITSTREAM_LOG_FORMAT=json``).

``configure`` switches the root handler's format once the settings are read; ``say`` is for
the lines a service prints whatever the log level (what it connected to, that it stopped),
in the same format.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_state = {"format": "text"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def configure(log_format: str) -> None:
    """``text`` or ``json`` for every handler of the root logger (set up by the CLI)."""
    _state["format"] = log_format
    if log_format != "json":
        return
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig()
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter())


def say(line: str, err: bool = False, logger: str = "auditstream") -> None:
    """A line the operator always sees (stdout, or stderr with ``err``)."""
    stream = sys.stderr if err else sys.stdout
    if _state["format"] == "json":
        record = logging.LogRecord(logger, logging.INFO, "", 0, line, None, None)
        line = JsonFormatter().format(record)
    stream.write(line + "\n")
    stream.flush()


def dict_config(level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` with the JSON formatter, for frameworks that set
    logging up themselves (Faust's worker)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
    }
