"""Background tasks of a worker's lifespan: one running for a block, or a check every interval.

The model holder polls ``current`` and the traffic router polls its policy file the same way:
a task that sleeps, checks, logs a failure and goes on (a bug in a check must never stop a
serving worker from following the registry), cancelled when the lifespan ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

logger = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def running(work: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    """Run ``work`` as a task for the duration of the block; cancel it at exit."""
    task = asyncio.create_task(work, name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def every(interval: float, check: Callable[[], Awaitable[object]], what: str) -> None:
    """Call ``check`` every ``interval`` seconds until cancelled; a failure is only logged."""
    while True:
        await asyncio.sleep(interval)
        try:
            await check()
        except Exception:  # a check's bug must never kill the watcher of a serving worker
            logger.exception("%s failed", what)


@contextlib.asynccontextmanager
async def polling(
    interval: float, check: Callable[[], Awaitable[object]], what: str
) -> AsyncIterator[None]:
    """``every`` in the background for the duration of the block (``interval`` 0: never)."""
    if interval <= 0:
        yield
        return
    async with running(every(interval, check, what), name=f"drugclf-{what.replace(' ', '-')}"):
        yield
