"""Fixtures of the vSwitch driver tests: the driver on the session's private OVS, a lab of
namespaces per test, and a clean switch after every test."""

import pytest

from drivers import registry
from tests.integration.drivers.vswitch.lab import Lab


@pytest.fixture(scope="session")
def ovs_driver(private_ovs, node_netns):
    """The OVS driver as the agent creates it, on the session's private OVS."""
    driver = registry.create("vswitch", "ovs", db_socket=private_ovs.db_socket,
                             run_dir=str(private_ovs.run_dir), netns=node_netns,
                             datapath_type="netdev")
    driver.check()
    yield driver
    driver.close()


@pytest.fixture
def driver(ovs_driver):
    """The driver; every LSI a test leaves behind is destroyed after it."""
    yield ovs_driver
    for endpoint in ovs_driver.list_tunnel_endpoints():
        ovs_driver.destroy_tunnel_endpoint(endpoint.lsi, endpoint.name)
    for lsi in ovs_driver.list_lsis():
        ovs_driver.destroy_lsi(lsi.name)


@pytest.fixture
def lab():
    lab = Lab()
    yield lab
    lab.close()
