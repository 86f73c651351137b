"""Scale beyond one appliance: a leaf nats-server's event stream is sourced by a hub, link cuts included."""

import asyncio

import nats
import pytest
from nats.js.api import ExternalStream, StreamConfig, StreamSource

from tests.sync.natsproc import CuttableLink, NatsServer, free_port

pytestmark = pytest.mark.slow


async def hub_count(js, name: str) -> int:
    return (await js.stream_info(name)).state.messages


async def wait_for(predicate, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.1)


async def test_events_published_while_link_is_cut_reach_the_hub(tmp_path):
    hub_leaf_port = free_port()
    # no_advertise: the hub must not gossip its direct address, or the leaf bypasses the cuttable link.
    hub = await NatsServer(
        tmp_path,
        "hub",
        (
            f"leafnodes {{ listen: 127.0.0.1:{hub_leaf_port}, no_advertise: true }}\n"
            f'jetstream {{ store_dir: "{tmp_path}/hub-js", domain: hub }}'
        ),
    ).start()
    link = CuttableLink(hub_leaf_port)
    await link.restore()
    leaf = await NatsServer(
        tmp_path,
        "leaf",
        (
            f'leafnodes {{ remotes = [ {{ url: "nats-leaf://127.0.0.1:{link.port}" }} ] }}\n'
            f'jetstream {{ store_dir: "{tmp_path}/leaf-js", domain: leaf1 }}'
        ),
    ).start()
    leaf_nc = await nats.connect(leaf.url)
    hub_nc = await nats.connect(hub.url)
    try:
        leaf_js, hub_js = leaf_nc.jetstream(), hub_nc.jetstream()
        await leaf_js.add_stream(StreamConfig(name="EVENTS", subjects=["appliance.>"]))
        await hub_js.add_stream(
            StreamConfig(
                name="FACILITY_LEAF1",
                sources=[StreamSource(name="EVENTS", external=ExternalStream(api="$JS.leaf1.API"))],
            )
        )
        for i in range(10):
            await leaf_js.publish("appliance.sync.event", f"before-{i}".encode(), headers={"Nats-Msg-Id": f"b{i}"})
        await wait_for(lambda: _equals(hub_js, 10))

        await link.cut()
        for i in range(25):  # the leaf's JetStream keeps working while the uplink is gone
            await leaf_js.publish("appliance.sync.event", f"during-{i}".encode(), headers={"Nats-Msg-Id": f"d{i}"})
        await asyncio.sleep(1.5)
        assert await hub_count(hub_js, "FACILITY_LEAF1") == 10

        await link.restore()
        await wait_for(lambda: _equals(hub_js, 35), timeout=30)
        sub = await hub_js.pull_subscribe("appliance.>", durable="audit", stream="FACILITY_LEAF1")
        bodies = []
        while len(bodies) < 35:
            bodies += [m.data.decode() for m in await sub.fetch(35 - len(bodies), timeout=5)]
        assert bodies == [f"before-{i}" for i in range(10)] + [f"during-{i}" for i in range(25)]
        await asyncio.sleep(0.5)
        assert await hub_count(hub_js, "FACILITY_LEAF1") == 35  # nothing duplicated after the re-link
    finally:
        await leaf_nc.close()
        await hub_nc.close()
        await leaf.stop()
        await link.close()
        await hub.stop()


async def _equals(js, n: int) -> bool:
    return await hub_count(js, "FACILITY_LEAF1") == n
