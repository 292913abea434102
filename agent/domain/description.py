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

from ..compute.resolver import port_range
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


def memory_total() -> int:
    return _meminfo().get("MemTotal", 0)


def memory_used_percent() -> float:
    info = _meminfo()
    total = info.get("MemTotal", 0)
    return 100.0 * (total - info.get("MemAvailable", total)) / total if total else 0.0


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as stream:
            for line in stream:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def cpu_load_percent() -> float:
    cores = os.cpu_count() or 1
    try:
        load1 = os.getloadavg()[0]
    except OSError:
        return 0.0
    return round(min(100.0, load1 / cores * 100.0), 2)


def _interface_up(name: str, netns: str | None) -> bool:
    from drivers import netlink
    try:
        return bool(netlink.link_info(name, netns=netns)["up"])
    except Exception:  # noqa: BLE001 - the description is best effort
        return False


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


def used_vlans(deployed) -> dict:
    """LSI-0 interface -> the VLAN ids the deployed graphs' vlan SAPs use on it."""
    used: dict = {}
    for dg in list(deployed.values()):
        for sap in dg.graph.saps.values():
            if sap.type == "vlan":
                used.setdefault(sap.if_name, set()).add(sap.vlan_id)
    return used


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
        used = used_vlans(self.engine.deployed)
        netns = self.config.get("ovs", "netns") or None
        neighbours = self.config.get("lsi0", "neighbors")
        addresses = self.config.get("lsi0", "addresses")
        info = self.network.driver.info() or {}
        gre = "gre" in info.get("tunnel_types", info.get("tunnel-types", ()))
        for name in self.network.lsi0_interfaces:
            endpoint = domain.big_switch.endpoints.endpoint.add(name)
            es = endpoint.state
            es._set_name(name)
            es._set_interface(name)
            if name in neighbours:
                es._set_neighbor_domain(neighbours[name])
            if name in addresses:
                es._set_ipv4_address(addresses[name].partition("/")[0])
            es._set_gre_support(gre and name in addresses)
            es._set_oper_up(_interface_up(name, netns))
            for first, last in vlan_ranges(used.get(name, set())):
                vr = endpoint.free_vlans.range.add(first)
                vr.state._set_first(first)
                vr.state._set_last(last)

        # functional capabilities
        for capability, templates in sorted(self.compute.repository.capabilities().items()):
            fc = domain.functional_capabilities.functional_capability.add(capability)
            fc.state._set_name(capability)
            ranges = [port_range(t) for t in templates]
            fc.state._set_min_ports(min(low for low, _ in ranges))
            fc.state._set_max_ports(max(high for _, high in ranges))
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
                # a decomposition is available when its parts are: that is the resolver's to say
                reasons = self.compute.availability(template) if env else []
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
        infra._set_vswitch(info.get("kind", "ovs"))
        if info.get("version"):
            infra._set_vswitch_version(info["version"])
        datapath = info.get("datapath_type", info.get("datapath-type"))
        if datapath:
            infra._set_datapath_type(datapath)
        # the driver's port kinds, as composer-types port technologies
        kinds = set(info.get("port_technologies", info.get("port-technologies", ())))
        for technology, kind in (("veth", "system"), ("tap", "tap"),
                                 ("vhost-user", "vhost-user"), ("dpdk-port", "dpdk")):
            if kind in kinds or technology in kinds:
                infra.port_technology.append(technology)

        # resources
        res = domain.resources.state
        scheduler = self.compute.scheduler
        res._set_cpu_cores_total(scheduler.cores)
        res._set_cpu_cores_free(scheduler.free_cores(self.engine.deployed))
        res._set_cpu_load(Decimal("%.2f" % cpu_load_percent()))
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
