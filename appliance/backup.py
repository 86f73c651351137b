"""`appliance backup create|restore`: one archive with an online database copy, the config and the keys."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import socket
import sqlite3
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from appliance import __version__
from appliance.config import Config
from appliance.db.migrate import available_migrations, migrate

FORMAT = 1
ARCHIVE_PREFIX = "appliance-backup-"
MANIFEST = "manifest.json"
DATABASE = "database/appliance.db"
MAX_MEMBER_BYTES = 64 * 1024 * 1024 * 1024  # a database can be large; anything bigger is not ours
MAX_SMALL_FILE_BYTES = 1024 * 1024  # config files and keys
# Key material kept in the data folder (relative paths); each is restored to the same place.
DATA_FILES = ("nats/credentials.json",)
DATA_DIRS = ("secrets",)
# Files kept beside the config file that belong to it (install choices, keys and certificates).
CONFIG_SUFFIXES = (".toml", ".conf", ".key", ".pem", ".crt", ".xml")


class BackupError(Exception):
    """A backup could not be made or restored; the message says why and what to do."""


@dataclass(frozen=True)
class Manifest:
    """What an archive holds."""

    format: int
    created: str
    appliance_version: str
    schema_version: int
    hostname: str
    files: list[str]

    @classmethod
    def parse(cls, raw: bytes) -> Manifest:
        """Read and check a manifest.json."""
        try:
            data = json.loads(raw)
            return cls(int(data["format"]), str(data["created"]), str(data["appliance_version"]),
                       int(data["schema_version"]), str(data["hostname"]), [str(f) for f in data["files"]])
        except (ValueError, KeyError, TypeError) as exc:
            raise BackupError(f"not an appliance backup (bad manifest: {exc})") from exc


def default_dir(config: Config) -> Path:
    """Where archives go unless told otherwise (the nightly timer keeps them here)."""
    return config.paths.data_dir / "backups"


def _owner_of(path: Path) -> tuple[int, int] | None:
    """The data folder's owner when running as root, so files written here stay the daemon's."""
    if os.geteuid() != 0 or not path.exists():
        return None
    st = path.stat()
    return (st.st_uid, st.st_gid) if st.st_uid != 0 else None


def _give(path: Path, owner: tuple[int, int] | None) -> None:
    if owner is not None:
        os.chown(path, *owner)


def _snapshot(db_path: Path, target: Path) -> int:
    """A consistent copy of the live database through SQLite's online backup API; returns its schema version."""
    if not db_path.exists():
        raise BackupError(f"no database at {db_path} (has the appliance ever started?)")
    src = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(str(target))
    try:
        src.backup(dst)
        return int(dst.execute("PRAGMA user_version").fetchone()[0])
    finally:
        dst.close()
        src.close()


def _config_files(config: Config) -> list[Path]:
    source = Path(config.source)
    if not source.is_file():  # "(defaults)" when no file is in use
        return []
    # The config file and its neighbours (keys and certificates kept beside it, e.g. a SAML SP key).
    return sorted(p for p in source.parent.iterdir()
                  if p == source or (p.is_file() and p.suffix in CONFIG_SUFFIXES
                                     and p.stat().st_size <= MAX_SMALL_FILE_BYTES))


def _data_files(config: Config) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    data = config.paths.data_dir
    for rel in DATA_FILES:
        if (data / rel).is_file():
            found.append((f"data/{rel}", data / rel))
    for rel in DATA_DIRS:
        base = data / rel
        if base.is_dir():
            for path in sorted(base.rglob("*")):
                if path.is_file():
                    found.append((f"data/{path.relative_to(data).as_posix()}", path))
    return found


