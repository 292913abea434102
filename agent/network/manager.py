"""The network manager: LSI-0 and the graph-LSIs on the vSwitch driver, and the step
handlers for LSIs, ports, virtual links, SAPs and flows.

Every handler does one atomic vSwitch call (one OVSDB transaction, one OpenFlow bundle)
and returns the steps that undo it.
"""

import logging

from drivers.errors import ResourceNotFound
from drivers.vswitch.base import VirtualLink

from ..model.plan import Step
from .naming import Naming
from .split import link_ports

LOG = logging.getLogger(__name__)


class NetworkManager:
    def __init__(self, driver, naming: Naming, lsi0: str, lsi0_interfaces=(), addresses=None):
        self.driver = driver
        self.naming = naming
        self.lsi0 = lsi0
        self.lsi0_interfaces = tuple(lsi0_interfaces)
        # interface -> "address/len": where GRE tunnels of the node end
        self.addresses = dict(addresses or {})

    def start(self) -> None:
        """LSI-0 with the configured interfaces (reused if it exists), and a tunnel endpoint
        for each configured address (re-applied: a restarted vswitchd forgets routes)."""
        self.driver.create_lsi(self.lsi0, ports=self.lsi0_interfaces, may_exist=True,
                               external_ids={"composer-owner": self.naming.prefix,
                                             "composer-role": "lsi0"})
        for nic, address in sorted(self.addresses.items()):
            ip, _, length = address.partition("/")
            name = self.naming.tunnel_endpoint(ip)
            self.driver.create_tunnel_endpoint(
                self.lsi0, name, ip, int(length), nic, cookie=self.naming.endpoint_cookie(name),
                external_ids={"composer-owner": self.naming.prefix,
                              "composer-role": "tunnel-endpoint"}, may_exist=True)

    def restore_saps(self, dg) -> None:
        """Put back what a restarted vSwitch forgot of a graph's SAPs (the address of a
        host-stack port, which it makes again without one)."""
        for sid, name in sorted(dg.sap_ports.items()):
            sap = dg.graph.saps[sid]
            if sap.type == "host-stack" and not sap.dhcp:
                self.driver.restore_sap(dg.lsi, name, sap.type, self._sap_params(sap))

    def tunnel_ips(self) -> dict:
        """endpoint IPv4 address -> interface."""
        return {address.partition("/")[0]: nic for nic, address in self.addresses.items()}

    def endpoint_cookies(self) -> set:
        return {self.naming.endpoint_cookie(self.naming.tunnel_endpoint(ip))
                for ip in self.tunnel_ips()}

    def owner_ids(self, **more) -> dict:
        ids = {"composer-owner": self.naming.prefix}
        ids.update(more)
        return ids

    # --- step handlers ---

    def handlers(self) -> dict:
        return {
            "create-lsi": self.create_lsi,
            "destroy-lsi": self.destroy_lsi,
            "attach-ports": self.attach_ports,
            "tag-ports": self.tag_ports,
            "detach-ports": self.detach_ports,
            "create-links": self.create_links,
            "destroy-links": self.destroy_links,
            "create-sap": self.create_sap,
            "destroy-sap": self.destroy_sap,
            "apply-flows": self.apply_flows,
            "release-flows": self.release_flows,
        }

    def create_lsi(self, step: Step) -> list:
        # No local port: a graph reaches the node only through its SAPs' own ports, and in
        # the userspace datapath that port is a kernel tap device whose removal alone held
        # a graph's delete ~20 ms in ovs-vswitchd (measured).
        self.driver.create_lsi(step.resource, external_ids=step.params["external_ids"],
                               local_port=False)
        return [Step("destroy-lsi", step.graph, step.resource, step.params)]

    def destroy_lsi(self, step: Step) -> list:
        try:
            self.driver.destroy_lsi(step.resource)
        except ResourceNotFound:
            LOG.warning("LSI %s was gone already", step.resource)
        return [Step("create-lsi", step.graph, step.resource, step.params)]

    def attach_ports(self, step: Step) -> list:
        """The ports, and with params["links"] (create-links' params) the graph's new links
        in the same change."""
        links = step.params.get("links")
        if links:
            self.driver.create_ports_and_links(
                step.params["lsi"], step.params["ports"], links["lsi0"], list(links["names"]),
                link_external_ids=links["external_ids"], link_ofports=links.get("ofports"))
        else:
            self.driver.create_ports(step.params["lsi"], step.params["ports"])
        return [Step("detach-ports", step.graph, step.resource, step.params)]

    def tag_ports(self, step: Step) -> list:
        """Ports of prepared slots and links a graph takes: they are on their LSIs already,
        only their tags change. params: "tags" and "previous" (the tags an undo restores),
        each LSI -> port -> external_ids."""
        tags, previous = step.params["tags"], step.params["previous"]
        done = []
        try:
            for lsi in sorted(tags):
                self.driver.tag_ports(lsi, tags[lsi])
                done.append(lsi)
        except BaseException:
            for lsi in done:
                self.driver.tag_ports(lsi, previous[lsi])
            raise
        return [Step("tag-ports", step.graph, step.resource,
                     dict(step.params, tags=previous, previous=tags))]

    def _present(self, lsi: str) -> dict:
        """name -> PortInfo of the LSI's ports; {} when the LSI is gone."""
        try:
            return {p.name: p for p in self.driver.list_ports(lsi)}
        except ResourceNotFound:
            return {}

    @staticmethod
    def _numbers(present: dict, names) -> dict:
        """The OpenFlow port numbers of ports about to go, so that an undo recreates them
        with the same numbers (and the node is exactly as it was)."""
        return {name: present[name].ofport for name in names
                if name in present and isinstance(present[name].ofport, int)
                and present[name].ofport > 0}

    def detach_ports(self, step: Step) -> list:
        """Removes what is there of the ports (and params["links"]): a port or link end
        removed under the agent is not an error, so that a broken graph can always go."""
        lsi = step.params["lsi"]
        present = self._present(lsi)
        ports = [p for p in step.params["ports"] if p["name"] in present]
        names = [p["name"] for p in ports]
        numbers = self._numbers(present, names)
        links = step.params.get("links")
        if links:
            whole, lone, link_numbers = self._links_present(links, present)
            self.driver.destroy_ports_and_links(lsi, names, whole)
            self._destroy_lone(lone)
            links = dict(links, names=[l.name for l in whole] + sorted(lone["names"]),
                         ofports=link_numbers)
        elif names:
            self.driver.destroy_ports(lsi, names)
        if len(ports) < len(step.params["ports"]):
            LOG.warning("ports %s of %s were gone already", ", ".join(
                sorted({p["name"] for p in step.params["ports"]} - set(names))), lsi)
        ports = [dict(p, ofport=numbers[p["name"]]) if p["name"] in numbers else p
                 for p in ports]
        params = dict(step.params, ports=ports)
        if links:
            params["links"] = links
        elif "links" in params:
            del params["links"]
        return [Step("attach-ports", step.graph, step.resource, params)]

    def _links(self, params) -> list:
        out = []
        for name in params["names"]:
            port_a, port_b = link_ports(name)
            out.append(VirtualLink(name=name, lsi_a=params["lsi0"], port_a=port_a,
                                   lsi_b=params["lsi"], port_b=port_b))
        return out

    def _links_present(self, params, graph_present: dict | None = None) -> tuple:
        """(links with both ends there, {"names": links with one end, lsi: [that end]},
        port name -> OpenFlow port number of every end there)."""
        lsi0_present = self._present(params["lsi0"])
        if graph_present is None:
            graph_present = self._present(params["lsi"])
        whole, lone = [], {"names": []}
        numbers = {}
        for link in self._links(params):
            ends = [(lsi, port) for lsi, port, there in (
                (link.lsi_a, link.port_a, lsi0_present), (link.lsi_b, link.port_b,
                                                          graph_present)) if port in there]
            numbers.update(self._numbers(lsi0_present, [link.port_a]))
            numbers.update(self._numbers(graph_present, [link.port_b]))
            if len(ends) == 2:
                whole.append(link)
            elif ends:
                lone["names"].append(link.name)
                for lsi, port in ends:
                    lone.setdefault(lsi, []).append(port)
            else:
                LOG.warning("virtual link %s was gone already", link.name)
        return whole, lone, numbers

    def _destroy_lone(self, lone: dict) -> None:
        """The ends of links whose other end was removed under the agent."""
        for lsi, ports in sorted(lone.items()):
            if lsi != "names":
                LOG.warning("removing the ends %s whose peers are gone", ", ".join(ports))
                self.driver.destroy_ports(lsi, ports)

    def create_links(self, step: Step) -> list:
        params = step.params
        self.driver.create_virtual_links(params["lsi0"], params["lsi"], list(params["names"]),
                                         external_ids=params["external_ids"],
                                         ofports=params.get("ofports"))
        return [Step("destroy-links", step.graph, step.resource, params)]

    def destroy_links(self, step: Step) -> list:
        whole, lone, numbers = self._links_present(step.params)
        self.driver.destroy_virtual_links(whole)
        self._destroy_lone(lone)
        names = [l.name for l in whole] + sorted(lone["names"])
        return [Step("create-links", step.graph, step.resource,
                     dict(step.params, names=names, ofports=numbers))]

    def _sap_params(self, sap) -> dict:
        if sap.type == "gre":
            params = {"local_ip": sap.local_ip, "remote_ip": sap.remote_ip, "key": sap.key}
            if sap.ttl is not None:
                params["ttl"] = sap.ttl
            return params
        if sap.type == "host-stack":
            if sap.dhcp:
                return {"dhcp": True, "mac_address": sap.mac}
            return {"ipv4_address": sap.ipv4, "prefix_length": sap.prefix_length,
                    "mac_address": sap.mac}
        return {"if_name": sap.if_name, "vlan_id": sap.vlan_id}

    def create_sap(self, step: Step) -> list:
        sap = step.params["sap"]
        params = self._sap_params(sap)
        if step.params.get("ofport"):
            params["ofport"] = step.params["ofport"]
        self.driver.create_sap(step.params["lsi"], step.resource, sap.type, params,
                               external_ids=step.params["external_ids"])
        return [Step("destroy-sap", step.graph, step.resource, step.params)]

    def destroy_sap(self, step: Step) -> list:
        sap = step.params["sap"]
        present = self._present(step.params["lsi"])
        numbers = self._numbers(present, [step.resource])
        if step.resource in present or sap.on_lsi0:
            self.driver.destroy_sap(step.params["lsi"], step.resource, sap.type)
        else:
            LOG.warning("SAP port %s was gone already", step.resource)
        return [Step("create-sap", step.graph, step.resource,
                     dict(step.params, ofport=numbers.get(step.resource)))]

    def apply_flows(self, step: Step) -> list:
        params = step.params
        self.driver.apply_flows(params["lsi"], add=list(params["add"]),
                                remove_cookies=list(params["remove"]))
        return [Step("apply-flows", step.graph, step.resource, {
            "lsi": params["lsi"], "add": list(params["removed"]),
            "remove": [f.cookie for f in params["add"]], "removed": list(params["add"])})]

    def release_flows(self, step: Step) -> list:
        """The flows of a graph-LSI about to be destroyed: they go with it, so nothing is
        done now; the undo re-installs them (by then the undo has re-attached the ports)."""
        params = step.params
        return [Step("apply-flows", step.graph, step.resource, {
            "lsi": params["lsi"], "add": list(params["removed"]), "remove": [],
            "removed": []})]
