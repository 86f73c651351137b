"""Zero-copy file responses from a small cache of open files (no thread hop per request)."""

from __future__ import annotations

import os
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import IO, Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from appliance.media.blocking import media_blocking
from appliance.media.storage.disk import disk_etag

_TTL_S = 30.0  # re-stat after this long, so a deleted file's space is released and changes are noticed
_MAX_OPEN = 256


@dataclass
class OpenFile:
    """An open video file with the facts its responses need."""

    fobj: IO[bytes]
    size: int
    etag: str
    expires: float
    last_modified: str  # formatted once: formatdate() was a measurable share of each ranged read


class OpenFiles:
    """An LRU of open files per path; each process keeps its own."""

    def __init__(self) -> None:
        self._files: OrderedDict[Path, OpenFile] = OrderedDict()

    async def get(self, path: Path) -> OpenFile:
        """The open file (opened or refreshed off the event loop when needed)."""
        now = time.monotonic()
        hit = self._files.get(path)
        if hit is not None and hit.expires > now:
            self._files.move_to_end(path)
            return hit
        fresh = await media_blocking(self._open, path, now)
        old = self._files.pop(path, None)
        if old is not None:
            await media_blocking(old.fobj.close)
        self._files[path] = fresh
        while len(self._files) > _MAX_OPEN:
            _, evicted = self._files.popitem(last=False)
            await media_blocking(evicted.fobj.close)
        return fresh

    @staticmethod
    def _open(path: Path, now: float) -> OpenFile:
        fobj = path.open("rb")
        st = os.fstat(fobj.fileno())
        return OpenFile(fobj, st.st_size, f'"{disk_etag(st)}"', now + _TTL_S, formatdate(st.st_mtime, usegmt=True))

    def forget(self, prefix: Path) -> None:
        """Drop (and close) cached files under a folder (the video was deleted)."""
        for path in [p for p in self._files if p.is_relative_to(prefix)]:
            self._files.pop(path).fobj.close()

    def close(self) -> None:
        """Close every cached file."""
        for entry in self._files.values():
            entry.fobj.close()
        self._files.clear()


class SendfileResponse(web.StreamResponse):
    """Headers, then the byte range straight from the page cache with sendfile(2)."""

    def __init__(self, fobj: IO[bytes], offset: int, count: int, *, status: int, headers: dict[str, str]) -> None:
        super().__init__(status=status, headers=headers)
        self._fobj = fobj
        self._offset = offset
        self._count = count
        self.content_length = count

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        """Send headers and body (aiohttp calls this once the handler returns)."""
        if self.prepared:
            return self._payload_writer
        transport: Any = request.transport
        if request.method == "HEAD" or self._count == 0 or transport is None:
            writer = await super().prepare(request)
            await super().write_eof()
            return writer
        sock = transport.get_extra_info("socket")
        # Corked like nginx's tcp_nopush: the headers leave in the same segment as the first bytes of the
        # file instead of as a packet of their own (one wake-up less for the client per ranged read).
        corked = sock is not None and _cork(sock, True)
        try:
            writer = await super().prepare(request)
            offset, count = self._offset, self._count
            eof = False
            if sock is not None and transport.get_write_buffer_size() == 0:
                # Most ranged reads fit the socket buffer: one sendfile(2) here, no trip through the event loop.
                sent, eof = _sendfile_now(sock.fileno(), self._fobj.fileno(), offset, count)
                offset += sent
                count -= sent
            if count and not eof:
                # The socket is full: loop.sendfile waits for it to drain (and handles the peer leaving).
                count -= await request._loop.sendfile(transport, self._fobj, offset, count)  # noqa: SLF001
        finally:
            if corked:
                _cork(sock, False)
        if count:
            # The file shrank after its size was announced: end the connection rather than leave the
            # client waiting for bytes that will never come.
            transport.close()
            raise ConnectionResetError("file ended before the announced Content-Length")
        await super().write_eof()
        return writer


def _cork(sock: socket.socket, on: bool) -> bool:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1 if on else 0)
    except OSError:  # not TCP (a Unix socket behind a proxy) or already closed
        return False
    return True


def _sendfile_now(sock_fd: int, file_fd: int, offset: int, count: int) -> tuple[int, bool]:
    """Send as much of the range as the socket takes right now; (bytes sent, reached end of file)."""
    total = 0
    while count:
        try:
            sent = os.sendfile(sock_fd, file_fd, offset, count)
        except (BlockingIOError, InterruptedError):
            return total, False
        if sent == 0:
            return total, True
        total += sent
        offset += sent
        count -= sent
    return total, False
