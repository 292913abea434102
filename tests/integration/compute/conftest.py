"""Fixtures for the compute driver tests: the built packages, a lab, a native driver."""

import itertools

import pytest

from drivers.compute.native import NativeDriver
from nsf import packages
from tests.netlab import Lab

_TAGS = itertools.count(1)


@pytest.fixture(scope="session")
def nsf_packages(session_tmp):
    """{name: .tgz path} of the shipped native function packages."""
    return packages.build(session_tmp / "nsf")


@pytest.fixture
def lab():
    """A lab whose names are PREFIX + 't<n>' + suffix, unique in the session."""
    with Lab("t%d" % next(_TAGS)) as lab:
        yield lab


@pytest.fixture
def native(lab, session_tmp):
    """A NativeDriver whose node is a fresh namespace; destroys what the test left."""
    driver = NativeDriver(str(session_tmp / ("native-%s" % lab.tag)), netns=lab.netns("n"))
    yield driver
    for info in driver.list_instances():
        driver.destroy(info.instance)
