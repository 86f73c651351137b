"""The durable JetStream work queue of video downloads and its bounded-concurrency consumer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

import nats.errors
from nats.aio.msg import Msg
from nats.js.api import RetentionPolicy

from appliance.bus import subjects
from appliance.bus.client import Bus
from appliance.bus.specs import STREAMS, ConsumerSpec, StreamSpec
from appliance.core.tasks import TaskSupervisor

log = logging.getLogger(__name__)
STREAM = "MEDIA_JOBS"
DURABLE = "media-fetch"
FETCH_EXPIRES_S = 5.0
# A job handed back at shutdown is redelivered after this delay: by then this process's last pull
# request has expired, so the server cannot hand the job straight back to a subscriber that is gone.
HANDBACK_DELAY_S = FETCH_EXPIRES_S + 1.0


def stream_spec(ack_wait_s: float = 120.0) -> StreamSpec:
    """Work-queue stream: a job leaves it only when acked, i.e. once the file is stored."""
    return StreamSpec(
        name=STREAM,
        subjects=(subjects.media_fetch(),),
        retention=RetentionPolicy.WORK_QUEUE,
        duplicate_window_s=120.0,
        # max_ack_pending is not the concurrency: jobs waiting out a retry delay stay pending too
        consumers=(ConsumerSpec(DURABLE, ack_wait_s=ack_wait_s, max_deliver=-1, max_ack_pending=10_000),),
    )


STREAMS.append(stream_spec())


class Verdict(Enum):
    """What to do with a job message after handling it."""

    ACK = "ack"  # done (stored, given up, or nothing to do)
    RETRY = "retry"  # redeliver after a delay


@dataclass(frozen=True)
class JobResult:
    """The verdict with its redelivery delay."""

    verdict: Verdict
    delay_s: float = 0.0


async def enqueue(bus: Bus, video_id: int, generation: str) -> None:
    """Publish a download job; the msg id makes a repeated publish of the same generation a no-op."""
    payload = json.dumps({"video_id": video_id}).encode()
    await bus.publish(subjects.media_fetch(), payload, msg_id=f"video-{video_id}-{generation}")


Handler = Callable[[int], Awaitable[JobResult]]


class JobConsumer:
    """Pulls jobs one at a time while a slot is free; runs each as a supervised task with heartbeats."""

    def __init__(self, bus: Bus, tasks: TaskSupervisor, handler: Handler, *, concurrency: int,
                 ack_wait_s: float) -> None:
        self.bus = bus
        self.tasks = tasks
        self.handler = handler
        self.slots = asyncio.Semaphore(concurrency)
        self.ack_wait_s = ack_wait_s
        self.in_flight: set[int] = set()
        self._jobs: set[asyncio.Task[None]] = set()

    def _spawn(self, name: str, fn: Callable[[], Awaitable[None]]) -> None:
        task = self.tasks.spawn(name, fn, restart=False)
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    async def stop(self) -> None:
        """Cancel running jobs (yt-dlp is killed, the job handed back) and wait for them."""
        jobs = list(self._jobs)
        for task in jobs:
            task.cancel()
        if jobs:
            await asyncio.wait(jobs, timeout=10)

    async def run(self) -> None:
        """The consumer loop (restarted by the supervisor if NATS goes away)."""
        sub = await self.bus.js.pull_subscribe_bind(DURABLE, STREAM)
        try:
            while True:
                await self.slots.acquire()
                try:
                    msgs = await sub.fetch(1, timeout=FETCH_EXPIRES_S)
                except (TimeoutError, nats.errors.TimeoutError):
                    self.slots.release()
                    continue
                except BaseException:
                    self.slots.release()
                    raise
                for msg in msgs:
                    self._start(msg)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    def _start(self, msg: Msg) -> None:
        try:
            video_id = int(json.loads(msg.data)["video_id"])
        except (ValueError, KeyError, TypeError):
            log.warning("dropping malformed media job %r", msg.data[:100])
            self._spawn(f"media-job-bad-{id(msg)}", lambda: self._finish(msg, JobResult(Verdict.ACK)))
            return
        if video_id in self.in_flight:
            # a duplicate of a job this process is already running: the running one settles it
            self._spawn(f"media-job-dup-{id(msg)}", lambda: self._finish(msg, JobResult(Verdict.ACK)))
            return
        self.in_flight.add(video_id)
        self._spawn(f"media-job-{video_id}", lambda: self._handle(video_id, msg))

    async def _finish(self, msg: Msg, result: JobResult) -> None:
        try:
            if result.verdict is Verdict.ACK:
                await msg.ack()
            else:
                await msg.nak(delay=max(0.0, result.delay_s))
        finally:
            self.slots.release()

    async def _heartbeat(self, msg: Msg) -> None:
        # a long download must not be redelivered to another worker while it is still running
        while True:
            await asyncio.sleep(max(1.0, self.ack_wait_s / 3))
            with contextlib.suppress(Exception):
                await msg.in_progress()

    async def _handle(self, video_id: int, msg: Msg) -> None:
        beat = asyncio.ensure_future(self._heartbeat(msg))
        released = False
        try:
            result = await self.handler(video_id)
            beat.cancel()
            released = True
            await self._finish(msg, result)
        except asyncio.CancelledError:
            # shutdown: hand the job back at once so the next start picks it up without waiting ack_wait
            with contextlib.suppress(Exception):
                await asyncio.shield(msg.nak(delay=HANDBACK_DELAY_S))
            raise
        except Exception:
            log.exception("media job for video %d failed unexpectedly", video_id)
            released = True
            await self._finish(msg, JobResult(Verdict.RETRY, 30.0))
        finally:
            beat.cancel()
            self.in_flight.discard(video_id)
            if not released:
                self.slots.release()
