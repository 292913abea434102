"""In-memory vSwitch and compute drivers: the boundary the engine's unit tests fake.

They keep a model of the node (bridges, ports, flows, instances) that tests compare before
and after a transaction, and they fail on demand.
"""

import copy

from drivers.compute.base import InstanceInfo, PreparedSlotsDriver
from drivers.errors import DriverError, ResourceExists, ResourceNotFound
from drivers.vswitch.base import LsiInfo, PortInfo, VSwitchDriver


class FakeVSwitch(VSwitchDriver):
    def __init__(self):
        self.lsis: dict = {}        # name -> {"ports": {name: kind}, "flows": {cookie: Flow}, "ids": {}}
        self.calls: list = []
        self.fail_on: set = set()   # method names that raise
        self.port_ids: dict = {}

    def state(self):
        return copy.deepcopy({name: {"ports": l["ports"], "flows": l["flows"]}
                              for name, l in self.lsis.items()})

    def _call(self, name, *args):
        self.calls.append((name, args))
        if name in self.fail_on:
            raise DriverError("injected failure in %s" % name)

    def create_lsi(self, name, *, external_ids=None, ports=(), may_exist=False,
                   local_port=True):
        self._call("create_lsi", name)
        if name in self.lsis:
            if may_exist:
                return LsiInfo(name)
            raise ResourceExists("exists", resource=name)
        self.lsis[name] = {"ports": {p: "system" for p in ports}, "flows": {},
                           "ids": dict(external_ids or {})}
        return LsiInfo(name)

    def destroy_lsi(self, name):
        self._call("destroy_lsi", name)
        if name not in self.lsis:
            raise ResourceNotFound("no such LSI", resource=name)
        del self.lsis[name]

    def list_lsis(self, external_ids=None):
        return [LsiInfo(n, external_ids=l["ids"]) for n, l in self.lsis.items()
                if all(l["ids"].get(k) == v for k, v in (external_ids or {}).items())]

    def create_ports(self, lsi, ports):
        self._call("create_ports", lsi, [p["name"] for p in ports])
        for p in ports:
            if p["name"] in self.lsis[lsi]["ports"]:
                raise ResourceExists("port exists", resource=p["name"])
        for p in ports:
            self.lsis[lsi]["ports"][p["name"]] = p.get("kind", "system")
            self.port_ids[(lsi, p["name"])] = dict(p.get("external_ids") or {})
        return [PortInfo(lsi, p["name"], 1) for p in ports]

    def list_ports(self, lsi):
        return [PortInfo(lsi, name, 1, kind, self.port_ids.get((lsi, name), {}))
                for name, kind in self.lsis[lsi]["ports"].items()]

    def destroy_port(self, lsi, name):
        self._call("destroy_port", lsi, name)
        self.lsis[lsi]["ports"].pop(name)

    def port_stats(self, lsi):
        return {name: {"rx_packets": 3, "rx_bytes": 300, "tx_packets": 4, "tx_bytes": 400}
                for name in self.lsis[lsi]["ports"]}

    def flow_stats(self, lsi):
        return {cookie: (7, 700) for cookie in self.lsis[lsi]["flows"]}

    def info(self):
        return {"kind": "ovs", "version": "3.1.0", "datapath-type": "netdev",
                "port-technologies": ["veth", "tap"], "tunnel-types": ["gre"]}

    def dump_flows(self, lsi):
        return list(self.lsis[lsi]["flows"].values())

    def destroy_ports(self, lsi, names):
        self._call("destroy_ports", lsi, list(names))
        for name in names:
            self.lsis[lsi]["ports"].pop(name)

    def tag_ports(self, lsi, external_ids):
        self._call("tag_ports", lsi, sorted(external_ids))
        for name in external_ids:
            if name not in self.lsis[lsi]["ports"]:
                raise ResourceNotFound("no port %s" % name, resource=name)
        for name, ids in external_ids.items():
            self.port_ids[(lsi, name)] = dict(ids)

    def create_virtual_links(self, lsi_a, lsi_b, names, *, external_ids=None, ofports=None):
        self._call("create_virtual_links", lsi_a, lsi_b, list(names))
        for name in names:
            port_a, port_b = self.link_port_names(name)
            self.lsis[lsi_a]["ports"][port_a] = "patch"
            self.lsis[lsi_b]["ports"][port_b] = "patch"
            self.port_ids[(lsi_a, port_a)] = dict(external_ids or {})
            self.port_ids[(lsi_b, port_b)] = dict(external_ids or {})
        return []

    def destroy_virtual_links(self, links):
        self._call("destroy_virtual_links", [l.name for l in links])
        for link in links:
            self.lsis[link.lsi_a]["ports"].pop(link.port_a)
            self.lsis[link.lsi_b]["ports"].pop(link.port_b)

    def create_sap(self, lsi, name, sap_type, params, *, external_ids=None):
        self._call("create_sap", lsi, name, sap_type)
        self.lsis[lsi]["ports"][name] = sap_type
        return PortInfo(lsi, name, 1)

    def destroy_sap(self, lsi, name, sap_type):
        self._call("destroy_sap", lsi, name)
        self.lsis[lsi]["ports"].pop(name)

    def apply_flows(self, lsi, add=(), remove_cookies=()):
        self._call("apply_flows", lsi, len(add), len(remove_cookies))
        flows = self.lsis[lsi]["flows"]
        for cookie in remove_cookies:
            flows.pop(cookie, None)
        for flow in add:
            for field, value in flow.match:
                if field == "in_port" and value not in self.lsis[lsi]["ports"]:
                    raise DriverError("no port %s on %s" % (value, lsi))
            flows[flow.cookie] = flow


