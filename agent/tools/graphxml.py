"""Service graphs as XML text for clients, tests and benchmarks: functions, SAPs and rules
in a few lines.

    g = GraphXml("g1")
    g.function("fw", "firewall", "in", "out", parameters=["block-tcp-dst=5202"])
    g.sap_interface("lan", "eth1")
    g.rule("lan-fw", "lan", "fw:in", priority=10)
    g.xml()           # a <service-graph> element
    config(g, h)      # <config> with <service-graphs> for edit-config
"""

from xml.sax.saxutils import escape

SFFG_NS = "urn:composer-nc:yang:composer-sffg"
NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"


def _leaf(name, value):
    return "<%s>%s</%s>" % (name, escape(str(value)), name)


def _port_ref(prefix, ref):
    """'sap' or 'function:port' as the leaves of a match or an output."""
    if ":" in ref:
        function, port = ref.split(":", 1)
        if prefix == "in":
            return _leaf("in-function", function) + _leaf("in-function-port", port)
        return _leaf("output-function", function) + _leaf("output-function-port", port)
    return _leaf("in-sap" if prefix == "in" else "output-sap", ref)


class GraphXml:
    def __init__(self, graph_id: str, name: str = "", monitoring: str = ""):
        self.id = graph_id
        self.name = name
        self.monitoring = monitoring        # the graph's monitoring expression
        self.functions, self.saps, self.rules = [], [], []

    def function(self, fid, capability, *ports, parameters=(), template=None, port_config=None,
                 constraints=None):
        """constraints: {"execution-environment": [...], "memory": MiB, "cpu": cores}."""
        port_config = port_config or {}
        ports_xml = ""
        for port in ports:
            extra = "".join(_leaf(k, v) for k, v in port_config.get(port, {}).items())
            ports_xml += "<port><id>%s</id><config><id>%s</id>%s</config></port>" % (
                port, port, extra)
        config = _leaf("id", fid) + _leaf("functional-capability", capability)
        if template:
            config += _leaf("template", template)
        config += "".join(_leaf("parameter", p) for p in parameters)
        if constraints:
            body = "".join(
                '<execution-environment xmlns:ct="%s">ct:%s</execution-environment>'
                % (TYPES_NS, escape(env)) for env in constraints.get("execution-environment", ()))
            body += "".join(_leaf(k, constraints[k]) for k in ("memory", "cpu")
                            if k in constraints)
            config += "<constraints>%s</constraints>" % body
        self.functions.append("<function><id>%s</id><config>%s</config><ports>%s</ports>"
                              "</function>" % (escape(fid), config, ports_xml))
        return self

    def _sap(self, sid, body):
        self.saps.append("<sap><id>%s</id><config><id>%s</id>%s</config></sap>"
                         % (escape(sid), escape(sid), body))
        return self

    def sap_interface(self, sid, if_name):
        return self._sap(sid, "<interface>%s</interface>" % _leaf("if-name", if_name))

    def sap_vlan(self, sid, if_name, vlan_id):
        return self._sap(sid, "<vlan>%s%s</vlan>" % (_leaf("if-name", if_name),
                                                     _leaf("vlan-id", vlan_id)))

    def sap_gre(self, sid, local_ip, remote_ip, key, ttl=None):
        body = _leaf("local-ip", local_ip) + _leaf("remote-ip", remote_ip) + _leaf("key", key)
        if ttl is not None:
            body += _leaf("ttl", ttl)
        return self._sap(sid, "<gre>%s</gre>" % body)

    def sap_host_stack(self, sid, ipv4=None, prefix_length=24, mac=None):
        body = (_leaf("ipv4-address", ipv4) + _leaf("prefix-length", prefix_length)) if ipv4 \
            else "<dhcp/>"
        if mac:
            body += _leaf("mac-address", mac)
        return self._sap(sid, "<host-stack>%s</host-stack>" % body)

    def rule(self, rid, in_port, *outputs, priority=10, match=None, actions=None):
        """outputs are 'sap' or 'function:port'; match a dict of match leaves; actions a
        list of (leaf, value) pairs used instead of outputs (value None for empty leaves)."""
        match_xml = _port_ref("in", in_port) + "".join(
            _leaf(k, v) for k, v in (match or {}).items())
        if actions is None:
            actions = [("output", out) for out in outputs]
        actions_xml = ""
        for index, (leaf, value) in enumerate(actions):
            if leaf == "output":
                body = _port_ref("out", value)
            elif value is None:
                body = "<%s/>" % leaf
            else:
                body = _leaf(leaf, value)
            actions_xml += ("<action><index>%d</index><config><index>%d</index>%s</config>"
                            "</action>" % (index, index, body))
        self.rules.append(
            "<flow-rule><id>%s</id><config><id>%s</id><priority>%d</priority></config>"
            "<match><config>%s</config></match><actions>%s</actions></flow-rule>"
            % (escape(rid), escape(rid), priority, match_xml, actions_xml))
        return self

    def bidirectional(self, rid, a, b, priority=10, match=None):
        """Two rules: a -> b and b -> a."""
        self.rule(rid + "-fwd", a, b, priority=priority, match=match)
        self.rule(rid + "-rev", b, a, priority=priority, match=match)
        return self

    def xml(self) -> str:
        config = _leaf("id", self.id) + (_leaf("name", self.name) if self.name else "") + \
            (_leaf("monitoring", self.monitoring) if self.monitoring else "")
        return ("<service-graph><id>%s</id><config>%s</config><functions>%s</functions>"
                "<saps>%s</saps><flow-rules>%s</flow-rules></service-graph>"
                % (escape(self.id), config, "".join(self.functions), "".join(self.saps),
                   "".join(self.rules)))


