"""The domain description: the node as a big switch, what it can run, what it is made of,
what it has left. Built with the generated bindings (the typed view of composer-domain),
handed to the datastores as operational state.
"""

import logging
import os
import platform
import time
from decimal import Decimal

from bindings import composer_domain

from ..model.binding import to_xml
from ..model.data import parse

LOG = logging.getLogger(__name__)


def _meminfo() -> dict:
    out = {}
    try:
        with open("/proc/meminfo") as stream:
            for line in stream:
                key, _, rest = line.partition(":")
                out[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return out


def memory_available() -> int:
    return _meminfo().get("MemAvailable", 0)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as stream:
            for line in stream:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _cpu_load_percent() -> float:
    cores = os.cpu_count() or 1
    try:
        load1 = os.getloadavg()[0]
    except OSError:
        return 0.0
    return round(min(100.0, load1 / cores * 100.0), 2)


def _interfaces(netns: str | None) -> dict:
    """name -> (first IPv4 address, up?) in the node's namespace."""
    from pyroute2 import IPRoute, NetNS
    out = {}
    try:
        ip = NetNS(netns) if netns else IPRoute()
    except Exception as exc:  # noqa: BLE001 - the description is best effort
        LOG.debug("cannot read interfaces: %s", exc)
        return out
    try:
        names = {}
        for link in ip.get_links():
            names[link["index"]] = (link.get_attr("IFLA_IFNAME"),
                                    bool(link["flags"] & 1))
        addresses = {}
        for addr in ip.get_addr(family=2):
            addresses.setdefault(addr["index"], addr.get_attr("IFA_ADDRESS"))
        for index, (name, up) in names.items():
            out[name] = (addresses.get(index), up)
    finally:
        ip.close()
    return out


def vlan_ranges(used) -> list:
    """[(first, last)] of the VLAN ids 1..4094 not in used."""
    ranges, start = [], None
    for vid in range(1, 4096):
        free = vid <= 4094 and vid not in used
        if free and start is None:
            start = vid
        elif not free and start is not None:
            ranges.append((start, vid - 1))
            start = None
    return ranges


class DomainDescription:
    """Builds the composer-domain operational tree from the agent's managers."""

    def __init__(self, config, network, compute, engine, started: float | None = None):
        self.config = config
        self.network = network
        self.compute = compute
        self.engine = engine
        self.started = started or time.time()

    def binding(self):
        from agent import __version__
        model = composer_domain()
        domain = model.domain
        node = self.config.data["node"]
        state = domain.state
        state._set_node_id(self.config.node_id)
        if node["name"]:
            state._set_name(node["name"])
        if node["management-address"]:
            state._set_management_address(node["management-address"])
        state._set_agent_version(__version__)
        state._set_boot_time(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)))

        # big switch
        used_vlans: dict = {}
        for dg in self.engine.deployed.values():
            for sap in dg.graph.saps.values():
                if sap.type == "vlan":
                    used_vlans.setdefault(sap.if_name, set()).add(sap.vlan_id)
        facts = _interfaces(self.config.get("ovs", "netns") or None)
        neighbours = self.config.get("lsi0", "neighbors")
        gre = "gre" in (self.network.driver.info() or {}).get("tunnel-types", ("gre",))
        for name in self.network.lsi0_interfaces:
            endpoint = domain.big_switch.endpoints.endpoint.add(name)
            es = endpoint.state
            es._set_name(name)
            es._set_interface(name)
            if name in neighbours:
                es._set_neighbor_domain(neighbours[name])
            address, up = facts.get(name, (None, False))
            if address:
                es._set_ipv4_address(address)
            es._set_gre_support(gre)
            es._set_oper_up(up)
            for first, last in vlan_ranges(used_vlans.get(name, set())):
                vr = endpoint.free_vlans.range.add(first)
                vr.state._set_first(first)
                vr.state._set_last(last)

        # functional capabilities
        for capability, templates in sorted(self.compute.repository.capabilities().items()):
            fc = domain.functional_capabilities.functional_capability.add(capability)
            fc.state._set_name(capability)
            counts = [int(t.get("port-count", 0)) for t in templates]
            fc.state._set_min_ports(min(counts))
            fc.state._set_max_ports(max(counts))
            for template in templates:
                impl = fc.implementations.implementation.add(template["id"])
                s = impl.state
                s._set_template(template["id"])
                env = template.get("execution-environment")
                if env:
                    s._set_execution_environment(env)
                s._set_port_count(int(template.get("port-count", 0)))
                if template.get("port-technology"):
                    s._set_port_technology(template["port-technology"])
                reasons = self.compute.availability(template) if env else ["decomposition"]
                s._set_available(not reasons)
                if reasons:
                    s._set_unavailable_reason("; ".join(reasons))

        # infrastructure
        infra = domain.infrastructure_capabilities.state
        infra._set_cpu_architecture(platform.machine())
        model_name = _cpu_model()
        if model_name:
            infra._set_cpu_model(model_name)
        for env in self.compute.usable_environments():
            infra.execution_environment.append(env)
        info = self.network.driver.info() or {}
        infra._set_vswitch(info.get("kind", "ovs"))
        if info.get("version"):
            infra._set_vswitch_version(info["version"])
        if info.get("datapath-type"):
            infra._set_datapath_type(info["datapath-type"])
        for technology in info.get("port-technologies", ()):
            infra.port_technology.append(technology)

        # resources
        res = domain.resources.state
        scheduler = self.compute.scheduler
        res._set_cpu_cores_total(scheduler.cores)
        res._set_cpu_cores_free(scheduler.free_cores(self.engine.deployed))
        res._set_cpu_load(Decimal("%.2f" % _cpu_load_percent()))
        memory = _meminfo()
        res._set_memory_total(memory.get("MemTotal", 0))
        res._set_memory_free(memory.get("MemAvailable", 0))
        try:
            stat = os.statvfs(self.config.state_dir)
            res._set_storage_total(stat.f_blocks * stat.f_frsize)
            res._set_storage_free(stat.f_bavail * stat.f_frsize)
        except OSError:
            pass
        return model

    def build(self, ctx):
        """The operational tree (a StateProvider's build)."""
        return parse(ctx, to_xml(self.binding()), "xml", config_only=False, validate=False)
