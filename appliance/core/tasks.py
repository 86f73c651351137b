"""Named, supervised background tasks: restarted with backoff when they fail, cancelled at cleanup."""

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class TaskSupervisor:
    """Owns every long-running task of a process, so none is orphaned or silently dies."""

    def __init__(self, *, backoff_initial: float = 0.5, backoff_max: float = 30.0) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._closing = False

    def spawn(self, name: str, coro_fn: Callable[[], Awaitable[None]], *, restart: bool = True) -> asyncio.Task[None]:
        """Start coro_fn() as task `name`; if it raises and restart is set, start it again after a backoff."""
        if name in self._tasks and not self._tasks[name].done():
            raise RuntimeError(f"task {name} is already running")
        task = asyncio.get_running_loop().create_task(self._run(name, coro_fn, restart), name=name)
        self._tasks[name] = task
        return task

    async def _run(self, name: str, coro_fn: Callable[[], Awaitable[None]], restart: bool) -> None:
        delay = self._backoff_initial
        failing = False
        while not self._closing:
            try:
                await coro_fn()
                if failing:
                    log.info("task %s recovered", name)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                if not failing:
                    # Log the first failure with its traceback, not every retry (Home Assistant's habit).
                    log.exception("task %s failed", name)
                failing = True
                if not restart:
                    return
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self._backoff_max)

    def names(self) -> list[str]:
        """Names of the tasks still running."""
        return [name for name, task in self._tasks.items() if not task.done()]

    async def close(self, timeout: float = 5.0) -> None:
        """Cancel every task and wait (bounded) for them to finish."""
        self._closing = True
        tasks = [t for t in self._tasks.values() if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        self._tasks.clear()