TEMPLATES_NS = "urn:composer-nc:yang:composer-templates"
TYPES_NS = "urn:composer-nc:yang:composer-types"


def native_template(template_id: str, capability: str, image: str, port_count: int = 2,
                    **extra) -> str:
    """A <templates> element configuring one native function package (image: its
    directory or .tgz); extra: more config leaves (memory=..., cost=..., image_sha256=...)."""
    leaves = "".join(_leaf(k.replace("_", "-"), v) for k, v in extra.items())
    return ('<templates xmlns="%s"><template><id>%s</id><config><id>%s</id>'
            '<functional-capability>%s</functional-capability>'
            '<execution-environment xmlns:ct="%s">ct:native</execution-environment>'
            '<image-uri>%s</image-uri><port-count>%d</port-count>%s</config></template>'
            '</templates>' % (TEMPLATES_NS, escape(template_id), escape(template_id),
                              escape(capability), TYPES_NS, escape(image), port_count, leaves))


def kvm_template(template_id: str, capability: str, image: str, port_count: int = 2,
                 memory: int = 160, cpu: float = 1) -> str:
    """A <templates> element configuring one kvm function (image: a guest of nsf/guest.py,
    its directory, or a disk image)."""
    return ('<templates xmlns="%s"><template><id>%s</id><config><id>%s</id>'
            '<functional-capability>%s</functional-capability>'
            '<execution-environment xmlns:ct="%s">ct:kvm</execution-environment>'
            '<image-uri>%s</image-uri><port-count>%d</port-count><cpu>%s</cpu>'
            '<memory>%d</memory></config></template></templates>'
            % (TEMPLATES_NS, escape(template_id), escape(template_id), escape(capability),
               TYPES_NS, escape(image), port_count, cpu, memory))


def service_graphs(*graphs) -> str:
    return '<service-graphs xmlns="%s">%s</service-graphs>' % (
        SFFG_NS, "".join(g.xml() for g in graphs))


def config(*graphs, operation: str | None = None) -> str:
    """An edit-config <config> element holding the graphs."""
    body = service_graphs(*graphs)
    if operation:
        body = body.replace("<service-graphs ", '<service-graphs xmlns:nc="%s" nc:operation="%s" '
                            % (NC_NS, operation), 1)
    return '<config xmlns="%s">%s</config>' % (NC_NS, body)


def delete_graph(graph_id: str) -> str:
    return ('<config xmlns="%s" xmlns:nc="%s"><service-graphs xmlns="%s"><service-graph '
            'nc:operation="delete"><id>%s</id></service-graph></service-graphs></config>'
            % (NC_NS, NC_NS, SFFG_NS, escape(graph_id)))


def firewall_chain(graph_id="g1", lan="eth1", wan="eth2", parameters=(), priority=10,
                   capability="firewall", template=None, constraints=None):
    """lan -- fw -- wan, both directions (fw: a firewall, or what capability names)."""
    g = GraphXml(graph_id)
    g.function("fw", capability, "lan", "wan", parameters=parameters, template=template,
               constraints=constraints)
    g.sap_interface("lan", lan).sap_interface("wan", wan)
    g.bidirectional("lan", "lan", "fw:lan", priority=priority)
    g.bidirectional("wan", "wan", "fw:wan", priority=priority)
    return g


def firewall_bridge_chain(graph_id="g1", lan="eth1", wan="eth2"):
    """lan -- fw -- br -- wan, both directions: firewall_chain with a bridge inserted."""
    g = GraphXml(graph_id)
    g.function("fw", "firewall", "lan", "wan")
    g.function("br", "bridge", "a", "b")
    g.sap_interface("lan", lan).sap_interface("wan", wan)
    g.bidirectional("lan", "lan", "fw:lan")
    g.bidirectional("mid", "fw:wan", "br:a")
    g.bidirectional("wan", "br:b", "wan")
    return g
