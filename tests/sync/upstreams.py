"""Every upstream that has a fake, as one table: the engine's reliability tests run against each.

A fake joins the table with one line if it follows the fakes' common shape (tests/fakes/canvas.py and
tests/fakes/moodle.py do): `await Fake().start()` / `await fake.stop()`, `base_url`, switches `down(mode)`
("refuse" or "503"), `up()`, `slow(s)`, `fail_share(p)`, counters `injected`, and `state` with
`user_creates` (keyed by the appliance uuid the connector stores upstream), `enrollment_creates`,
`rejected_writes` and `add_course(name) -> {"id": ...}`.
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


UPSTREAMS = {
    "canvas": Upstream("canvas", "tests.fakes.canvas:FakeCanvas", "canvas_oss", {"access_token": "canvas-token"}, "1"),
    "moodle": Upstream("moodle", "tests.fakes.moodle:FakeMoodle", "moodle", {"token": "moodletoken"}),
}
