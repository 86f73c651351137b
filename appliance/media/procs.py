"""Run an external program as a supervised child: timeout, and killed with its children on cancel."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from appliance.core.children import die_with_parent


class ProcessTimeout(Exception):
    """The program ran past its timeout and was killed."""


@dataclass(frozen=True)
class ProcessResult:
    """Exit status and captured output of a finished program."""

    returncode: int
    stdout: bytes
    stderr: bytes


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    # yt-dlp starts ffmpeg; killing the whole session makes sure no grandchild survives
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def run_supervised(
    argv: Sequence[str], *, timeout_s: float, on_stdout_line: Callable[[str], Awaitable[None] | None] | None = None,
    stderr_limit: int = 64 * 1024, env: dict[str, str] | None = None,
) -> ProcessResult:
    """Run `argv`, feeding stdout lines to `on_stdout_line`; kill it on timeout or cancellation."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        # own session: a kill reaches ffmpeg too; die_with_parent: a SIGKILLed daemon leaves no yt-dlp behind
        start_new_session=True, env=env, preexec_fn=die_with_parent,
    )
    out_lines: list[bytes] = []
    err = bytearray()

    async def read_stdout() -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            if on_stdout_line is None:
                out_lines.append(raw)
                continue
            res = on_stdout_line(raw.decode("utf-8", "replace").rstrip("\n"))
            if res is not None:
                await res

    async def read_stderr() -> None:
        assert proc.stderr is not None
        while chunk := await proc.stderr.read(8192):
            err.extend(chunk)
            if len(err) > stderr_limit:  # keep the tail: that is where the error is
                del err[: len(err) - stderr_limit]

    try:
        async with asyncio.timeout(timeout_s):
            await asyncio.gather(read_stdout(), read_stderr())
            rc = await proc.wait()
    except TimeoutError as exc:
        _kill_group(proc)
        await proc.wait()
        raise ProcessTimeout(f"{os.path.basename(argv[0])} timed out after {timeout_s:g} s") from exc
    except BaseException:
        _kill_group(proc)
        with contextlib.suppress(Exception):
            await asyncio.shield(proc.wait())
        raise
    return ProcessResult(rc, b"".join(out_lines), bytes(err))
