"""Named, bounded thread pools for blocking work (file I/O, ldap3, libzim), so the event loop never blocks."""

import asyncio
import contextvars
import functools
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

_DEFAULT_SIZES = {"io": 4, "ldap": 4, "auth": 2, "zim": 2}
_pools: dict[str, ThreadPoolExecutor] = {}
_sizes: dict[str, int] = dict(_DEFAULT_SIZES)
_niceness: dict[str, int] = {}


def register_pool(name: str, max_workers: int, *, niceness: int = 0) -> None:
    """Declare (or resize, before first use) a named pool.

    `niceness` > 0 runs the pool's threads at that scheduling niceness: CPU-heavy work that can wait
    (password hashing) then takes only the CPU the event loop leaves, instead of an equal share of a busy
    core. It costs nothing when the machine is idle: a niced thread still gets every free cycle.
    """
    if name in _pools:
        return
    _sizes[name] = max_workers
    _niceness[name] = niceness


def _lower_priority(niceness: int) -> None:
    """Thread initializer: raise this thread's niceness (Linux schedules threads one by one)."""
    tid = threading.get_native_id()
    try:
        # Never lower it: a process started niced (e.g. by its unit) keeps at least that.
        os.setpriority(os.PRIO_PROCESS, tid, max(niceness, os.getpriority(os.PRIO_PROCESS, tid)))
    except OSError as exc:  # not Linux, or a sandbox forbidding it: the work still runs, at normal priority
        log.debug("could not renice thread %s: %s", tid, exc)


def _pool(name: str) -> ThreadPoolExecutor:
    pool = _pools.get(name)
    if pool is None:
        niceness = _niceness.get(name, 0)
        pool = ThreadPoolExecutor(
            max_workers=_sizes.get(name, 2),
            thread_name_prefix=f"blocking-{name}",
            initializer=functools.partial(_lower_priority, niceness) if niceness > 0 else None,
        )
        _pools[name] = pool
    return pool


async def run_blocking(pool: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run fn(*args, **kwargs) on the named pool and await its result (context vars carried over)."""
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    call = functools.partial(ctx.run, fn, *args, **kwargs)
    return await loop.run_in_executor(_pool(pool), call)


def shutdown_pools() -> None:
    """Stop every pool; pending work is abandoned (called once at process exit)."""
    for pool in _pools.values():
        pool.shutdown(wait=False, cancel_futures=True)
    _pools.clear()