class FakeCompute(PreparedSlotsDriver):
    execution_environment = "native"

    def __init__(self, **_):
        self.instances: dict = {}
        self.calls: list = []
        self.fail_on: set = set()
        self.broken: dict = {}        # instance -> "lost" / "exited", until made or started
        self.keep_breaking = False    # ... or for good (a function that dies at once)

    def state(self):
        return copy.deepcopy(self.instances)

    def _call(self, name, instance):
        self.calls.append((name, instance))
        if name in self.fail_on:
            raise DriverError("injected failure in %s" % name, resource=instance)

    def create(self, spec, prepared=False):
        self._call("create", spec.instance)
        ports = [p.vswitch_ifname for p in spec.ports]
        if prepared:
            slot = self.instances.get(spec.instance)
            if slot is None or slot["state"] != "spare" or slot["ports"] != ports:
                raise ResourceExists("not a prepared slot", resource=spec.instance)
        elif spec.instance in self.instances:
            raise ResourceExists("exists", resource=spec.instance)
        self.instances[spec.instance] = {"state": "created", "ports": ports,
                                         "labels": dict(spec.labels), "spare": prepared,
                                         "cpu_cores": list(spec.cpu_cores),
                                         "spare_labels": slot["labels"] if prepared
                                         else None}
        return self.port_attachments(spec.template, spec.ports)

    def create_prepared(self, spec):
        return self.create(spec, prepared=True)

    def prepare(self, instance, vswitch_ifnames, labels=None):
        self._call("prepare", instance)
        if instance in self.instances:
            raise ResourceExists("exists", resource=instance)
        self.instances[instance] = {"state": "spare", "ports": list(vswitch_ifnames),
                                    "labels": dict(labels or {}), "spare": True}

    def release(self, instance):
        self._call("release", instance)
        slot = self.instances[instance]
        self.instances[instance] = {"state": "spare", "ports": slot["ports"],
                                    "labels": slot["spare_labels"], "spare": True}

    def start(self, instance):
        self._call("start", instance)
        self.instances[instance]["state"] = "running"
        if not self.keep_breaking:
            self.broken.pop(instance, None)

    def problems(self, instance):
        from drivers.watch import FUNCTION, Event
        what = self.broken.get(instance)
        return [Event(FUNCTION, instance, what, "broken by the test")] if what else []

    def stop(self, instance):
        self._call("stop", instance)
        self.instances[instance]["state"] = "stopped"

    def update(self, instance, add_ports=(), remove_ports=()):
        self._call("update", instance)
        ports = self.instances[instance]["ports"]
        ports.extend(p.vswitch_ifname for p in add_ports)
        return self.port_attachments({}, add_ports)

    def destroy(self, instance):
        self._call("destroy", instance)
        self.instances.pop(instance)

    def list_instances(self, labels=None):
        return [InstanceInfo(i, s["state"], labels=s.get("labels", {}))
                for i, s in self.instances.items()]
