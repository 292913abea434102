"""Alarms (composer-alarms): what is broken on the node or above a threshold, raised when
it happens and cleared when it is over, as alarm-notification events on the bus (so the
NETCONF stream, YANG-push on /alarms and the log get them) and as /alarms state.

- From Health, at each of its changes (a watch reported a fault, the converger found,
  repaired or gave up on one): a function's process that exited is
  function-process-gone (major; the converger restarts it), a function's or a SAP's port
  that left its LSI is port-down (major), a node-wide fault (a vSwitch daemon exited) is
  node-fault (critical). When Health no longer has the fault, the alarm is cleared.
- Thresholds ([alarms] memory-percent, cpu-percent): the memory in use and the CPU load
  (the 1-minute load average over the cores) are sampled every [alarms] interval
  seconds (they cannot be raised at a source) and raise memory-high / cpu-high
  (warning) above the threshold, cleared below it. The same samples crossing a multiple
  of [alarms] resource-step percent (up or down) publish a composer-domain:domain event
  naming the resource's leaf (memory-free, cpu-load), so that on-change subscriptions to
  the domain's resources hear of it without polling.
- A deployed graph's monitoring expression (agent/model/monitoring.py, checked at commit):
  each condition that holds for one of its functions raises monitoring-threshold
  (warning) naming the function, evaluated when the measured value changes at its source
  (process-restarts: Health counts a restart) and after each sample of what the
  functions use (cpu-percent, memory-mb: the engine's FunctionUsage, sampled every
  interval seconds with the thresholds), cleared when it no longer holds or the graph is
  gone.
The list keeps every active alarm and the last KEEP_CLEARED cleared ones.
"""

import logging
import threading

from ..domain.description import cpu_load_percent, memory_used_percent
from ..model.data import parse
from ..model.monitoring import MonitoringError
from ..model.monitoring import parse as parse_monitoring
from ..publish import Change, Event, now, rfc3339

LOG = logging.getLogger(__name__)

KIND = "composer-alarms:alarm-notification"
ALARM_PATH = "/composer-alarms:alarms/alarm[id='%s']"
KEEP_CLEARED = 100
FUNCTION = "/composer-sffg:service-graphs/service-graph[id='%s']/functions/function[id='%s']"
GRAPH = "/composer-sffg:service-graphs/service-graph[id='%s']"
NODE = "/composer-domain:domain/resources"
DOMAIN_KIND = "composer-domain:domain"
RESOURCE_LEAVES = (NODE + "/state/memory-free", NODE + "/state/cpu-load")

# Health fault kind -> (alarm type, severity)
# The alarms check() raises and clears (the others are sampled)
CHECKED = ("function-process-gone", "port-down", "node-fault", "monitoring-threshold")

FAULT_ALARMS = {"process": ("function-process-gone", "major"), "port": ("port-down", "major"),
                "sap": ("port-down", "major")}


def _number(value) -> str:
    return "%d" % value if float(value).is_integer() else "%.1f" % value


