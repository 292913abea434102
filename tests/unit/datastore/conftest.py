"""A libyang context with the test module, and builders of trees and edits."""

import asyncio
from pathlib import Path

import pytest
from lxml import etree

from agent.datastore import DataTree, Edit
from agent.model import create_context

TEST_YANG = Path(__file__).resolve().parents[2] / "yang"
NS = "urn:composer-nc:test:nc-test"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"


@pytest.fixture(scope="session")
def ctx():
    return create_context(extra_dirs=[TEST_YANG], extra_modules=["nc-test"])


def top(body: str, attrs: str = "") -> str:
    return ('<top xmlns="%s" xmlns:t="%s" xmlns:nc="%s" xmlns:yang="urn:ietf:params:xml:ns:yang:1"'
            '%s>%s</top>' % (NS, NS, NC, attrs, body))


def tree(ctx, xml: str, validate: bool = True) -> DataTree:
    return DataTree.parse(ctx, xml, validate=validate)


def edit(ctx, xml: str, default_operation: str = "merge") -> Edit:
    config = etree.fromstring(('<config xmlns="%s">%s</config>' % (NC, xml)).encode())
    return Edit.from_xml(ctx, config, default_operation)


def text(t: DataTree, with_defaults: str = "explicit") -> str:
    return t.print(with_defaults).decode()


def run(coro):
    return asyncio.run(coro)
