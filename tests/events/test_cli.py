"""`appliance webhooks status` reads the database and names every webhook with its deliveries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.daemon import write_config
from tests.events.seed import insert_events, seed_webhook


def test_status_lists_webhooks_and_unrelayed_events(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    run = [sys.executable, "-m", "appliance"]
    subprocess.run([*run, "migrate", "--config", str(config)], check=True, capture_output=True, cwd=tmp_path)
    db_path = tmp_path / "var" / "appliance.db"
    seed_webhook(db_path, tmp_path / "var" / "secrets" / "sync.key", "https://hooks.example.org/in")
    insert_events(db_path, 3)
    out = subprocess.run([*run, "webhooks", "status", "--config", str(config)], check=True, capture_output=True,
                         text=True, cwd=tmp_path).stdout
    assert "https://hooks.example.org/in enabled failures=0 pending=0" in out
    assert "events not yet relayed to JetStream: 3" in out
    assert "whsec_" not in out
