"""An event's notification as NETCONF XML and RFC 7951 JSON, checked by libyang."""

import json

import pytest

from agent.model import create_context
from agent.publish import Event
from agent.publish.render import RenderError, notification_json, notification_xml

CHANGE = "ietf-netconf-notifications:netconf-config-change"
STATUS = "composer-sffg:function-status-change"


@pytest.fixture(scope="module")
def ctx():
    return create_context()


def test_xml_and_json_of_the_same_content(ctx):
    event = Event(STATUS, {STATUS: {
        "graph-id": "g1", "function-id": "fw", "status": "composer-types:degraded",
        "previous-status": "composer-types:running", "implementation": "native-firewall",
        "execution-environment": "composer-types:native", "cpu-core": [1], "restart-count": 2,
        "status-reason": "function fw: its namespace was deleted"}})
    xml = notification_xml(ctx, event)
    assert xml.startswith(b'<notification xmlns="urn:ietf:params:xml:ns:netconf:notification'
                          b':1.0"><eventTime>%s</eventTime><function-status-change'
                          % event.event_time.encode())
    document = json.loads(notification_json(ctx, event))["ietf-restconf:notification"]
    assert document["eventTime"] == event.event_time
    assert document[STATUS]["restart-count"] == 2
    assert document[STATUS]["status"] == "composer-types:degraded"
    assert notification_xml(ctx, event) is xml               # made once


def test_content_that_does_not_fit_the_model_is_refused(ctx):
    event = Event(CHANGE, {CHANGE: {"datastore": "nowhere"}})
    with pytest.raises(RenderError):
        notification_xml(ctx, event)