def create(config: Config, output: Path | None = None, keep: int | None = None) -> Path:
    """Write a backup archive and return its path; with `keep`, prune older archives in the default folder."""
    folder = default_dir(config)
    owner = _owner_of(config.paths.data_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = output or folder / f"{ARCHIVE_PREFIX}{stamp}.tar.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.parent == folder:
        _give(folder, owner)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".backup-") as tmp:
        snap = Path(tmp) / "appliance.db"
        schema = _snapshot(config.database_path, snap)
        members: list[tuple[str, Path]] = [(DATABASE, snap)]
        members += [(f"config/{p.name}", p) for p in _config_files(config)]
        members += _data_files(config)
        manifest = {
            "format": FORMAT,
            "created": stamp,
            "appliance_version": __version__,
            "schema_version": schema,
            "hostname": socket.gethostname(),
            "files": [name for name, _ in members],
        }
        partial = Path(tmp) / "archive.tar.gz"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            body = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode, info.mtime = len(body), 0o600, int(datetime.now(UTC).timestamp())
            tar.addfile(info, io.BytesIO(body))
            for name, path in members:
                tar.add(str(path), arcname=name, recursive=False, filter=_plain)
        os.replace(partial, target)
    _give(target, owner)
    if keep is not None and target.parent == folder:
        archives = sorted(folder.glob(f"{ARCHIVE_PREFIX}*.tar.gz"))
        for old in archives[:-keep]:
            old.unlink(missing_ok=True)
    return target


def _plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o600
    return info


def _safe_name(name: str) -> str:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise BackupError(f"archive member {name!r} has an unsafe path; refusing the whole archive")
    top = path.parts[0]
    if name != MANIFEST and top not in ("database", "config", "data"):
        raise BackupError(f"archive member {name!r} is not part of an appliance backup")
    if top == "data" and not (path.relative_to("data").as_posix() in DATA_FILES
                              or path.parts[1:2] and path.parts[1] in DATA_DIRS):
        raise BackupError(f"archive member {name!r} is not a key file the appliance restores")
    if top == "config" and len(path.parts) != 2:
        raise BackupError(f"archive member {name!r} is not a config file")
    return name


