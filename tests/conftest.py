"""Suite-wide fixtures: root checks, a simulated node with a private OVS, the leak check.

tests/unit runs anywhere; tests/integration and tests/e2e need root and the real daemons.
A "node" is a network namespace: the session's private ovs-vswitchd runs inside it (two
userspace vswitchd in one namespace collide), with every port it switches.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from drivers.vswitch.ovs_process import PrivateOVS
from tests import dockerlab, resources
from tests.resources import PREFIX

ROOT_DIRS = ("integration", "e2e")


def pytest_report_header(config):
    return "composer test prefix: %s (COMPOSER_TEST_PREFIX), temporary files in %s" % (
        PREFIX, resources.TMP_ROOT)


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = Path(str(item.fspath)).parts
        if any(d in parts for d in ROOT_DIRS):
            item.add_marker(pytest.mark.root)
            if os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(reason="needs root and real daemons"))


@pytest.fixture(scope="session")
def session_tmp():
    """A short temporary directory (unix socket paths are limited to 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="%s-" % PREFIX, dir=resources.TMP_ROOT))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _netns(name: str):
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)


@pytest.fixture(scope="session")
def node_netns():
    """The network namespace of the simulated node under test."""
    name = "%snode" % PREFIX
    if name in resources.netns_names():
        subprocess.run(["ip", "netns", "del", name], check=False)
    _netns(name)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture(scope="session")
def private_ovs(session_tmp, node_netns):
    """A private ovsdb-server + ovs-vswitchd for the session, vswitchd inside node_netns."""
    ovs = PrivateOVS(session_tmp / "ovs", netns=node_netns)
    ovs.start()
    yield ovs
    ovs.stop()


def pytest_sessionfinish(session, exitstatus):
    if os.geteuid() != 0:
        return
    left = dockerlab.leaks()
    dockerlab.stop()        # the session's own dockerd, if a test started it
    left += resources.leaks(PREFIX, run_root=str(resources.TMP_ROOT / ("%s-" % PREFIX)))
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = ["resources left behind by the test session:"] + ["  " + x for x in left]
        if reporter:
            reporter.write_line("\n".join(lines), red=True)
        else:
            print("\n".join(lines))
        session.exitstatus = 1
