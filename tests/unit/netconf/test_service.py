"""The NETCONF service in the agent: its place among the services, start, banner, stop."""

import asyncio

from agent.config import load
from agent.daemon import Agent
from agent.netconf import NetconfService
from agent.network.service import VSwitchService


def test_the_agent_starts_netconf_after_the_vswitch(tmp_path):
    config = load(None, {"state": {"dir": str(tmp_path)}})
    services = Agent(config).build_services()
    assert [type(s) for s in services] == [VSwitchService, NetconfService]


def test_start_banner_stop(tmp_path):
    config = load(None, {"state": {"dir": str(tmp_path)},
                         "netconf": {"address": "127.0.0.1", "port": 0}})

    async def main():
        service = NetconfService(config)
        await service.start()
        try:
            assert service.port > 0
            banner = service.banner()
            assert "-p %d admin@127.0.0.1" % service.port in banner[0]
            assert str(tmp_path / "users" / "admin" / "id_ed25519") in banner[1]
            assert service.datastores.running.print() == b""
        finally:
            await service.stop()
    asyncio.run(main())
    assert (tmp_path / "ssh_host_ed25519_key").exists()
