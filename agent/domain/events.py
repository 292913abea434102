"""Domain events: what of the domain description a change of the deployed graphs or of the
templates changed, published as a composer-domain:domain event (no notification of its
own: its changes name the subtrees, for on-change consumers such as YANG-push).

check() runs in the engine's thread after each of its changes; it compares, with what it
saw last: the free VLAN ids of each LSI-0 interface (vlan SAPs committed or removed), the
functional capabilities and their implementations (templates configured), and the free
cores (functions deployed or removed). Resource thresholds (memory, CPU load) are the
alarms' (they publish on the same bus).
"""

import logging
import threading

from ..publish import Change, Event
from .description import used_vlans

LOG = logging.getLogger(__name__)

KIND = "composer-domain:domain"
ENDPOINT = "/composer-domain:domain/big-switch/endpoints/endpoint[name='%s']/free-vlans"
CAPABILITIES = "/composer-domain:domain/functional-capabilities"
CORES = "/composer-domain:domain/resources/state/cpu-cores-free"


class DomainEvents:
    """See the module docstring. publish: a callable taking an Event (Bus.publish)."""

    def __init__(self, engine, publish):
        self.engine = engine
        self.publish = publish
        self._lock = threading.Lock()
        self._last = None

    def _facts(self) -> tuple:
        engine = self.engine
        compute = engine.compute
        vlans = {name: frozenset(ids) for name, ids in used_vlans(engine.deployed).items()}
        capabilities = tuple(sorted(
            (name, tuple(sorted(t["id"] for t in templates)))
            for name, templates in compute.repository.capabilities().items()))
        cores = compute.scheduler.free_cores(engine.deployed)
        return vlans, capabilities, cores

    def check(self) -> None:
        try:
            with self._lock:
                facts = self._facts()
                last, self._last = self._last, facts
                if last is None or last == facts:
                    return
                changes = []
                vlans, old_vlans = facts[0], last[0]
                for name in sorted(set(vlans) | set(old_vlans)):
                    if vlans.get(name, frozenset()) != old_vlans.get(name, frozenset()):
                        changes.append(Change("operational", ENDPOINT % name))
                if facts[1] != last[1]:
                    changes.append(Change("operational", CAPABILITIES))
                if facts[2] != last[2]:
                    changes.append(Change("operational", CORES))
                self.publish(Event(KIND, None, changes))
        except Exception:  # noqa: BLE001 - an event lost must not fail a commit
            LOG.exception("domain events failed")
