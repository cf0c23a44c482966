"""The installed distribution's version (`order-gateway --version`, the `listening` event)."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("partner-orders-gateway")
except PackageNotFoundError:  # run from a checkout that was never installed
    VERSION = "0+unknown"
