"""Commands run as root on an installed device act as the daemon's user, so every file stays the daemon's."""

from __future__ import annotations

import os
import pwd
from pathlib import Path


def drop_to_data_owner(data_dir: Path) -> str | None:
    """When root and the data folder belongs to another user, become that user; returns its name or None.

    A database or key created by `appliance user add` run as root would be root's and read-only to the
    daemon (which then cannot start); acting as the folder's owner avoids that for every command.
    """
    if os.geteuid() != 0:
        return None
    try:
        st = data_dir.stat()
    except OSError:
        return None
    if st.st_uid == 0:
        return None
    try:
        entry = pwd.getpwuid(st.st_uid)
        name, home = entry.pw_name, entry.pw_dir
    except KeyError:
        name, home = str(st.st_uid), str(data_dir)
    if name.isdigit():
        os.setgroups([st.st_gid])
    else:
        os.initgroups(name, st.st_gid)
    os.setgid(st.st_gid)
    os.setuid(st.st_uid)
    os.environ["HOME"] = home
    os.environ["USER"] = os.environ["LOGNAME"] = name
    return name
