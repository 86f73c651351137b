"""Moving open connections of a site from the primary to an HTTP worker process (SCM_RIGHTS over a socketpair).

A site whose connections are *packed* is listened on by the primary only. Its front serves every
connection in the primary while that process has headroom, and moves idle connections to a worker when it
has not (the front decides which and when). Why: at a class's pace each request arrives alone, and what it
costs is mostly waking a process and refilling its caches; one process woken twice as often does the same
work for about a third less CPU than two processes each woken half as often (measured in the README,
"Capacity on a 2-core box"). Under a full load the connections spread over the processes as before.

The socket itself moves, with whatever the client has sent that nobody read yet; the process that gives
it away closes its own descriptor without a FIN (another descriptor still holds the connection), so the
client sees nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)

Adopt = Callable[[socket.socket], None]


def channel() -> tuple[socket.socket, socket.socket]:
    """A (primary end, worker end) pair; the worker end is inherited by the worker process."""
    # Datagram-like: each message carries one descriptor and is read alone.
    primary, worker = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    primary.setblocking(False)
    worker.set_inheritable(True)
    return primary, worker


class Handoff:
    """The primary's side: sends a connection's descriptor to one of the workers, in turn."""

    def __init__(self) -> None:
        self._ends: dict[int, socket.socket] = {}  # worker index -> primary end
        self._turn = 0
        self.moved = 0

    def attach(self, index: int, end: socket.socket) -> None:
        """Worker `index` (re)started with the other end of `end`."""
        self.detach(index)
        self._ends[index] = end

    def detach(self, index: int) -> None:
        """Worker `index` is gone: stop sending to it."""
        end = self._ends.pop(index, None)
        if end is not None:
            end.close()

    def __len__(self) -> int:
        return len(self._ends)

    def send(self, fd: int) -> bool:
        """Give a duplicate of descriptor fd to a worker; False when none could take it now (full or gone)."""
        ends = list(self._ends.items())
        for i in range(len(ends)):
            index, end = ends[(self._turn + i) % len(ends)]
            try:
                socket.send_fds(end, [b"c"], [fd])
            except BlockingIOError:
                continue  # that worker is behind on adopting: try another, or keep the connection
            except OSError as exc:
                log.warning("cannot hand a connection to HTTP worker %d (%s); it keeps its own", index, exc)
                self.detach(index)
                continue
            self._turn = (self._turn + i + 1) % max(1, len(ends))
            self.moved += 1
            return True
        return False

    def close(self) -> None:
        """Close every primary end (the workers see EOF)."""
        for index in list(self._ends):
            self.detach(index)


class Adopter:
    """A worker's side: adopts every connection the primary sends, into the site's protocol."""

    def __init__(self, fd: int, adopt: Adopt) -> None:
        self._sock = socket.socket(fileno=fd)
        self._sock.setblocking(False)
        self._adopt = adopt
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Read the channel on loop until it closes or stop() is called."""
        self._loop = loop
        loop.add_reader(self._sock.fileno(), self._readable)

    def _readable(self) -> None:
        while True:
            try:
                data, fds, _flags, _addr = socket.recv_fds(self._sock, 64, 64)
            except BlockingIOError:
                return
            except OSError as exc:
                log.warning("connection hand-off channel failed (%s); this worker takes no more", exc)
                self.stop()
                return
            for fd in fds:
                try:
                    conn = socket.socket(fileno=fd)
                except OSError:
                    os.close(fd)
                    continue
                conn.setblocking(False)
                self._adopt(conn)
            if not data:
                self.stop()  # the primary closed its end (shutdown)
                return

    def stop(self) -> None:
        """Stop reading and close the channel."""
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._sock.fileno())
            self._loop = None
        self._sock.close()
