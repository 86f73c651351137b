"""Named, bounded thread pools for blocking work (file I/O, ldap3, libzim), so the event loop never blocks."""

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_DEFAULT_SIZES = {"io": 4, "ldap": 4, "auth": 2, "zim": 2}
_pools: dict[str, ThreadPoolExecutor] = {}
_sizes: dict[str, int] = dict(_DEFAULT_SIZES)


def register_pool(name: str, max_workers: int) -> None:
    """Declare (or resize, before first use) a named pool."""
    if name in _pools:
        return
    _sizes[name] = max_workers


def _pool(name: str) -> ThreadPoolExecutor:
    pool = _pools.get(name)
    if pool is None:
        pool = ThreadPoolExecutor(max_workers=_sizes.get(name, 2), thread_name_prefix=f"blocking-{name}")
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
