"""The logging filter of gateway.logconfig: a standard-library record (aiohttp's, asyncpg's, any library's)
reaches the output without its arguments and without its exception's message, whatever the logger."""
from __future__ import annotations

import io
import logging

import pytest
import structlog

from gateway.logconfig import configure_logging

SECRET = "s3cr3t-client-secret-0123456789"


@pytest.fixture
def output():
    stream = io.StringIO()
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
