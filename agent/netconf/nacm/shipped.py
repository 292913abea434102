"""The shipped policy: the /nacm of the startup made on a first start (operators and the
tenants' rule list) and the edit that makes a user a tenant owning service graphs."""

from .rules import NACM_NS, parse_path


SFFG_MODULE = "composer-sffg"
DOMAIN_MODULE = "composer-domain"
# what a tenant may read besides its graphs: the domain description (but the node's
# management address) and what a NETCONF client needs to know the server
TENANT_READABLE = (DOMAIN_MODULE, "ietf-yang-library", "ietf-netconf-monitoring",
                   "ietf-subscribed-notifications", "nc-notifications")
# the notifications a tenant receives (those about data it may not read are not sent)
TENANT_NOTIFICATIONS = ((SFFG_MODULE, "*"),
                        ("ietf-netconf-notifications", "netconf-config-change"),
                        ("ietf-yang-push", "*"), ("ietf-subscribed-notifications", "*"),
                        ("nc-notifications", "*"))
OPERATOR_ONLY_PATHS = ("/composer-domain:domain/config/management-address",
                       "/composer-domain:domain/state/management-address")


def _rule(name, action, ops="*", module=None, path=None, extra="") -> str:
    body = "<name>%s</name>" % name
    if module is not None:
        body += "<module-name>%s</module-name>" % module
    if path is not None:
        module_name = path.split(":", 1)[0].strip("/")
        body += "<path xmlns:%s='urn:composer-nc:yang:%s'>%s</path>" % (
            module_name, module_name, _prefixed(path, module_name))
    return "<rule>%s<access-operations>%s</access-operations><action>%s</action>%s</rule>" \
        % (body, ops, action, extra)


def _notification_rule(module, name) -> str:
    return ("<rule><name>notify-%s-%s</name><module-name>%s</module-name>"
            "<notification-name>%s</notification-name><access-operations>read"
            "</access-operations><action>permit</action></rule>"
            % (module, "all" if name == "*" else name, module, name))


def _prefixed(path: str, module: str) -> str:
    """A canonical path (/module:a/b[k='v']) with every step prefixed, as XML wants."""
    steps = parse_path(path)
    out = []
    for step in steps:
        text = "/%s:%s" % (module, step.name)
        for leaf, value in step.predicates:
            text += "[%s:%s='%s']" % (module, leaf, value) if leaf != "." else "[.='%s']" % value
        out.append(text)
    return "".join(out)


def default_policy(operators=("admin",)) -> str:
    """The /nacm of the startup made on a first start: group operators (full access),
    and the rule list of group tenants (read the domain description but the management
    address; nothing else of the data; every operation but the default-deny-all ones).
    Each tenant's own graphs are a rule list of its own (tenant_policy), placed first."""
    tenant_rules = "".join(
        _rule("hide-%s" % path.split("/")[-2], "deny", "read", path=path)
        for path in OPERATOR_ONLY_PATHS)
    tenant_rules += "".join(_rule("read-%s" % module, "permit", "read", module=module)
                            for module in TENANT_READABLE)
    tenant_rules += "".join(_notification_rule(module, name) for module, name in
                            TENANT_NOTIFICATIONS)
    tenant_rules += _rule("no-other-data", "deny", "read create update delete", module="*")
    return ("<nacm xmlns='%s'><enable-nacm>true</enable-nacm>"
            "<read-default>permit</read-default><write-default>deny</write-default>"
            "<exec-default>permit</exec-default>"
            "<groups><group><name>operators</name>%s</group>"
            "<group><name>tenants</name></group></groups>"
            "<rule-list><name>operators</name><group>operators</group>%s</rule-list>"
            "<rule-list><name>tenants</name><group>tenants</group>%s</rule-list></nacm>"
            % (NACM_NS, "".join("<user-name>%s</user-name>" % u for u in operators),
               _rule("permit-all", "permit", module="*"), tenant_rules))


def tenant_policy(user: str, graphs) -> str:
    """The edit that makes user a tenant owning graphs: in group tenants, and a rule list
    tenant-<user> (first of all: before the tenants' denials) permitting everything on
    those service graphs (names checked by the caller: no quotes)."""
    rules = "".join(_rule("graph-%s" % graph, "permit",
                          path="/%s:service-graphs/service-graph[id='%s']" % (SFFG_MODULE,
                                                                              graph))
                    for graph in graphs)
    return ("<nacm xmlns='%s' xmlns:yang='urn:ietf:params:xml:ns:yang:1'>"
            "<groups><group><name>tenants</name><user-name>%s</user-name></group>"
            "<group><name>tenant-%s</name><user-name>%s</user-name></group></groups>"
            "<rule-list yang:insert='first'><name>tenant-%s</name><group>tenant-%s</group>"
            "%s</rule-list></nacm>" % (NACM_NS, user, user, user, user, user, rules))
