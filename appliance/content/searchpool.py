"""Search and suggest in their own small process pools, behind a FIFO queue bounded by count and by wait time."""

import asyncio
import collections
import contextlib
import enum
import math
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from appliance.content import searchworker

T = TypeVar("T")

# Weight of the newest run in the running estimate of how long one query takes. Small enough that one
# slow query (a rare word in a big archive) does not make the pool refuse a whole class for a while.
_SERVICE_ALPHA = 0.2


class QueryClass(enum.Enum):
    """Request classes with separate limits, so suggestions stay fast during a search burst."""

    SEARCH = "search"
    SUGGEST = "suggest"


class Saturated(Exception):
    """The queue of a class is full, or a query would wait (or has waited) past the deadline: answer 503."""

    def __init__(self, klass: QueryClass, retry_after: int) -> None:
        super().__init__(f"{klass.value} is busy")
        self.klass = klass
        self.retry_after = retry_after


class QueryTimeout(Exception):
    """A query ran past its time limit (its process keeps running and frees the slot later)."""


class BoundedPool:
    """A process pool whose callers queue in order, at most queue_depth of them and for at most wait_s each.

    A class's burst (30 learners pressing Search together) waits its turn and is answered in arrival
    order. A flood is refused with Saturated, cheaply: at once when the queue is full by count or when
    the expected wait (queue length x the running estimate of one query's time / processes) is past
    wait_s, and after wait_s at the latest for a caller still waiting then. A refused caller never
    reaches a process, so refusals leave no work behind; each waiter costs a coroutine and its request.
    """

    def __init__(self, klass: QueryClass, processes: int, queue_depth: int, cluster_cache_bytes: int,
                 timeout_s: float, wait_s: float | None = None, niceness: int = 0) -> None:
        self.klass = klass
        self.processes = processes
        self.queue_depth = queue_depth
        self.timeout_s = timeout_s
        self.wait_s = timeout_s if wait_s is None else wait_s
        self.running = 0
        self.rejected = 0
        self.expired = 0  # refused after waiting the whole wait_s (the estimate was too hopeful)
        self.started = 0  # calls handed to a process
        self.service_s = 0.0  # running estimate of one call's time in a process (0 until one finished)
        self._unmeasured = processes  # the first call of each process also waits for it to start: not a sample
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._init_args = (cluster_cache_bytes, niceness)
        self._executor_: ProcessPoolExecutor | None = None
        self._warmed = False

    @property
    def _executor(self) -> ProcessPoolExecutor:
        """Created on first use: even an idle pool's queues start a resource-tracker process."""
        if self._executor_ is None:
            # spawn: a forked child would inherit the parent's threads, event loop and open sockets.
            self._executor_ = ProcessPoolExecutor(
                max_workers=self.processes, mp_context=multiprocessing.get_context("spawn"),
                initializer=searchworker.init_process, initargs=self._init_args)
        return self._executor_

    def warm(self) -> None:
        """Start the processes now rather than on the first query (once)."""
        if self._warmed:
            return
        self._warmed = True
        for _ in range(self.processes):
            self._executor.submit(int, 0)

    @property
    def waiting(self) -> int:
        """Callers queued for a process."""
        return len(self._waiters)

    @property
    def in_flight(self) -> int:
        """Calls running in a process plus callers waiting for one."""
        return self.running + len(self._waiters)

    def expected_wait(self) -> float:
        """Seconds a caller arriving now would wait for a process, by the running estimate."""
        if self.running < self.processes and not self._waiters:
            return 0.0
        return (len(self._waiters) + 1) * self.service_s / self.processes

    @property
    def full(self) -> bool:
        """Whether a new call would be refused at once (queue full by count, or the wait too long)."""
        if self.running < self.processes and not self._waiters:
            return False
        return len(self._waiters) >= self.queue_depth or self.expected_wait() > self.wait_s

    def retry_after(self) -> int:
        """Seconds after which the queue as it is now should have drained (1 to 30)."""
        drain = (len(self._waiters) + self.running) * self.service_s / self.processes
        return max(1, min(30, math.ceil(drain)))

    def _refuse(self) -> Saturated:
        self.rejected += 1
        return Saturated(self.klass, self.retry_after())

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(*args) in a process once one is free (in arrival order), or raise Saturated."""
        if self.full:
            raise self._refuse()
        if self.running < self.processes and not self._waiters:
            self.running += 1
        else:
            await self._wait_turn()  # returns holding a slot
        self.started += 1
        started = time.monotonic()
        try:
            future = asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except BaseException:
            self._release(None)
            raise
        # The slot is freed when the process really finishes, not when the caller gives up:
        # otherwise timed-out or cancelled queries would let unbounded work pile up behind them.
        future.add_done_callback(lambda _f: self._release(started))
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.timeout_s)
        except TimeoutError as exc:
            raise QueryTimeout(f"{self.klass.value} took longer than {self.timeout_s:g} s") from exc

    async def _wait_turn(self) -> None:
        """Queue until _wake_next hands this caller a slot; Saturated when wait_s passes first."""
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        try:
            await asyncio.wait_for(turn, self.wait_s)
        except BaseException as exc:
            handed = turn.done() and not turn.cancelled() and turn.exception() is None
            if handed and isinstance(exc, TimeoutError):
                return  # the slot came as the deadline struck: use it
            if handed:  # the caller went away just as its slot came: pass the slot on
                self.running -= 1
                self._wake_next()
            else:
                turn.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(turn)
            if isinstance(exc, TimeoutError):
                self.expired += 1
                raise self._refuse() from None
            raise

    def _wake_next(self) -> None:
        """Give each free slot to the longest waiting caller still there (the slot is taken on its behalf,
        so a caller arriving meanwhile cannot jump the queue)."""
        while self._waiters and self.running < self.processes:
            turn = self._waiters.popleft()
            if not turn.done():
                self.running += 1
                turn.set_result(None)

    def _release(self, started: float | None) -> None:
        self.running -= 1
        if started is not None and self._unmeasured > 0:
            self._unmeasured -= 1
        elif started is not None:
            # Capped at wait_s: one pathological query (a timed-out one takes search_timeout_s) must not by
            # itself make the pool refuse every waiter until enough others have finished to dilute it.
            took = min(time.monotonic() - started, self.wait_s)
            self.service_s = took if not self.service_s else \
                (1 - _SERVICE_ALPHA) * self.service_s + _SERVICE_ALPHA * took
        self._wake_next()

    def close(self) -> None:
        """Stop the processes (running queries are abandoned; waiting ones are refused)."""
        while self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                turn.set_exception(Saturated(self.klass, 1))
        if self._executor_ is not None:
            self._executor_.shutdown(wait=True, cancel_futures=True)


class SearchPools:
    """The two bounded pools of one HTTP worker process (suggestions never wait behind searches)."""

    def __init__(self, *, search_processes: int, suggest_processes: int, queue_depth: int,
                 cluster_cache_bytes: int, search_timeout_s: float, wait_s: float | None = None,
                 niceness: int = 0) -> None:
        self.search = BoundedPool(QueryClass.SEARCH, search_processes, queue_depth,
                                  cluster_cache_bytes, search_timeout_s, wait_s, niceness=niceness)
        self.suggest = BoundedPool(QueryClass.SUGGEST, suggest_processes, queue_depth,
                                   cluster_cache_bytes, search_timeout_s, wait_s, niceness=niceness)

    def warm(self) -> None:
        """Start every process."""
        self.search.warm()
        self.suggest.warm()

    def close(self) -> None:
        """Stop every process."""
        self.search.close()
        self.suggest.close()
