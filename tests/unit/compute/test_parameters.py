"""Function parameters against what their template declares: names, types, repeats; the
shipped native templates declare theirs, and the resolver refuses a function whose
parameters no implementation understands, naming the parameter."""

from pathlib import Path

import pytest

from agent.compute import parameters
from agent.compute.parameters import ParameterError
from agent.compute.resolver import ResolveError, Resolver
from agent.model.graph import Function, Port
from nsf import packages

NSF = Path(packages.__file__).resolve().parent


def shipped(name: str) -> dict:
    return packages.load_template_text((NSF / name / "template.json").read_text())


@pytest.mark.parametrize("name", packages.names())
def test_the_shipped_templates_declare_their_parameters(name):
    template = shipped(name)
    assert isinstance(template["parameters"], list) and template["parameters"]
    parameters.check_declarations(template)


FIREWALL_OK = ["default=drop", "block-src=10.0.0.5", "block-dst=10.1.0.0/16",
               "allow-tcp-dst=80", "allow-tcp-dst=8000-8080", "block-udp-src=53",
               "block-icmp", "allow-icmp"]

REFUSED = [
    ("firewall", "block-icmp=; flush ruleset", "block-icmp is a flag: it takes no value"),
    ("firewall", "flush-ruleset", "native-firewall understands no parameter 'flush-ruleset'"),
    ("firewall", "default=reject", "default: must be one of accept, drop"),
    ("firewall", "block-src=10.0.0.1; nft flush ruleset",
     "block-src: must be an IPv4 address or prefix"),
    ("firewall", "block-src=10.0.0.1/24", "block-src: must be an IPv4 address or prefix"),
    ("firewall", "block-tcp-dst=80-70", "block-tcp-dst: must be a port or a range"),
    ("firewall", "block-tcp-dst=70000", "block-tcp-dst: must be a port or a range"),
    ("firewall", "block-src", "block-src needs a value"),
    ("nat", "inside=eth0 && reboot", "inside: must be an interface name"),
    ("nat", "gateway=10.0.0.1/24", "gateway: must be an IPv4 address"),
    ("nat", "inside-ip=10.0.0.1", "inside-ip: must be an IPv4 address with its prefix length"),
    ("router", "route=10.0.0.0/8", "route: a route needs via=<gateway> or dev=<interface>"),
    ("router", "route=10.0.0.0/8,via=10.1.1.1,via=10.1.1.2",
     "route: options are via=<gateway> and dev=<interface>, once each"),
    ("bridge", "ageing=-1", "ageing: must be a non-negative integer"),
]


def test_a_firewall_takes_its_parameters():
    parameters.check(shipped("firewall"), FIREWALL_OK)
    parameters.check(shipped("nat"), ["inside=eth0", "outside=eth1", "inside-ip=10.0.0.1/24",
                                      "gateway=192.0.2.1"])
    parameters.check(shipped("router"), ["route=default,via=10.0.0.1",
                                         "route=10.2.0.0/16,dev=eth1",
                                         "route=10.3.0.0/16,via=10.0.0.9,dev=eth0"])
    parameters.check(shipped("bridge"), ["ageing=30"])


@pytest.mark.parametrize("package, parameter, why", REFUSED,
                         ids=[r[1] for r in REFUSED])
def test_a_parameter_the_function_does_not_understand_is_refused(package, parameter, why):
    with pytest.raises(ParameterError) as refused:
        parameters.check(shipped(package), [parameter])
    assert refused.value.parameter == parameter
    assert why in refused.value.why


def test_a_parameter_given_twice_when_it_may_not_be():
    with pytest.raises(ParameterError, match="default is given more than once"):
        parameters.check(shipped("firewall"), ["default=drop", "default=accept"])


def test_a_template_that_declares_nothing_takes_anything():
    parameters.check({"id": "user-template"}, ["anything; at all"])


@pytest.mark.parametrize("declared, error", [
    ("free text", "must be a list"),
    ([{"name": "x", "type": "string"}], "unknown type"),
    ([{"name": "x", "type": "enumeration"}], "has no values"),
    ([{"name": "x", "type": "flag"}, {"name": "x", "type": "flag"}], "declared twice"),
    ([{"name": "X y", "type": "flag"}], "bad parameter name")])
def test_malformed_declarations_are_refused(declared, error):
    with pytest.raises(ValueError, match=error):
        parameters.check_declarations({"id": "t", "parameters": declared})


class _Repository:
    def __init__(self, *templates):
        self._templates = list(templates)

    def templates(self):
        return self._templates

    def get(self, template_id):
        return next((t for t in self._templates if t["id"] == template_id), None)

    def capabilities(self):
        return {t["functional-capability"]: [t] for t in self._templates}


def _firewall(*parameters_):
    return Function("fw", "firewall", parameters=tuple(parameters_),
                    ports=(Port("lan"), Port("wan")))


def test_the_resolver_names_the_parameter_no_implementation_understands():
    resolver = Resolver(_Repository(shipped("firewall")), lambda t: [])
    assert resolver.resolve(_firewall(*FIREWALL_OK)).template_id == "native-firewall"
    with pytest.raises(ResolveError) as refused:
        resolver.resolve(_firewall("allow-icmp", "block-icmp=; flush ruleset"))
    assert refused.value.parameter == "block-icmp=; flush ruleset"
    assert refused.value.message == ("parameter 'block-icmp=; flush ruleset' of function fw: "
                                     "block-icmp is a flag: it takes no value")


def test_the_resolver_takes_the_implementation_that_understands_the_parameters():
    other = dict(shipped("firewall"), id="other-firewall", memory=1,
                 parameters=[{"name": "zone", "type": "ifname"}])
    resolver = Resolver(_Repository(shipped("firewall"), other), lambda t: [])
    assert resolver.resolve(_firewall("zone=eth0")).template_id == "other-firewall"
    assert resolver.resolve(_firewall("block-icmp")).template_id == "native-firewall"
    with pytest.raises(ResolveError) as refused:
        resolver.resolve(_firewall("nothing"))
    assert refused.value.parameter == "nothing"
    assert "no implementation of 'firewall' takes the parameters of function fw" in \
        refused.value.message
