"""structlog setup, called once by the process entry point (never by the app factory).

JSON lines by default, a coloured console for humans; the standard library's loggers (aiohttp, the
database drivers) are rendered by the same processors, so the stream has one format.
"""
from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import orjson
import structlog
from structlog.tracebacks import ExceptionDictTransformer


def _orjson_dumps(value: Any, **kwargs: Any) -> str:
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:
        # orjson refuses lone surrogates, which is how aiohttp hands over header bytes that are not UTF-8
        # (a client's User-Agent, say): they are written as the text `\udcff`, so that the line stays valid
        # UTF-8 for strict readers, in the same format as every other line.
        return orjson.dumps(_without_surrogates(value), default=str).decode()


def _without_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_without_surrogates(key): _without_surrogates(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_surrogates(item) for item in value]
    return value


class WithheldError(Exception):
    """Stands in for a library's exception in a log record: its type and traceback, not its message."""


class _WithholdRequestBytes(logging.Filter):
    """No standard library record (aiohttp's, asyncpg's, asyncio's, any library's) can carry a header value
    or body byte of a request into the log. Such bytes can only reach a record through data handed to the
    logging call: the arguments formatted into the message, or the exception's text (aiohttp's parser
    errors quote up to 100 bytes of the offending line). The message template is code and is kept; the
    arguments are dropped (the template is written as is), and an exception is replaced by WithheldError,
    naming its type and keeping its traceback, whose frames are rendered without local variables.

    It holds for every record because the filter sits on the one handler the process has, which is also
    logging.lastResort (used for loggers that do not propagate), and warnings are routed through it; the
    gateway's own events (structlog, not the standard library) carry only the named fields of the request log (README, Operations).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg, record.args = str(record.msg), None
        elif not isinstance(record.msg, str):
            record.msg = type(record.msg).__name__
        if record.exc_info and record.exc_info[1] is not None:
            _, exc, traceback = record.exc_info
            kind = type(exc)
            withheld = WithheldError(f"{kind.__module__}.{kind.__qualname__} (message withheld)")
            record.exc_info = (WithheldError, withheld.with_traceback(traceback), traceback)
            record.exc_text = None
        return True


def configure_logging(log_format: str = "json", stream: TextIO | None = None, level: int = logging.INFO) -> None:
    out = stream or sys.stderr
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if log_format == "console":
        # Plain tracebacks: the console default (rich) shows local variables, which can hold request bytes.
        renderer = structlog.dev.ConsoleRenderer(
            colors=out.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
        exceptions: list[Any] = []
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        # Tracebacks as data, without local variables: those could hold tokens or secrets.
        exceptions = [structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))]

    structlog.configure(
        processors=[*shared, *exceptions, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(out),  # a line and its end in one write (see tests)
        cache_logger_on_first_use=True,
    )

    _route_stdlib_logging(out, shared, exceptions, renderer, level)


def _route_stdlib_logging(out: TextIO, shared: list[Any], exceptions: list[Any], renderer: Any, level: int) -> None:
    """Every standard-library logger (aiohttp, asyncpg, warnings) through the same renderer, and through the
    filter that withholds request bytes."""
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *exceptions, renderer],
        )
    )
    handler.addFilter(_WithholdRequestBytes())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    logging.lastResort = handler
    logging.captureWarnings(True)
    root.setLevel(level)
    # aiohttp.access would duplicate the request line this gateway writes itself.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
