"""Resumable HTTP download of a ZIM: Range continuation, checksum sidecars, verify, rename into place."""

import enum
import hashlib
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiohttp

CHUNK = 256 * 1024
PROGRESS_EVERY = 4 * 1024 * 1024
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_SAFE_NAME = re.compile(r"^[\w.+\- ]+\.zim$", re.U)
ALGOS = {"sha256": 64, "md5": 32}


class ImportState(enum.Enum):
    """Lifecycle of an import row."""

    QUEUED = "queued"
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    DONE = "done"
    FAILED = "failed"


class DownloadError(Exception):
    """A download that cannot continue (the reason is shown to the operator); retryable ones resume later."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def file_name_from_url(url: str) -> str:
    """The .zim file name at the end of an http(s) URL; raises ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("url must be an http:// or https:// URL")
    name = unquote(parts.path.rsplit("/", 1)[-1])
    if not _SAFE_NAME.match(name) or name.startswith("."):
        raise ValueError("url must end with a plain file name ending in .zim")
    return name


def parse_checksum(text: str, algo: str) -> str | None:
    """The hex digest from a `.sha256`/`.md5` sidecar (`<hex>  file` or just `<hex>`)."""
    token = text.strip().split()[0] if text.strip() else ""
    if _HEX.match(token) and len(token) == ALGOS[algo]:
        return token.lower()
    return None


async def fetch_sidecar(session: aiohttp.ClientSession, url: str) -> tuple[str, str] | None:
    """Look for `<url>.sha256`, then `<url>.md5`; None when neither is published."""
    for algo in ("sha256", "md5"):
        try:
            async with session.get(f"{url}.{algo}", timeout=aiohttp.ClientTimeout(total=30)) as resp:
                if resp.status != 200:
                    continue
                digest = parse_checksum((await resp.content.read(4096)).decode("ascii", "replace"), algo)
                if digest:
                    return algo, digest
        except (aiohttp.ClientError, TimeoutError):
            continue
    return None


ProgressFn = Callable[[int, int | None], Awaitable[None]]


async def download(session: aiohttp.ClientSession, url: str, part: Path, have: int, on_progress: ProgressFn,
                   *, read_timeout: float = 60) -> int:
    """Continue (or start) fetching url into part, which already holds `have` bytes; returns the final size.

    Resumes with `Range: bytes=N-`; a server that ignores Range (200) makes us start over rather
    than append a second copy.
    """
    headers = {"Range": f"bytes={have}-"} if have else {}
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=read_timeout)
    async with session.get(url, headers=headers, timeout=timeout) as resp:
        if resp.status == 416 and have:
            total = _total_from_content_range(resp.headers.get("Content-Range"))
            if total == have:
                return have  # already complete before a restart
            raise DownloadError(f"server refused to resume at byte {have} (416)")
        if resp.status == 200:
            have = 0
        elif resp.status != 206:
            raise DownloadError(f"upstream answered HTTP {resp.status}",
                                retryable=resp.status >= 500 or resp.status in (408, 429))
        total = _total_from_content_range(resp.headers.get("Content-Range")) if resp.status == 206 else (
            resp.content_length)
        mode = "ab" if have else "wb"
        reported = have
        await on_progress(have, total)
        with part.open(mode) as out:  # noqa: ASYNC230 - chunk writes are small; the loop is I/O-bound
            async for chunk in resp.content.iter_chunked(CHUNK):
                out.write(chunk)
                have += len(chunk)
                if have - reported >= PROGRESS_EVERY:
                    out.flush()
                    reported = have
                    await on_progress(have, total)
    if total is not None and have != total:
        raise DownloadError(f"connection ended at {have} of {total} bytes", retryable=True)
    await on_progress(have, total)
    return have


def _total_from_content_range(value: str | None) -> int | None:
    """The complete length from `bytes a-b/total` or `bytes */total`."""
    if value and "/" in value:
        tail = value.rsplit("/", 1)[1].strip()
        if tail.isdigit():
            return int(tail)
    return None


def hash_file(path: Path, algo: str) -> str:
    """Hex digest of a file (blocking: run it through run_blocking)."""
    digest = hashlib.new(algo, usedforsecurity=False)
    with path.open("rb") as fh:
        while block := fh.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def existing_size(path: Path) -> int:
    """Size of a file, 0 if absent (blocking)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def part_path(content_root: Path, import_id: int, file_name: str) -> Path:
    """Where an unfinished download lives: hidden and not ending in .zim, so scans ignore it."""
    return content_root / f".import-{import_id}-{file_name}.part"
