"""What the shared SQL needs of a backend: connections (`Db`) and units of work run as one transaction.

Statements use `?` placeholders (`?1` where a parameter is used twice); a backend with another style
translates them. Rules that must hold across processes take a named lock (`Db.lock`) inside the
transaction: a no-op where the backend already serializes its writers.
"""
from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

MAX_IN_PARAMS = 900  # far below every backend's limit on parameters of one statement
# At most this many keys make a read by key (`Db.fetch_by_key`): a page's orders at the largest limit.
FEW_KEYS = 100


class Db(Protocol):
    """One connection (or one transaction on it), as the shared storage uses it."""

    # Capability: data-modifying statements in WITH (PostgreSQL). Where a statement has a form that does two
    # writes in one round trip, it sits beside the portable form and this picks one.
    writable_ctes: bool
    # True where write transactions commit one at a time, in the order they ran (SQLite): the order in which
    # rows are numbered is the order in which they become visible. Elsewhere a number taken first may become
    # visible last, and what must be numbered in commit order says so (gateway.storage.events).
    commits_in_order: bool
    # True where a read by key is a round trip to a server: concurrent requests then share one
    # (gateway.storage.key_batches). False where it runs in the event loop's thread (SQLite).
    keyed_reads_travel: bool

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    async def fetch_by_key(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """`fetch`, for a statement that reads a few rows by key (a primary or unique key's index): a backend
        may run it without leaving the event loop's thread."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Rows affected."""

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    async def lock(self, name: str, *, wait: bool = True) -> None:
        """Held until the transaction ends: transactions taking the same name run one after another. Without
        `wait`, LockHeld at once while another transaction holds it (the transaction can only end then)."""

    async def lock_shared(self, name: str) -> None:
        """`lock`, shared with other transactions that take it so, and not with one that takes it with
        `lock`: while such a one holds it (or waits for it), StorageBusy at once, and the unit is run again
        later (within the busy timeout) rather than waiting for however long that one takes."""

    async def execute_last(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """`executemany`, as the transaction's last statements, just before it commits (at once where the
        backend commits its writers one at a time): what takes a lock held to commit holds it briefly. The
        rows kept for one statement run together, and statements in the order each was first kept."""


# A unit of work: everything it does through its Db commits together, or nothing does. It must await
# nothing but its Db, so that a backend may run it to completion on the database's own thread.
Unit = Callable[[Db], Coroutine[Any, Any, T]]


class Backend(Protocol):
    @property
    def reader(self) -> Db:
        """For single statements outside any transaction."""

    async def write(self, unit: Unit[T], *, once: bool = False, lengthy: bool = False, grouped: bool = False) -> T:
        """Runs the unit in one transaction; its exception rolls the transaction back and is raised here. A
        backend may run a unit again after a transient failure, unless `once`: for a unit that consumes what
        it writes as it goes (an import's records), and would write only the rest the second time. A backend
        gives up on a unit whose database stops answering at the busy timeout, unless `lengthy`: a unit that
        may take long by design (an import, a purge). `grouped`: a unit that takes no lock it would wait for
        may share one transaction (and its commit) with other such units, each rolled back alone when it
        fails; its answer comes after that commit."""

    async def write_buckets(self, unit: Unit[T]) -> T:
        """`write`, for the rate-limit buckets: state that is rewritten on many requests and may be lost in a
        crash, so a backend may keep it where it never waits for (or on) the orders' durable writes."""


def chunks(items: Sequence[Any], size: int = MAX_IN_PARAMS) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def padded(values: Sequence[T]) -> list[T]:
    """The values, the first repeated at the end up to a power of two in all: statements with an IN list of
    them take a handful of shapes, which a server prepares once each."""
    return [*values, *[values[0]] * ((1 << (len(values) - 1).bit_length()) - len(values))]


def marks(count: int) -> str:
    """`?,?,?` for an IN list of `count` values."""
    return ",".join("?" * count)


async def fetch_in(db: Db, template: str, values: Sequence[Any], *params: Any, by_key: bool = False) -> list[Any]:
    """Rows of `template` (whose `{marks}` is an IN list) for every value, in chunks the backend accepts;
    `params` come before the list. `by_key`: each value is a key (`Db.fetch_by_key` while they are few)."""
    fetch = db.fetch_by_key if by_key and len(values) <= FEW_KEYS else db.fetch
    rows: list[Any] = []
    for chunk in chunks(values):
        rows.extend(await fetch(template.format(marks=marks(len(chunk))), (*params, *chunk)))
    return rows