def read_manifest(archive: Path) -> Manifest:
    """The manifest of an archive (checked)."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            member = tar.getmember(MANIFEST)
            handle = tar.extractfile(member)
            if handle is None or member.size > MAX_SMALL_FILE_BYTES:
                raise BackupError("bad manifest")
            return Manifest.parse(handle.read())
    except (tarfile.TarError, OSError, KeyError) as exc:
        raise BackupError(f"{archive}: cannot be read as an appliance backup ({exc})") from exc


def _daemon_answers(config: Config) -> bool:
    port = config.http.port
    if not port:
        return False
    host = "127.0.0.1" if config.http.host in ("", "0.0.0.0", "::") else config.http.host  # noqa: S104
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def restore(config: Config, archive: Path, *, with_config: bool = False) -> tuple[Manifest, Path | None]:
    """Put the archive's database and keys (and config, if asked) back; returns the manifest and the safety copy.

    Refuses a backup from a newer schema than this appliance knows, and refuses while the daemon answers.
    """
    manifest = read_manifest(archive)
    if manifest.format > FORMAT:
        raise BackupError(f"backup format {manifest.format} is newer than this appliance understands ({FORMAT})")
    newest = max((m.version for m in available_migrations()), default=0)
    if manifest.schema_version > newest:
        raise BackupError(
            f"the backup's database schema (version {manifest.schema_version}, appliance {manifest.appliance_version}) "
            f"is newer than this appliance's ({newest}, appliance {__version__}); upgrade the appliance first")
    if _daemon_answers(config):
        raise BackupError(f"the daemon is running (port {config.http.port} answers); stop it first: "
                          "systemctl stop appliance")
    data = config.paths.data_dir
    owner = _owner_of(data)
    data.mkdir(parents=True, exist_ok=True)
    db_path = config.database_path
    with tempfile.TemporaryDirectory(dir=data, prefix=".restore-") as tmp, tarfile.open(archive, "r:gz") as tar:
        staged: dict[str, Path] = {}
        for member in tar.getmembers():
            name = _safe_name(member.name)
            if name == MANIFEST:
                continue
            if not member.isfile():
                raise BackupError(f"archive member {name!r} is not a regular file")
            limit = MAX_MEMBER_BYTES if name == DATABASE else MAX_SMALL_FILE_BYTES
            if member.size > limit:
                raise BackupError(f"archive member {name!r} is too large ({member.size} bytes)")
            handle = tar.extractfile(member)
            if handle is None:
                raise BackupError(f"archive member {name!r} cannot be read")
            dest = Path(tmp) / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(dest, "wb") as out:
                shutil.copyfileobj(handle, out)
            staged[name] = dest
        if DATABASE not in staged:
            raise BackupError("the archive holds no database")
        _check_database(staged[DATABASE])
        safety = None
        if db_path.exists():
            safety = default_dir(config) / f"pre-restore-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}.db"
            safety.parent.mkdir(parents=True, exist_ok=True)
            _snapshot(db_path, safety)
            safety.chmod(0o600)
            _give(safety, owner)
        # A WAL left from the old database would be replayed into the restored one: remove it first.
        for suffix in ("-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
        _put(staged[DATABASE], db_path, owner)
        for name, path in staged.items():
            if name.startswith("data/"):
                _put(path, data / PurePosixPath(name).relative_to("data"), owner)
            elif name.startswith("config/") and with_config:
                if not Path(config.source).is_file():
                    raise BackupError("--with-config: no config file is in use to restore beside")
                _put(path, Path(config.source).parent / PurePosixPath(name).name, None, mode=0o640)
    # An older schema is brought up to date now, so the daemon starts at once.
    migrate(db_path, backup_dir=default_dir(config), keep=config.database.backup_keep)
    for leftover in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
        if leftover.exists():
            _give(leftover, owner)
    return manifest, safety


def _check_database(path: Path) -> None:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise BackupError(f"the archive's database cannot be read: {exc}") from exc
    if verdict != "ok":
        raise BackupError(f"the archive's database is damaged: {verdict}")


def _put(src: Path, dest: Path, owner: tuple[int, int] | None, mode: int = 0o600) -> None:
    if not dest.parent.exists():
        dest.parent.mkdir(parents=True, mode=0o700)
        _give(dest.parent, owner)
    tmp = dest.with_name(f".{dest.name}.restoring")
    shutil.copyfile(src, tmp)
    tmp.chmod(mode)
    if owner is not None:
        os.chown(tmp, *owner)
    elif os.geteuid() == 0 and dest.exists():
        st = dest.stat()
        os.chown(tmp, st.st_uid, st.st_gid)
    os.replace(tmp, dest)


# ----- command line -----

def register(sub: Any) -> None:
    """Add `backup create|restore` to the `appliance` command."""
    parser = sub.add_parser("backup", help="back up or restore the database, config and keys")
    actions = parser.add_subparsers(dest="backup_command", required=True, metavar="ACTION")
    make = actions.add_parser("create", help="write a backup archive (online: the daemon may keep running)")
    make.add_argument("--output", type=Path, default=None,
                      help="archive path (default <data_dir>/backups/appliance-backup-<time>.tar.gz)")
    make.add_argument("--keep", type=int, default=None, help="keep only the newest N archives in the default folder")
    make.set_defaults(func=cmd_create, keeps_root=True)
    back = actions.add_parser("restore", help="restore a backup archive (stop the daemon first)")
    back.add_argument("archive", type=Path)
    back.add_argument("--with-config", action="store_true", help="also put the archived config files back")
    back.set_defaults(func=cmd_restore, keeps_root=True)


async def cmd_create(args: argparse.Namespace, config: Config) -> int:
    """Write a backup archive."""
    from appliance.core.blocking import run_blocking

    if args.keep is not None and args.keep < 1:
        print("appliance backup: --keep must be at least 1", file=sys.stderr)
        return 2
    try:
        path = await run_blocking("io", create, config, args.output, args.keep)
    except (BackupError, OSError, sqlite3.Error) as exc:
        print(f"appliance backup: {exc}", file=sys.stderr)
        return 1
    print(f"backup written: {path}")
    return 0


async def cmd_restore(args: argparse.Namespace, config: Config) -> int:
    """Restore a backup archive."""
    from appliance.core.blocking import run_blocking

    try:
        manifest, safety = await run_blocking("io", restore, config, args.archive, with_config=args.with_config)
    except (BackupError, OSError, sqlite3.Error) as exc:
        print(f"appliance backup: refused: {exc}", file=sys.stderr)
        return 1
    print(f"restored the backup of {manifest.created} from {manifest.hostname} "
          f"(schema {manifest.schema_version}) into {config.database_path}")
    if safety:
        print(f"the database it replaced was kept in {safety}")
    return 0
