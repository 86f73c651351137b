"""Local-disk backend: `<root>/videos/<id>/...`, written to a temporary name then renamed."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import AsyncGenerator
from pathlib import Path

from appliance.media.blocking import media_blocking
from appliance.media.storage.base import TMP_MARK, ObjectInfo, StorageError, StorageUnavailable, check_key

_CHUNK = 256 * 1024


def disk_etag(st: os.stat_result) -> str:
    """The entity tag aiohttp's FileResponse uses, so both paths agree."""
    return f"{st.st_mtime_ns:x}-{st.st_size:x}"


class DiskStorage:
    """Videos as plain files under one root folder."""

    name = "disk"

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._playable: dict[str, Path] = {}

    def path_for(self, key: str) -> Path:
        """Resolve `key` under the root; refuse anything that would land outside it."""
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise StorageError(f"key {key!r} escapes the storage root")
        return path

    async def start(self) -> None:
        """Create the root folder."""
        await media_blocking(lambda: (self.root / "videos").mkdir(parents=True, exist_ok=True))

    async def close(self) -> None:
        """Nothing to release."""

    async def check(self) -> None:
        """Raise StorageUnavailable if the videos folder is gone (an unmounted disk)."""
        if not await media_blocking((self.root / "videos").is_dir):
            raise StorageUnavailable(f"video folder {self.root / 'videos'} is missing")

    def _info(self, key: str, path: Path) -> ObjectInfo:
        st = path.stat()
        return ObjectInfo(key=key, size=st.st_size, etag=disk_etag(st), mtime=st.st_mtime)

    def _put_file(self, key: str, src: Path) -> ObjectInfo:
        dest = self.path_for(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}{TMP_MARK}{secrets.token_hex(6)}")
        try:
            try:
                os.replace(src, tmp)  # same filesystem: a move, no copy
            except OSError:
                shutil.copyfile(src, tmp)
                with open(tmp, "rb+") as fh:
                    os.fsync(fh.fileno())
                src.unlink(missing_ok=True)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return self._info(key, dest)

    async def put_file(self, key: str, src: Path, content_type: str) -> ObjectInfo:
        """Move `src` into place under a temporary name, then rename (src is consumed)."""
        return await media_blocking(self._put_file, key, src)

    def _put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        dest = self.path_for(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}{TMP_MARK}{secrets.token_hex(6)}")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return self._info(key, dest)

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> ObjectInfo:
        """Write a small object atomically."""
        return await media_blocking(self._put_bytes, key, data)

    async def get_bytes(self, key: str) -> bytes:
        """Read a small object."""
        path = self.path_for(key)
        try:
            return await media_blocking(path.read_bytes)
        except FileNotFoundError as exc:
            raise StorageError(f"no object {key!r}") from exc

    def _stat(self, key: str) -> ObjectInfo | None:
        path = self.path_for(key)
        try:
            return self._info(key, path) if path.is_file() else None
        except FileNotFoundError:
            return None

    async def stat(self, key: str) -> ObjectInfo | None:
        """Size, etag and mtime, or None."""
        return await media_blocking(self._stat, key)

    async def read_range(self, key: str, start: int, length: int) -> AsyncGenerator[bytes, None]:
        """Stream part of a file (used when sendfile does not apply)."""
        fh = await media_blocking(open, self.path_for(key), "rb")
        try:
            await media_blocking(fh.seek, start)
            remaining = length
            while remaining > 0:
                chunk = await media_blocking(fh.read, min(_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk
        finally:
            fh.close()

    def local_path(self, key: str) -> Path | None:
        """The file itself, for sendfile (resolved once per key: this is on every stream request)."""
        path = self._playable.get(key)
        if path is None:
            if len(self._playable) > 10_000:
                self._playable.clear()
            path = self._playable[key] = self.path_for(key)
        return path

    async def presigned_url(self, key: str, expires_s: int) -> str | None:
        """Disk has no presigned URLs."""
        return None

    def _delete_prefix(self, prefix: str) -> None:
        folder = self.path_for(prefix.rstrip("/"))
        if folder.is_dir():
            shutil.rmtree(folder)
        else:
            with contextlib.suppress(FileNotFoundError):
                folder.unlink()

    async def delete_prefix(self, prefix: str) -> None:
        """Remove a video's folder."""
        self._playable = {k: v for k, v in self._playable.items() if not k.startswith(prefix)}
        await media_blocking(self._delete_prefix, prefix)

    def _list(self, prefix: str) -> list[ObjectInfo]:
        base = self.path_for(prefix.rstrip("/"))
        if not base.is_dir():
            return []
        out = []
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                path = Path(dirpath) / name
                key = path.relative_to(self.root).as_posix()
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                # temporary names are listed too: the orphan sweeper must see them
                out.append(ObjectInfo(key=key, size=st.st_size, etag=disk_etag(st), mtime=st.st_mtime))
        return sorted(out, key=lambda o: o.key)

    async def list_keys(self, prefix: str) -> list[ObjectInfo]:
        """Every file under `prefix`, temporary ones included."""
        return await media_blocking(self._list, prefix)
