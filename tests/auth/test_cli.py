"""`appliance user ...` run as a real subprocess against a config, then used through the app."""

import subprocess
import sys
from pathlib import Path

from aiohttp.test_utils import TestClient

from appliance.config import load_config
from tests.auth.helpers import Browser
from tests.conftest import AppClientFactory

APPLIANCE = [sys.executable, "-m", "appliance"]


def run(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run the appliance CLI."""
    return subprocess.run(
        [*APPLIANCE, *args, "--config", str(config)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_user_commands(tmp_path: Path, app_client: AppClientFactory, browsers) -> None:  # type: ignore[no-untyped-def]
    toml = tmp_path / "appliance.toml"
    toml.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "var"}"\ncontent_root = "{tmp_path / "content"}"\n'
        '[logging]\nlevel = "warning"\n'
    )
    made = run(
        toml,
        "user",
        "add",
        "--username",
        "Chief",
        "--role",
        "system_admin",
        "--password-stdin",
        stdin="chief pass 77\n",
    )
    assert made.returncode == 0, made.stderr
    assert "created system_admin Chief" in made.stdout
    assert "chief pass 77" not in made.stdout + made.stderr
    again = run(toml, "user", "add", "--username", "chief", "--role", "learner")
    assert again.returncode == 1
    assert "taken" in again.stderr
    bad = run(toml, "user", "add", "--username", "*)(uid=*", "--role", "learner")
    assert bad.returncode == 2
    temp_user = run(toml, "user", "add", "--username", "kim", "--role", "learner", "--facility", "1")
    temp = temp_user.stdout.split("one-time password: ")[1].split()[0]
    listing = run(toml, "user", "list")
    assert "Chief\tsystem_admin" in listing.stdout
    assert "kim\tlearner" in listing.stdout

    client: TestClient = await app_client(load_config(toml, env={}))
    chief: Browser = browsers(client)
    await chief.login("chief", "chief pass 77")
    kim = await browsers(client).login("kim", temp)
    assert kim["data"]["must_change_password"] is True
    reset = run(toml, "user", "reset-password", "--username", "KIM")
    new_temp = reset.stdout.split(": ")[1].split()[0]
    await browsers(client).login("kim", temp, expect=401)
    await browsers(client).login("kim", new_temp)
    assert run(toml, "user", "deactivate", "--username", "kim").returncode == 0
    await browsers(client).login("kim", new_temp, expect=401)
    audit = await chief.call("GET", "/api/v1/audit?action=user_deactivated")
    assert audit["data"][0]["actor"]["username"].startswith("cli:")
