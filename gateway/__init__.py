"""Partner Orders Gateway: the application core."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("partner-orders-gateway")
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"
