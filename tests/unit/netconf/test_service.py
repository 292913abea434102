"""The NETCONF service in the agent: its place among the services, start, banner, stop."""

import asyncio

from agent.config import load
from agent.daemon import Agent
from agent.netconf import NetconfService
from agent.netconf.nacm import default_policy
from agent.network.service import VSwitchService


def test_the_agent_starts_netconf_after_the_vswitch_compute_and_engine(tmp_path):
    from agent.compute.service import ComputeService
    from agent.engine.service import EngineService
    from agent.publish.feed import FeedService
    from agent.publish.service import EventService
    config = load(None, {"state": {"dir": str(tmp_path)}})
    services = Agent(config).build_services()
    assert [type(s) for s in services] == [EventService, VSwitchService, ComputeService,
                                           EngineService, NetconfService, FeedService]
    # the feed reads the description through the datastores, on the agent's bus
    assert services[5].netconf is services[4] and services[5].bus is services[0].bus
    events, engine, netconf = services[0], services[3], services[4]
    # the datastores see the engine's providers list, filled in when the engine starts
    assert netconf.providers is engine.providers
    # one event path: the engine and the NETCONF server publish on the same bus
    assert engine.bus is events.bus and netconf.events is events


def test_start_banner_stop(tmp_path):
    config = load(None, {"state": {"dir": str(tmp_path)},
                         "netconf": {"address": "127.0.0.1", "port": 0}})

    async def main():
        service = NetconfService(config)
        await service.start()
        try:
            assert service.port > 0
            banner = service.banner()
            key = tmp_path / "users" / "admin" / "id_ed25519"
            assert banner[0] == "NETCONF over SSH on 127.0.0.1 port %d: user admin, key %s" \
                % (service.port, key)
            assert banner[1] == "  ssh -i %s -p %d -s admin@127.0.0.1 netconf" % (key, service.port)
            # a first start: running holds the shipped access control alone, admin an
            # operator (agent/netconf/nacm/shipped.py default_policy)
            running = service.datastores.running
            assert b"<user-name>admin</user-name>" in running.print()
            assert (tmp_path / "startup.xml").read_bytes() == default_policy(["admin"]).encode()
        finally:
            await service.stop()
    asyncio.run(main())
    assert (tmp_path / "ssh_host_ed25519_key").exists()


def test_the_datastores_reach_every_method_of_the_agents_engine(tmp_path):
    """Nothing stands between the agent's datastores and its engine that could miss one of
    the TransactionEngine methods: each one the datastores call reaches the engine."""
    import inspect

    from agent.engine import TransactionEngine
    interface = sorted(name for name, member in vars(TransactionEngine).items()
                       if inspect.isfunction(member) and not name.startswith("_"))
    assert {"validate", "read", "release", "apply"} <= set(interface)
    calls = []

    def recorder(name):
        return lambda self, *args: calls.append(name)
    Recording = type("Recording", (TransactionEngine,), {n: recorder(n) for n in interface})

    config = load(None, {"state": {"dir": str(tmp_path)},
                         "netconf": {"address": "127.0.0.1", "port": 0}})
    services = Agent(config).build_services()
    events, engine_service, netconf = services[0], services[3], services[4]
    engine_service.engine = Recording()        # what its start() makes, without the daemons

    async def main():
        await events.start()
        await netconf.start()
        try:
            calls.clear()                      # the datastores' boot applied running
            engine = netconf.datastores.engine
            for name in interface:
                method = getattr(engine, name)
                method(*[None] * len(inspect.signature(method).parameters))
        finally:
            await netconf.stop()
            await events.stop()
    asyncio.run(main())
    assert calls == interface
