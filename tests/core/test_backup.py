"""`appliance backup create|restore`, the clock check of `doctor`, and root commands acting as the data owner."""

from __future__ import annotations

import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from appliance.doctor import check_clock

NOBODY = 65534


def _setup(tmp_path: Path, port: int = 0) -> Path:
    data = tmp_path / "data"
    config = tmp_path / "etc" / "appliance.toml"
    config.parent.mkdir()
    config.write_text(f'[http]\nhost = "127.0.0.1"\nport = {port}\n[paths]\ndata_dir = "{data}"\n'
                      f'content_root = "{tmp_path / "content"}"\n')
    (config.parent / "saml-sp.key").write_text("-----BEGIN PRIVATE KEY-----\nkey\n")
    (config.parent / "notes.log").write_text("not part of the config")
    return config


def cli(config: Path, *args: str, python: str = sys.executable) -> subprocess.CompletedProcess[str]:
    cmd = [python, "-m", "appliance", *args, "--config", str(config)]
    env = dict(os.environ)
    if python != sys.executable:  # the same packages, under an interpreter whose stdlib any user can read
        env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                             *(p for p in sys.path if p.endswith("site-packages"))])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=config.parent, env=env)


def _system_python() -> str:
    """A dev venv's interpreter may live under /root (0700): a command that became another user could not
    import the rest of the standard library. Debian's python3.11 (what devices run) has no such problem."""
    return "/usr/bin/python3.11"


def _db(config: Path) -> Path:
    return config.parent.parent / "data" / "appliance.db"


def _write(db: Path, sql: str) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(sql)
    conn.close()


def _archive(out: str) -> Path:
    return Path(out.strip().rsplit(" ", 1)[-1])


def test_create_then_restore_brings_back_database_keys_and_config(tmp_path: Path) -> None:
    config = _setup(tmp_path)
    assert cli(config, "migrate").returncode == 0
    db = _db(config)
    _write(db, "CREATE TABLE keepsake (note TEXT)")
    _write(db, "INSERT INTO keepsake VALUES ('before the backup')")
    secrets = db.parent / "secrets"
    secrets.mkdir()
    (secrets / "sync.key").write_bytes(b"k" * 32)
    made = cli(config, "backup", "create")
    assert made.returncode == 0, made.stderr
    archive = _archive(made.stdout)
    assert archive.parent == db.parent / "backups" and archive.stat().st_mode & 0o777 == 0o600
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"manifest.json", "database/appliance.db", "config/appliance.toml", "config/saml-sp.key",
            "data/secrets/sync.key"} <= names
    assert "config/notes.log" not in names
    # Things go wrong after the backup.
    _write(db, "DELETE FROM keepsake")
    (secrets / "sync.key").write_bytes(b"x" * 32)
    (config.parent / "saml-sp.key").write_text("overwritten")
    restored = cli(config, "backup", "restore", str(archive), "--with-config")
    assert restored.returncode == 0, restored.stderr
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT note FROM keepsake").fetchall() == [("before the backup",)]
    conn.close()
    assert (secrets / "sync.key").read_bytes() == b"k" * 32
    assert (config.parent / "saml-sp.key").read_text().startswith("-----BEGIN")
    assert list((db.parent / "backups").glob("pre-restore-*.db")), "the replaced database was not kept"


def test_keep_prunes_old_archives(tmp_path: Path) -> None:
    config = _setup(tmp_path)
    assert cli(config, "migrate").returncode == 0
    for _ in range(3):
        assert cli(config, "backup", "create", "--keep", "2").returncode == 0
    assert len(list((_db(config).parent / "backups").glob("appliance-backup-*.tar.gz"))) == 2


def _forge(tmp_path: Path, members: dict[str, bytes], manifest: dict[str, object]) -> Path:
    path = tmp_path / "forged.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, body in {"manifest.json": json.dumps(manifest).encode(), **members}.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return path


def _manifest(schema: int) -> dict[str, object]:
    return {"format": 1, "created": "x", "appliance_version": "9.9", "schema_version": schema,
            "hostname": "elsewhere", "files": []}


def test_restore_refuses_a_backup_from_a_newer_schema(tmp_path: Path) -> None:
    config = _setup(tmp_path)
    assert cli(config, "migrate").returncode == 0
    before = _db(config).read_bytes()
    forged = _forge(tmp_path, {"database/appliance.db": before}, _manifest(9999))
    out = cli(config, "backup", "restore", str(forged))
    assert out.returncode == 1
    assert "newer than this appliance" in out.stderr and "upgrade the appliance first" in out.stderr
    assert _db(config).read_bytes() == before


@pytest.mark.parametrize("name", ["../../etc/evil", "/etc/evil", "data/../../escape", "data/run/other.sock",
                                  "elsewhere/file"])
def test_restore_refuses_members_outside_the_backup_layout(tmp_path: Path, name: str) -> None:
    config = _setup(tmp_path)
    assert cli(config, "migrate").returncode == 0
    forged = _forge(tmp_path, {"database/appliance.db": _db(config).read_bytes(), name: b"payload"}, _manifest(1))
    out = cli(config, "backup", "restore", str(forged))
    assert out.returncode == 1 and "refused" in out.stderr
    assert not (tmp_path / "escape").exists() and not Path("/etc/evil").exists()


def test_restore_refuses_while_the_daemon_answers(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        config = _setup(tmp_path, port=listener.getsockname()[1])
        assert cli(config, "migrate").returncode == 0
        made = cli(config, "backup", "create")
        out = cli(config, "backup", "restore", str(_archive(made.stdout)))
    assert out.returncode == 1 and "stop it first" in out.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_root_commands_act_as_the_data_owner(tmp_path: Path) -> None:
    """The first-boot bug: `user add` as root made a root-owned database the daemon could not write."""
    config = _setup(tmp_path)
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    os.chown(data, NOBODY, NOBODY)
    for path in (tmp_path, tmp_path / "etc", config):
        path.chmod(path.stat().st_mode | 0o005)
    for parent in (tmp_path.parent, tmp_path.parent.parent):  # pytest's folders are root's, 0700
        parent.chmod(parent.stat().st_mode | 0o005)
    out = cli(config, "user", "add", "--username", "admin", "--role", "system_admin", python=_system_python())
    assert out.returncode == 0, out.stderr
    for path in [data, *data.rglob("*")]:
        assert path.stat().st_uid == NOBODY, f"{path} belongs to uid {path.stat().st_uid}"
    made = cli(config, "backup", "create", python=_system_python())
    assert made.returncode == 0, made.stderr
    assert _archive(made.stdout).stat().st_uid == NOBODY


def test_clock_check() -> None:
    floor = 1_800_000_000.0
    assert check_clock(now=floor + 3600, floor=floor).ok
    behind = check_clock(now=floor - 30 * 86400, floor=floor)
    assert not behind.ok and "before this software was installed" in behind.detail
    assert not check_clock(now=floor + 20 * 365 * 86400, floor=floor).ok
