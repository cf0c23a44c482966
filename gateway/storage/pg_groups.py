"""PostgreSQL group commit: units that take no lock they would wait for (a creation, a stored refusal) share
one transaction with the units queued beside them, each in a savepoint of its own.

A write that makes an event holds the events' lock, and its customers' version rows, through its commit's
flush to disk (gateway.storage.commit_order): such writes commit one at a time, at most one per flush,
however many processes run them. A group makes that one flush count for every unit in it, and sends the
statements its units keep for last (their journal rows and events) once for all of them.

A unit that fails rolls back to its savepoint alone, and its failure is its own answer; the others go on.
A failure of the group's connection or transaction (a lost server, a deadline, a serialization failure at
COMMIT) runs the whole group again, as a lone unit would be (gateway.storage.pg_retry), so each unit's
answer is handed back only once its group has committed. A unit that would wait for a lock (an order's, an
import's) never joins a group: while it waited, the group's locks would wait with it.
"""
from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.storage.db import Db, T, Unit
from gateway.storage.pg_retry import ABANDONED, RETRIED
from gateway.storage.postgres_db import BEGIN, PostgresTransaction
from gateway.storage.types import StorageUnavailable

GROUP_MAX = 32  # units of one transaction at most: each is a subtransaction, and PostgreSQL tracks 64 cheaply
GROUPS_AT_ONCE = 2  # transactions a process keeps open for groups: the next forms while one commits
SAVEPOINT = "SAVEPOINT unit"
ROLLBACK_TO = "ROLLBACK TO SAVEPOINT unit"

_Outcome = tuple[BaseException | None, Any]


class _Member(PostgresTransaction):
    """One unit's view of its group's transaction: its statements run in its own savepoint, opened with the
    first of them; what it keeps for last joins the group's only when it succeeds."""

    def __init__(self, group: PostgresTransaction) -> None:
        super().__init__(group.connection, group.schema, group.deadline)
        self._group = group

    def _preamble(self) -> str:
        opening = SAVEPOINT if self._group.begun else f"{BEGIN}; {SAVEPOINT}"
        self._group.begun = True
        return opening

    async def lock(self, name: str, *, wait: bool = True) -> None:
        if wait:  # the group's locks would wait with it, and two groups may wait for each other
            raise TypeError(f"a unit in a group waits for no lock ({name!r})")
        await super().lock(name, wait=False)

    async def lock_shared(self, name: str) -> None:
        raise TypeError(f"a unit in a group waits for no lock ({name!r})")

    async def roll_back(self) -> None:
        if self.begun:
            await self.connection.execute(ROLLBACK_TO, timeout=self._timeout())

    async def join(self) -> None:
        for sql, rows in self.kept().items():
            await self._group.execute_last(sql, rows)


@dataclasses.dataclass(eq=False)
class _Queued:
    unit: Unit[Any]
    future: asyncio.Future[Any]
    deadline: float  # of the event loop's clock: its busy timeout, as its request has it left
    started: bool = False  # its group has run it (it may run again, with its group)


async def _run_members(group: Db, queued: list[_Queued]) -> list[_Outcome]:
    assert isinstance(group, PostgresTransaction)
    outcomes: list[_Outcome] = []
    for member_unit in queued:
        if member_unit.future.done():  # its caller went away, or gave up, before it ran
            outcomes.append((None, None))
            continue
        member_unit.started = True
        member = _Member(group)
        try:
            value = await member_unit.unit(member)
        except (*RETRIED, *ABANDONED):
            raise  # the group's transaction or connection: the group runs again, or fails as a whole
        except Exception as failure:  # the unit's own answer (a refusal, a lock another process holds)
            await member.roll_back()
            outcomes.append((failure, None))
            continue
        await member.join()
        outcomes.append((None, value))
    return outcomes


def _give_up(queued: _Queued) -> None:
    if not queued.started and not queued.future.done():
        queued.future.set_exception(StorageUnavailable("PostgreSQL: no transaction came free within the busy timeout"))


WriteGroup = Callable[[Unit[list[_Outcome]], float], Awaitable[list[_Outcome]]]


class GroupCommits:
    """Units queued while this process's group transactions run make up the next ones: at most GROUPS_AT_ONCE
    at a time, of at most GROUP_MAX units. A unit alone goes out at once, as a group of one."""

    def __init__(self, write_group: WriteGroup) -> None:
        self._write_group = write_group  # runs a unit as a lone write would (retried, within its seconds)
        self._queue: list[_Queued] = []
        self._runners = 0  # groups being run: counted down as a runner finds the queue empty, not later
        self._tasks: set[asyncio.Task[None]] = set()

    async def write(self, unit: Unit[T], seconds: float) -> T:
        """A unit still queued at its deadline (the groups before it were slow: a database that stopped
        answering, say) is given up, StorageUnavailable, and never runs; one that has started goes on with
        its group, whose statements give up at the deadline of its least patient unit."""
        loop = asyncio.get_running_loop()
        queued = _Queued(unit, loop.create_future(), loop.time() + seconds)
        self._queue.append(queued)
        if self._runners < GROUPS_AT_ONCE:
            self._runners += 1
            task = loop.create_task(self._run())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        give_up = loop.call_at(queued.deadline, _give_up, queued)
        try:
            result: T = await queued.future
            return result
        finally:
            give_up.cancel()

    async def _run(self) -> None:
        try:
            await self._run_groups()
        finally:
            self._runners -= 1

    async def _run_groups(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            group, self._queue = self._queue[:GROUP_MAX], self._queue[GROUP_MAX:]
            group = [queued for queued in group if not queued.future.done()]  # given up while queued
            if not group:
                continue
            seconds = max(min(queued.deadline for queued in group) - loop.time(), 0.0)  # its least patient unit's
            try:
                outcomes = await self._write_group(lambda db: _run_members(db, group), seconds)
            except asyncio.CancelledError:  # the process stops
                for queued in (*group, *self._queue):
                    if not queued.future.done():
                        queued.future.set_exception(StorageUnavailable("PostgreSQL: the process is stopping"))
                raise
            except Exception as group_failure:  # nothing of the group committed, or its outcome is unknown
                outcomes = [(group_failure, None)] * len(group)
            for queued, (failure, value) in zip(group, outcomes):
                if queued.future.done():
                    continue
                if failure is not None:
                    queued.future.set_exception(failure)
                else:
                    queued.future.set_result(value)
