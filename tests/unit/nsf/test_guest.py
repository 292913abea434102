"""The kvm templates shipped with the packages (nsf/<name>/kvm.json over template.json)."""

import json

from agent.compute import parameters
from nsf import guest


def test_kvm_firewall_runs_the_firewall_in_the_guest():
    [template] = [t for t in guest.templates("/g") if t["id"] == "kvm-firewall"]
    package = json.loads((guest.SOURCE_DIR / "firewall" / "template.json").read_text())
    assert template["functional-capability"] == "firewall"
    assert template["execution-environment"] == "kvm"
    assert template["guest-function"] == "firewall"
    assert template["image-uri"] == "/g"
    assert (template["min-ports"], template["max-ports"]) == (2, 4)
    # the native firewall's parameters (the guest runs its ruleset), not its scripts or
    # dependencies: the guest carries nft
    assert template["parameters"] == package["parameters"]
    assert "scripts" not in template and "dependencies" not in template
    parameters.check_declarations(template)


def test_the_guest_carries_nft_and_the_firewall_ruleset():
    assert "/usr/sbin/nft" in guest.BINARIES
    assert {"nf_tables", "br_netfilter", "nft_ct"} <= set(guest.MODULES)
    assert guest.PACKAGE_FILES["composer/firewall/lib.sh"].is_file()
