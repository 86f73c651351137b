"""Each feature's domain events, raised by real changes and received verified by a webhook receiver."""

from __future__ import annotations

import shutil
from pathlib import Path

from appliance.keys import CONFIG
from appliance.media.keys import MEDIA
from appliance.media.models import Availability
from tests.events.conftest import create_webhook
from tests.events.receiver import Receiver
from tests.sync.conftest import FAST_SYNC
from tests.sync.helpers import create_learner
from tests.sync.test_pull import run_and_wait
from tests.sync.test_push import add_provider

DATA = Path(__file__).resolve().parent.parent / "data"


async def test_login_locked(events_app, make_user, receiver: Receiver) -> None:
    client, admin = await events_app(auth={"lockout_threshold": 3})
    await create_webhook(client, admin, receiver, events=["login.locked"])
    await make_user(client, username="grace", password="the right password 1")
    for _ in range(3):
        resp = await client.post("/api/v1/auth/login", json={"username": "grace", "password": "wrong password"})
        assert resp.status in (401, 429)
    await receiver.wait_for(lambda: receiver.of_type("login.locked"))
    [locked] = receiver.of_type("login.locked")
    assert locked.data["kind"] == "username" and locked.data["subject"] == "grace"
    assert locked.data["failures"] == 3 and locked.data["locked_until"]


async def test_library_added_error_removed(events_app, receiver: Receiver) -> None:
    client, admin = await events_app()
    await create_webhook(client, admin, receiver, events=["library.added", "library.error", "library.removed"])
    zim = client.app[CONFIG].paths.content_root / "zim"
    shutil.copy(DATA / "example.zim", zim / "example.zim")
    (zim / "broken.zim").write_bytes(b"this is not a ZIM archive" * 100)
    assert (await client.post("/api/v1/libraries/rescan", headers=admin)).status in (200, 202)
    await receiver.wait_for(lambda: receiver.of_type("library.added") and receiver.of_type("library.error"))
    [added] = receiver.of_type("library.added")
    assert added.data["library"]["path"].endswith("example.zim") and added.data["library"]["id"]
    [error] = receiver.of_type("library.error")
    assert error.data["library"]["path"].endswith("broken.zim") and error.data["error"]
    (zim / "example.zim").unlink()
    assert (await client.post("/api/v1/libraries/rescan", headers=admin)).status in (200, 202)
    await receiver.wait_for(lambda: receiver.of_type("library.removed"))
    [removed] = receiver.of_type("library.removed")
    assert removed.data["library"]["id"] == added.data["library"]["id"]
    assert len(receiver.of_type("library.added")) == 1  # an unchanged rescan raises nothing again


async def test_video_failed(events_app, receiver: Receiver) -> None:
    client, admin = await events_app()
    await create_webhook(client, admin, receiver, events=["video.failed"])
    repo = client.app[MEDIA].repo
    video_id = await repo.add_upload(title="Broken", filename="broken.mp4", added_by=None)
    await repo.set_state(video_id, Availability.PENDING, error="waiting")
    await repo.set_state(video_id, Availability.ERROR, error="ffprobe: not a video")
    await receiver.wait_for(lambda: receiver.of_type("video.failed"))
    [failed] = receiver.of_type("video.failed")
    assert failed.data == {"video": {"id": video_id, "title": "Broken", "source_kind": "upload", "source_url": None,
                                     "attempts": 0}, "error": "ffprobe: not a video"}


async def test_sync_events(events_app, make_user, receiver: Receiver, canvas) -> None:
    client, admin = await events_app(sync=FAST_SYNC)
    await create_webhook(client, admin, receiver, events=["sync.completed", "sync.failed", "provider.auth_failed",
                                                          "dead_letter.created"])
    user = {"id": int(admin["X-Test-User"])}
    provider = await add_provider(client, user, canvas)
    canvas.state.add_course("Algebra")
    first = await run_and_wait(client, user, provider["id"])
    assert first["state"] == "succeeded"
    await receiver.wait_for(lambda: receiver.of_type("sync.completed"))
    [completed] = receiver.of_type("sync.completed")
    assert completed.data["provider"] == {"id": provider["id"], "name": "Canvas"}
    assert completed.data["run_id"] == first["id"] and completed.data["job"] == "pull"
    # a record Canvas refuses becomes a dead letter
    learner = await create_learner(client)
    canvas.state.add_user("Squatter", sis_user_id="other", login_id=learner["uuid"])
    await receiver.wait_for(lambda: receiver.of_type("dead_letter.created"), timeout=60)
    [dead] = receiver.of_type("dead_letter.created")
    assert dead.data["provider"]["id"] == provider["id"] and dead.data["topic"] == "roster.user.created"
    # the token is revoked upstream: the run fails and the provider goes to auth_failed (raised once)
    canvas.tokens.clear()
    second = await run_and_wait(client, user, provider["id"])
    assert second["state"] == "failed"
    await receiver.wait_for(lambda: receiver.of_type("sync.failed") and receiver.of_type("provider.auth_failed"),
                            timeout=60)
    [failed] = receiver.of_type("sync.failed")
    assert failed.data["run_id"] == second["id"] and "AuthFailed" in failed.data["error"]
    assert receiver.of_type("provider.auth_failed")[0].data["provider"]["id"] == provider["id"]
    assert len(receiver.of_type("provider.auth_failed")) == 1
    assert receiver.bad == []
