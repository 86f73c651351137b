"""The admin video page and the player page: policies, local assets only."""

from __future__ import annotations

import re
from typing import Any

from tests.media.test_streaming import upload


async def test_admin_page_and_assets(media_env_factory: Any) -> None:
    env = await media_env_factory("disk")
    assert (await env.client.get("/admin/videos", headers=env.h("learner"))).status == 403
    resp = await env.client.get("/admin/videos", headers=env.h("admin"))
    assert resp.status == 200
    page = await resp.text()
    assert 'id="videos"' in page
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets
    assert all(a.startswith(("/", "#", "data:")) and not a.startswith("//")
               for a in assets), assets  # nothing from a CDN
    for asset in (a for a in assets if a.startswith("/static/")):
        served = await env.client.get(asset)
        assert served.status == 200, asset
        assert "http://" not in await served.text() and "https://" not in await served.text()


async def test_player_page(media_env_factory: Any, sample_bytes: bytes) -> None:
    env = await media_env_factory("disk")
    vid = (await (await upload(env, sample_bytes, filename="<b>Geometry</b>.mp4")).json())["data"]["id"]
    assert (await env.client.get(f"/videos/{vid}", headers=env.h("learner"))).status == 404  # hidden
    await env.client.put(f"/api/v1/videos/{vid}/visibility", json={"facility_ids": [1]}, headers=env.h("admin"))
    resp = await env.client.get(f"/videos/{vid}", headers=env.h("learner"))
    assert resp.status == 200
    page = await resp.text()
    assert f'src="/videos/{vid}/stream"' in page  # nothing watched yet: starts at the beginning
    assert "<b>" not in page  # titles are escaped
    resp = await env.client.get(f"/videos/{vid}", headers={"Accept": "text/html"})
    assert resp.url.path == "/login"  # a browser that is not signed in is sent to sign in first
    resp = await env.client.get(f"/videos/{vid}")
    assert resp.status == 401


async def test_learner_video_list(media_env_factory: Any, sample_bytes: bytes) -> None:
    env = await media_env_factory("disk")
    shown = (await (await upload(env, sample_bytes, filename="<i>Algebra</i>.mp4")).json())["data"]["id"]
    hidden = (await (await upload(env, sample_bytes, filename="Hidden lesson.mp4")).json())["data"]["id"]
    resp = await env.client.get("/videos", headers=env.h("learner"))
    assert resp.status == 200
    assert "No videos are available yet." in await resp.text()
    await env.client.put(f"/api/v1/videos/{shown}/visibility", json={"facility_ids": [1]}, headers=env.h("admin"))
    page = await (await env.client.get("/videos", headers=env.h("learner"))).text()
    assert f'href="/videos/{shown}"' in page
    assert f'href="/videos/{hidden}"' not in page  # not visible in the learner's facility
    assert "<i>" not in page  # titles are escaped
    admin_page = await (await env.client.get("/videos", headers=env.h("admin"))).text()
    assert f'href="/videos/{hidden}"' in admin_page  # admins see every available video
    assert (await env.client.get("/videos?page=0", headers=env.h("learner"))).status == 400
