"""The logging filter of gateway.logconfig: a standard-library record (aiohttp's, asyncpg's, any library's)
reaches the output without its arguments and without its exception's message, whatever the logger."""
from __future__ import annotations

import io
import logging

import pytest
import structlog

from gateway.logconfig import configure_logging

SECRET = "s3cr3t-client-secret-0123456789"


class _Recorded(io.StringIO):
    """A stream that keeps each write call's text."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


@pytest.fixture
def output():
    stream = _Recorded()
    root = logging.getLogger()
    saved = root.handlers[:], root.level, logging.lastResort
    structlog_config = structlog.get_config()
    configure_logging("json", stream)
    yield stream
    structlog.configure(**structlog_config)
    root.handlers[:], root.level = saved[0], saved[1]
    logging.lastResort = saved[2]
    logging.captureWarnings(False)


@pytest.mark.parametrize("name", ["aiohttp.server", "aiohttp.web", "asyncpg", "asyncio", "some.library"])
def test_arguments_and_exception_messages_are_withheld(output, name):
    logger = logging.getLogger(name)
    logger.error("Error handling request from %s: %r", "127.0.0.1", SECRET.encode())
    logger.warning({"header": SECRET})
    try:
        raise ValueError(f"Got more than 8190 bytes when reading: b'{SECRET}'")
    except ValueError:
        logger.exception("Unhandled exception")
    text = output.getvalue()
    assert SECRET not in text and SECRET[:16] not in text
    assert "Error handling request from %s" in text and "builtins.ValueError (message withheld)" in text


def test_a_logger_that_does_not_propagate_is_filtered_too(output):
    logger = logging.getLogger("isolated.library")
    logger.propagate = False
    try:
        logger.error("value %s", SECRET)
    finally:
        logger.propagate = True
    assert SECRET not in output.getvalue() and "value %s" in output.getvalue()


def test_each_line_goes_out_whole_in_one_write(output):
    """`serve --workers` runs processes that share one stderr. Unbuffered (PYTHONUNBUFFERED=1), a line and
    its end used to go out in two writes (print), and another process's line could land between them: two
    requests' lines glued into one that no JSON reader takes."""
    structlog.get_logger("gateway.request").info("request", method="GET", status=200)
    logging.getLogger("aiohttp.server").warning("a library's line")
    assert len(output.writes) == 2
    assert all(write.endswith("\n") and write.count("\n") == 1 for write in output.writes), output.writes
