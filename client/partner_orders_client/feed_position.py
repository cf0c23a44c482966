"""Where a reader of the change feed stands, to the event.

The gateway's cursors mark the end of a page: resuming from one returns the events after that page. A reader
that stops in the middle of a page (an exception in its handler, a `break`) has seen part of it, and neither
the cursor before the page (it would see that part again) nor the one after it (it would miss the rest) is
where it stands. So in the middle of a page the client's position is the cursor before the page plus the
number of that page's events already handed out, written `CURSOR.N`; at a page's end it is the gateway's
cursor itself. The gateway's cursors are unpadded URL-safe base64, which never contains a `.`.

`N` counts events of the page as filtered when it was read: resume with the same `customer_id` and
`event_type` filters. Without a cursor, the first page asked for is of one event, so that every position
counts from a cursor of the gateway's: one counted from "the oldest event kept" (written `.N`, as earlier
releases did; still read) would skip events once the gateway purged older ones.
"""
from __future__ import annotations

from dataclasses import dataclass

_SEPARATOR = "."


@dataclass(frozen=True)
class FeedPosition:
    cursor: str | None  # the gateway's cursor; None for the oldest event kept
    skip: int = 0  # events after it already handed out

    @classmethod
    def parse(cls, text: str | None) -> FeedPosition:
        if not text:  # an empty one too (a store's default): no gateway cursor is empty
            return cls(None)
        head, separator, count = text.rpartition(_SEPARATOR)
        if not separator:
            return cls(text)
        if not count.isdecimal():
            raise ValueError(f"not a feed position: {text!r}")
        return cls(head or None, int(count))

    def __str__(self) -> str:
        if self.skip == 0 and self.cursor is not None:
            return self.cursor
        return f"{self.cursor or ''}{_SEPARATOR}{self.skip}"
