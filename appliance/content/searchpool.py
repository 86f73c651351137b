"""Search and suggest in their own small process pools with admission control (fast 503 when full)."""

import asyncio
import enum
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from appliance.content import searchworker

T = TypeVar("T")


class QueryClass(enum.Enum):
    """Request classes with separate limits, so suggestions stay fast during a search burst."""

    SEARCH = "search"
    SUGGEST = "suggest"


class Saturated(Exception):
    """Every slot of a class is taken: the caller should answer 503 with Retry-After."""

    def __init__(self, klass: QueryClass, retry_after: int) -> None:
        super().__init__(f"{klass.value} is busy")
        self.klass = klass
        self.retry_after = retry_after


class QueryTimeout(Exception):
    """A query ran past its time limit (its process keeps running and frees the slot later)."""


class BoundedPool:
    """A process pool that admits at most processes + queue_depth calls at a time."""

    def __init__(self, klass: QueryClass, processes: int, queue_depth: int, cluster_cache_bytes: int,
                 timeout_s: float, retry_after: int = 2, niceness: int = 0) -> None:
        self.klass = klass
        self.capacity = processes + queue_depth
        self.in_flight = 0
        self.rejected = 0
        self.timeout_s = timeout_s
        self.retry_after = retry_after
        self._processes = processes
        self._init_args = (cluster_cache_bytes, niceness)
        self._executor_: ProcessPoolExecutor | None = None
        self._warmed = False

    @property
    def _executor(self) -> ProcessPoolExecutor:
        """Created on first use: even an idle pool's queues start a resource-tracker process."""
        if self._executor_ is None:
            # spawn: a forked child would inherit the parent's threads, event loop and open sockets.
            self._executor_ = ProcessPoolExecutor(
                max_workers=self._processes, mp_context=multiprocessing.get_context("spawn"),
                initializer=searchworker.init_process, initargs=self._init_args)
        return self._executor_

    def warm(self) -> None:
        """Start the processes now rather than on the first query (once)."""
        if self._warmed:
            return
        self._warmed = True
        for _ in range(self._processes):
            self._executor.submit(int, 0)

    @property
    def full(self) -> bool:
        """Whether a new call would be refused."""
        return self.in_flight >= self.capacity

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(*args) in a process, or raise Saturated at once when the class is full."""
        if self.in_flight >= self.capacity:
            self.rejected += 1
            raise Saturated(self.klass, self.retry_after)
        self.in_flight += 1
        future = asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        # The slot is freed when the process really finishes, not when the caller gives up:
        # otherwise timed-out or cancelled queries would let unbounded work pile up behind them.
        future.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.timeout_s)
        except TimeoutError as exc:
            raise QueryTimeout(f"{self.klass.value} took longer than {self.timeout_s:g} s") from exc

    def _release(self, _future: object) -> None:
        self.in_flight -= 1

    def close(self) -> None:
        """Stop the processes (running queries are abandoned)."""
        if self._executor_ is not None:
            self._executor_.shutdown(wait=True, cancel_futures=True)


class SearchPools:
    """The two bounded pools of one HTTP worker process."""

    def __init__(self, *, search_processes: int, suggest_processes: int, queue_depth: int,
                 cluster_cache_bytes: int, search_timeout_s: float, niceness: int = 0) -> None:
        self.search = BoundedPool(QueryClass.SEARCH, search_processes, queue_depth,
                                  cluster_cache_bytes, search_timeout_s, niceness=niceness)
        self.suggest = BoundedPool(QueryClass.SUGGEST, suggest_processes, queue_depth,
                                   cluster_cache_bytes, search_timeout_s, niceness=niceness)

    def warm(self) -> None:
        """Start every process."""
        self.search.warm()
        self.suggest.warm()

    def close(self) -> None:
        """Stop every process."""
        self.search.close()
        self.suggest.close()
