"""Every upstream that has a fake, as one table: the engine's reliability tests run against each.

A fake joins the table with one line if it follows the fakes' common shape (tests/fakes/canvas.py and
tests/fakes/moodle.py do): `await Fake().start()` / `await fake.stop()`, `base_url`, switches `down(mode)`
("refuse" or "503"), `up()`, `slow(s)`, `fail_share(p)`, counters `injected`, and `state` with
`user_creates` (keyed by the appliance uuid the connector stores upstream), `enrollment_creates`,
`rejected_writes` and `add_course(name) -> {"id": ...}`. The fake Brightspace predates that shape: a small
adapter below gives it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Upstream:
    """One connector's fake and what a provider of it needs."""

    name: str
    fake: str  # "module:Class" of the fake server
    type: str  # provider type
    credentials: dict[str, str] = field(default_factory=dict)
    account_id: str = ""

    def make(self) -> Any:
        """A fresh (not yet started) fake."""
        module, _, cls = self.fake.partition(":")
        return getattr(importlib.import_module(module), cls)()

    async def start(self) -> Any:
        """A started fake on a free loopback port."""
        return await self.make().start()

    def provider_body(self, fake: Any, name: str | None = None, **extra: Any) -> dict[str, Any]:
        """The POST /api/v1/providers body for a provider of this fake."""
        return {"type": self.type, "name": name or self.name.title(), "base_url": fake.base_url,
                "account_id": self.account_id, "credentials": dict(self.credentials), **extra}

    @staticmethod
    def add_course(fake: Any, name: str) -> str:
        """Create a course upstream; its external id."""
        return str(fake.state.add_course(name)["id"])


class BrightspaceShape:
    """The fake Brightspace in the common shape: its counters live on the fake itself and its outage switches
    are `go_down`/`go_up` (a 503 outage is a run of queued 503 answers, cleared when it comes back up)."""

    def __init__(self) -> None:
        from tests.fakes.brightspace import FakeBrightspace

        self.fake = FakeBrightspace()
        self.state = self

    async def start(self) -> BrightspaceShape:
        await self.fake.start()
        return self

    async def stop(self) -> None:
        await self.fake.stop()

    @property
    def base_url(self) -> str:
        return str(self.fake.base_url)

    @property
    def injected(self) -> Any:
        return self.fake.injected

    @property
    def requests(self) -> Any:
        return self.fake.requests

    @property
    def user_creates(self) -> Any:
        return self.fake.user_creates

    @property
    def enrollment_creates(self) -> Any:
        return self.fake.enroll_creates

    @property
    def rejected_writes(self) -> Any:
        return self.fake.rejected_writes

    async def down(self, mode: str = "refuse") -> None:
        if mode == "refuse":
            await self.fake.go_down()
        else:
            self.fake.failures[:] = [503] * 500
            self.fake.injected["503"] += 1

    async def up(self) -> None:
        self.fake.failures.clear()
        await self.fake.go_up()

    def slow(self, seconds: float) -> None:
        self.fake.slow(seconds)

    def fail_share(self, share: float) -> None:
        self.fake.fail_share(share)

    def add_course(self, name: str) -> dict[str, Any]:
        return {"id": int(self.fake.add_course(name)["Identifier"])}


BRIGHTSPACE_KEYS = {"app_id": "app-id-1", "app_key": "app-key-secret-1", "user_id": "user-id-1",
                    "user_key": "user-key-secret-1"}  # what the fake Brightspace accepts

UPSTREAMS = {
    "canvas": Upstream("canvas", "tests.fakes.canvas:FakeCanvas", "canvas_oss", {"access_token": "canvas-token"}, "1"),
    "moodle": Upstream("moodle", "tests.fakes.moodle:FakeMoodle", "moodle", {"token": "moodletoken"}),
    "brightspace": Upstream("brightspace", "tests.sync.upstreams:BrightspaceShape", "brightspace", BRIGHTSPACE_KEYS),
}
