"""How a pixline process logs: one handler on stderr, text or JSON, at the level of ``--log-level``.

``--log-format`` (``PIXLINE_LOG_FORMAT``): ``text`` is one readable line per record; ``json`` is one JSON
object per line (:class:`JsonFormatter`), the record's extra fields as keys; ``auto`` (the default) is
text when stderr is a terminal and JSON otherwise, so a person reads text and a log shipper gets JSON.

The request log (``pixline.access``, one line per HTTP request) and the job log (``pixline.jobs``, one
line per queue job) are written at info level and shown unless ``--log-level`` is ``error``: they are
what an operator greps, like gunicorn's access log. gunicorn's own error log goes through the same
handler (:class:`GunicornLogger`); its access log is off, the request log replaces it.
"""
from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any, TextIO

from gunicorn import glogging

from ..http.request_log import ACCESS_LOG, RequestIdFilter
from ..settings import SettingsError

LOG_FORMATS = ("auto", "text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: The loggers an operator greps: shown at info level unless the log level is above warning.
EVENT_LOGS = (ACCESS_LOG.name, "pixline.jobs")


#: Control characters (C0, DEL, C1) and the Unicode line and paragraph separators, written as
#: escapes in the text format: a ``%0A`` in a path or an id would otherwise start a forged line.
_CONTROLS = {**{c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7f, 0xa0))},
             0x0a: "\\n", 0x0d: "\\r", 0x09: "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def escape_controls(text: str) -> str:
    """``text`` on one line: every control character written as an escape (``\\n``, ``\\x00``)."""
    return text.translate(_CONTROLS)


class TextFormatter(logging.Formatter):
    """The text format, with the request id at the end of lines logged during a request.

    A record is one line, whatever its message holds (client text reaches messages: paths, ids,
    field values); only a traceback, added after the line, spans lines.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        rid = getattr(record, "request_id", None)
        return f"{text} request_id={rid}" if rid else text


#: What every LogRecord has: anything else on a record is an extra field, written as a key.
RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``level``, ``logger``, ``message``, the extra fields, ``exc_info``
    (the traceback) when there is one, and ``time`` (ISO 8601, UTC).

    Written here rather than taken from python-json-logger, which it replaced: the request log
    writes a line per request, and that library's general machinery cost ~100 µs of CPU a line
    against ~15 here, a third of the falcon app's own time on a stored-image hit (bench/README.md).
    """

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"level": record.levelname, "logger": record.name,
                               "message": record.getMessage()}
        for key, value in record.__dict__.items():
            if key not in RECORD_ATTRIBUTES:
                out[key] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        out["time"] = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat()
        return json.dumps(out, default=str)


def use_json(log_format: str, stream: TextIO) -> bool:
    if log_format not in LOG_FORMATS:
        raise SettingsError(f"log format {log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    if log_format == "auto":
        return not (hasattr(stream, "isatty") and stream.isatty())
    return log_format == "json"


def level_number(level: str) -> int:
    numeric = logging.getLevelName(str(level).upper())
    if not isinstance(numeric, int):
        raise SettingsError(f"log level {level!r} is not one of debug, info, warning, error")
    return numeric


def configure_logging(level: str, log_format: str = "auto", stream: TextIO | None = None) -> None:
    """Log to ``stream`` (stderr) at ``level`` in ``log_format``; safe to call again (it replaces
    what it set before).

    libvips reports a bad file as warnings *and* an error (the error is the one line a command
    prints), so it logs errors only; pika logs every connection step, so it logs warnings and up.
    """
    stream = stream or sys.stderr
    numeric = level_number(level)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if use_json(log_format, stream) else TextFormatter(TEXT_FORMAT))
    handler.addFilter(RequestIdFilter())
    handler.pixline = True  # type: ignore[attr-defined]  # ours: the next call replaces it
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "pixline", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    debug = numeric <= logging.DEBUG
    logging.getLogger("pyvips").setLevel(numeric if debug else max(logging.ERROR, numeric))
    logging.getLogger("pika").setLevel(numeric if debug else max(logging.WARNING, numeric))
    for name in EVENT_LOGS:
        logging.getLogger(name).setLevel(min(numeric, logging.INFO) if numeric <= logging.WARNING
                                         else numeric)


class GunicornLogger(glogging.Logger):
    """gunicorn's error log through pixline's handler, so it has the same format and level as the
    rest; gunicorn's access log stays off (``pixline.access`` has one line per request)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                log.removeHandler(handler)
            log.propagate = True
