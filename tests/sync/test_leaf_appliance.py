"""The appliance's own embedded nats-server joins a hub as a leaf node (config only); the hub sources its queue."""

import asyncio

import nats
import pytest
from nats.js.api import ExternalStream, StreamConfig, StreamSource

from tests.sync.helpers import create_learner, install_header_auth
from tests.sync.natsproc import NatsServer, free_port

pytestmark = pytest.mark.slow


async def test_hub_sources_the_appliance_outbox_stream_over_the_leaf_link(tmp_path, app_client, config_factory):
    leaf_port = free_port()
    hub = await NatsServer(
        tmp_path,
        "hub",
        (f'leafnodes {{ listen: 127.0.0.1:{leaf_port} }}\njetstream {{ store_dir: "{tmp_path}/hub-js", domain: hub }}'),
    ).start()
    hub_nc = None
    try:
        client = await app_client(
            config_factory(
                bus={"leaf_remote_url": f"nats-leaf://127.0.0.1:{leaf_port}", "jetstream_domain": "facility1"},
                sync={"relay_interval_s": 0.05},
            )
        )
        install_header_auth(client)
        hub_nc = await nats.connect(hub.url)
        js = hub_nc.jetstream()
        await js.add_stream(
            StreamConfig(
                name="FACILITY1_ROSTER",
                sources=[StreamSource(name="SYNC_OUTBOX", external=ExternalStream(api="$JS.facility1.API"))],
            )
        )
        learners = [await create_learner(client) for _ in range(5)]
        async with asyncio.timeout(30):
            while (await js.stream_info("FACILITY1_ROSTER")).state.messages < 5:
                await asyncio.sleep(0.2)
        sub = await js.pull_subscribe("appliance.sync.outbox.>", durable="central", stream="FACILITY1_ROSTER")
        msgs = await sub.fetch(5, timeout=5)
        assert {m.headers["Nats-Msg-Id"] for m in msgs} == {str(i) for i in range(1, 6)}
        assert all(any(lr["uuid"].encode() in m.data for m in msgs) for lr in learners)
    finally:
        if hub_nc is not None:
            await hub_nc.close()
        await hub.stop()
