"""structlog setup, called once by the process entry point (never by the app factory).

JSON lines by default, a coloured console for humans; the standard library's loggers (aiohttp, the
database drivers) are rendered by the same processors, so the stream has one format.
"""
from __future__ import annotations

import json
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
        # (a client's User-Agent, say); the standard library writes them escaped, and the line is not lost.
        return json.dumps(value, default=str)


def configure_logging(log_format: str = "json", stream: TextIO | None = None, level: int = logging.INFO) -> None:
    out = stream or sys.stderr
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if log_format == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
        exceptions: list[Any] = []
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        # Tracebacks as data, without local variables: those could hold tokens or secrets.
        exceptions = [structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))]

    structlog.configure(
        processors=[*shared, *exceptions, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=True,
    )

    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *exceptions, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp.access would duplicate the request line this gateway writes itself.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