class Alarms:
    """See the module docstring. publish: a callable taking an Event (Bus.publish)."""

    def __init__(self, engine, publish, memory_percent: float = 0, cpu_percent: float = 0,
                 interval: float = 5.0, sample=None, resource_step: float = 0):
        self.engine = engine
        self.publish = publish
        self.memory_percent = memory_percent
        self.cpu_percent = cpu_percent
        self.resource_step = resource_step
        self._steps: tuple | None = None             # (memory, cpu) // resource_step, last
        self.interval = interval
        self.sample = sample or (lambda: (memory_used_percent(), cpu_load_percent()))
        self._lock = threading.Lock()
        self._alarms: dict[str, dict] = {}          # id -> the state leaves
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- raising and clearing -----------------------------------------------------------
    def _raise(self, kind: str, resource: str, severity: str, text: str) -> None:
        ident = "%s %s" % (kind, resource)
        found = self._alarms.get(ident)
        if found is not None and not found["cleared"]:
            found["text"] = text        # still raised (said otherwise, maybe): no news
            return
        count = found["raise-count"] + 1 if found else 1
        found = {"id": ident, "type": kind, "resource": resource, "severity": severity,
                 "text": text, "raised-at": rfc3339(now()), "cleared": False,
                 "raise-count": count}
        self._alarms.pop(ident, None)
        self._alarms[ident] = found
        self._tell(found)

    def _clear(self, ident: str) -> None:
        found = self._alarms.get(ident)
        if found is None or found["cleared"]:
            return
        found["cleared"] = True
        found["cleared-at"] = rfc3339(now())
        self._tell(found)
        cleared = [k for k, a in self._alarms.items() if a["cleared"]]
        for old in cleared[:max(0, len(cleared) - KEEP_CLEARED)]:
            del self._alarms[old]

    def _tell(self, alarm: dict) -> None:
        LOG.warning("alarm %s %s: %s", "cleared" if alarm["cleared"] else "raised",
                    alarm["id"], alarm["text"])
        body = dict(alarm)
        self.publish(Event(KIND, {KIND: body},
                           [Change("operational", ALARM_PATH % alarm["id"].replace("'", ""))]))

    # -- sources --------------------------------------------------------------------------
    def check(self, graph=None) -> None:
        """Health changed (any thread): raise what it has, clear what it no longer has."""
        try:
            health = self.engine.health
            wanted = {}
            for gid in sorted(health.broken()):
                for fault in health.faults(gid):
                    kind = FAULT_ALARMS.get(fault.kind)
                    if kind is None:
                        continue
                    resource = FUNCTION % (gid, fault.function) if fault.function \
                        else GRAPH % gid
                    if fault.kind in ("port", "sap"):
                        resource += " port %s" % fault.resource
                    wanted["%s %s" % (kind[0], resource)] = (kind[0], resource, kind[1],
                                                             str(fault))
            for name, reason in sorted(health.node_faults().items()):
                resource = "%s/%s" % (NODE, name)
                wanted["node-fault %s" % resource] = ("node-fault", resource, "critical",
                                                      reason)
            wanted.update(self._monitored())
            with self._lock:
                for args in wanted.values():
                    self._raise(*args)
                for ident, alarm in list(self._alarms.items()):
                    if alarm["type"] in CHECKED and ident not in wanted:
                        self._clear(ident)
        except Exception:  # noqa: BLE001 - an alarm lost must not stop a repair
            LOG.exception("alarms failed")

    def _monitored(self) -> dict:
        """The monitoring-threshold alarms the deployed graphs' expressions ask for now."""
        wanted = {}
        health = self.engine.health
        usage = getattr(self.engine, "usage", None)
        for gid, deployed in sorted(getattr(self.engine, "deployed", {}).items()):
            try:
                conditions = parse_monitoring(deployed.graph.monitoring)
            except MonitoringError:     # refused at commit; one deployed before is skipped
                continue
            for fid in sorted(deployed.functions) if conditions else ():
                values = {"process-restarts": health.restarts(gid, fid)}
                if usage is not None:
                    values.update(usage.figures(gid, fid))
                resource = FUNCTION % (gid, fid)
                for condition in conditions:
                    value = values.get(condition.metric)      # None: not measured (yet)
                    if value is not None and condition.holds(value):
                        wanted["monitoring-threshold %s %s" % (resource, condition)] = (
                            "monitoring-threshold", "%s %s" % (resource, condition),
                            "warning", "function %s of graph %s: %s is %s (%s)"
                            % (fid, gid, condition.metric, _number(value), condition))
        return wanted

    def sample_once(self) -> None:
        """One sample: what the functions use (then the monitoring expressions that
        compare it), and the node's thresholds."""
        usage = getattr(self.engine, "usage", None)
        if usage is not None:
            usage.sample(dict(getattr(self.engine, "deployed", {})))
            self.check()
        if not (self.memory_percent or self.cpu_percent or self.resource_step):
            return
        memory, cpu = self.sample()
        self._crossed(memory, cpu)
        with self._lock:
            for kind, value, limit, what in (("memory-high", memory, self.memory_percent,
                                              "memory in use"),
                                             ("cpu-high", cpu, self.cpu_percent, "CPU load")):
                if not limit:
                    continue
                ident = "%s %s" % (kind, NODE)
                if value > limit:
                    self._raise(kind, NODE, "warning", "%s %.0f%% is above %.0f%%"
                                % (what, value, limit))
                else:
                    self._clear(ident)

    def _crossed(self, memory: float, cpu: float) -> None:
        """A domain event for each resource whose sample crossed a step since the last."""
        if not self.resource_step:
            return
        steps = (int(memory // self.resource_step), int(cpu // self.resource_step))
        last, self._steps = self._steps, steps
        if last is None:
            return                  # the first sample is the baseline
        changes = [Change("operational", leaf)
                   for leaf, now_at, was_at in zip(RESOURCE_LEAVES, steps, last)
                   if now_at != was_at]
        if changes:
            self.publish(Event(DOMAIN_KIND, None, changes))

    def start(self) -> None:
        """Sample in a thread of its own."""
        self._thread = threading.Thread(target=self._loop, name="alarms", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample_once()
            except Exception:  # noqa: BLE001 - sampling goes on
                LOG.exception("sampling the resources failed")
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    # -- state --------------------------------------------------------------------------
    def build(self, ctx):
        """/composer-alarms:alarms (a StateProvider's build)."""
        import json
        with self._lock:
            entries = [{"id": a["id"], "state": dict(a)} for a in self._alarms.values()]
        if not entries:
            return None
        text = json.dumps({"composer-alarms:alarms": {"alarm": entries}})
        return parse(ctx, text, "json", config_only=False, validate=False)
