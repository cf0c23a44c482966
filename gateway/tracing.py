"""W3C Trace Context (`traceparent`): a request that carries a valid one has its trace id logged, and the
webhook deliveries it causes carry the same trace on, as children of a span of their own."""
from __future__ import annotations

import dataclasses
import re
import secrets

# version-traceid-parentid-flags, lower-case hex; a later version may append fields after a dash.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
INVALID_VERSION = "ff"
ZERO_TRACE, ZERO_PARENT = "0" * 32, "0" * 16


@dataclasses.dataclass(frozen=True)
class TraceContext:
    trace_id: str
    parent_id: str
    flags: str

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.parent_id}-{self.flags}"

    def child(self) -> TraceContext:
        """The context a call made on this trace's behalf sends: the same trace, a new span."""
        return TraceContext(self.trace_id, secrets.token_hex(8), self.flags)


def parse_traceparent(value: str | None) -> TraceContext | None:
    """The context of a valid header; None for an absent or invalid one (which the spec says to ignore)."""
    if value is None or len(value) > 512:
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == INVALID_VERSION or (version == "00" and rest) or trace_id == ZERO_TRACE or parent_id == ZERO_PARENT:
        return None
    return TraceContext(trace_id, parent_id, flags)
