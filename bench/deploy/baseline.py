"""The baseline: a plain shell script that creates the same resources as the agent for N
personal firewalls, one command after another (ip netns / veth, ovs-vsctl, ovs-ofctl), and
runs the same firewall package scripts inside each namespace.

Resources per firewall: a namespace, two veth pairs (tx offload off), the package's create
and start scripts, two ports on the graph bridge, two patch-port pairs to the LSI-0 bridge,
six flows (two on LSI-0, four on the graph bridge); plus the graph bridge itself, made as
the agent makes a graph-LSI: without a local port (which `add-br` would add: a kernel tap
device in the userspace datapath, whose removal alone costs ovs-vswitchd ~20 ms). The
script uses its own bridges, so it never touches the agent's; its LSI-0 flows name the NICs
by number (the NICs are the agent's).

With docker (a dockerd's address and the firewall's image), each firewall is a container
instead of a namespace, as the docker driver makes it: `docker run` with no network, the
firewall's memory/CPU limits and sysctl, the package's scripts run by `docker exec` once
both veths are in the container's namespace (the function ends made there directly,
`ip link add ... peer ... netns <its pid>`).
"""

import shlex

from .graphs import host_mac


def _q(*argv) -> str:
    return " ".join(shlex.quote(str(a)) for a in argv)


class Baseline:
    def __init__(self, ovs_env: dict, db_socket: str, mgmt, node_netns: str, package_dir: str,
                 prefix: str = "bl", docker: tuple | None = None):
        self.env = ovs_env
        self.db = db_socket
        self.mgmt = mgmt                # bridge -> "unix:..." management socket
        self.netns = node_netns
        self.package = package_dir
        self.prefix = prefix
        self.lsi0 = prefix + "0"
        self.graph = prefix + "g"
        self.docker = docker            # (dockerd address, image) or None: namespaces

    def _vsctl(self, *args) -> str:
        return _q("ovs-vsctl", "--db=" + self.db, *args)

    def _ofctl(self, bridge, *args) -> str:
        return _q("ovs-ofctl", "-O", "OpenFlow14", args[0], self.mgmt(bridge), *args[1:])

    def _node(self, *argv) -> str:
        return _q("ip", "netns", "exec", self.netns, *argv)

    def setup(self) -> str:
        """The stand-in for LSI-0 (not timed)."""
        return "\n".join([
            "set -e",
            self._vsctl("--may-exist", "add-br", self.lsi0, "--", "set", "bridge", self.lsi0,
                        "datapath_type=netdev", "fail_mode=secure"),
        ])

    def deploy(self, count: int) -> str:
        lines = ["set -e",
                 self._vsctl("--", "--id=@graph", "create", "bridge", "name=" + self.graph,
                             "datapath_type=netdev", "fail_mode=secure", "--",
                             "add", "open_vswitch", ".", "bridges", "@graph")]
        for i in range(count):
            ns = "%sf%d" % (self.prefix, i)
            a, b = "%sa%d" % (self.prefix, i), "%sb%d" % (self.prefix, i)
            lines += self._docker_function(ns, a, b) if self.docker else [
                _q("ip", "netns", "add", ns),
                _q("ip", "-n", self.netns, "link", "add", a, "type", "veth", "peer", "name",
                   "eth0", "netns", ns),
                _q("ip", "-n", self.netns, "link", "add", b, "type", "veth", "peer", "name",
                   "eth1", "netns", ns),
                _q("ip", "-n", self.netns, "link", "set", a, "up"),
                _q("ip", "-n", self.netns, "link", "set", b, "up"),
                _q("ip", "-n", ns, "link", "set", "lo", "up"),
                _q("ip", "-n", ns, "link", "set", "eth0", "up"),
                _q("ip", "-n", ns, "link", "set", "eth1", "up"),
                self._node("ethtool", "-K", a, "tx", "off") + " >/dev/null",
                self._node("ethtool", "-K", b, "tx", "off") + " >/dev/null",
                _q("ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tx", "off") + " >/dev/null",
                _q("ip", "netns", "exec", ns, "ethtool", "-K", "eth1", "tx", "off") + " >/dev/null",
                _q("ip", "netns", "exec", ns, "env", "-C", self.package,
                   "COMPOSER_PORTS=eth0 eth1", "COMPOSER_ACTION=create", "sh", "./create.sh"),
                _q("ip", "netns", "exec", ns, "env", "-C", self.package,
                   "COMPOSER_PORTS=eth0 eth1", "COMPOSER_ACTION=start", "sh", "./start.sh"),
            ]
            lines += [
                self._vsctl("add-port", self.graph, a),
                self._vsctl("add-port", self.graph, b),
            ]
            for side in ("a", "b"):
                link = "%sl%s%d" % (self.prefix, side, i)
                lines.append(self._vsctl(
                    "add-port", self.lsi0, link + "-a", "--", "set", "interface", link + "-a",
                    "type=patch", "options:peer=" + link + "-b", "--",
                    "add-port", self.graph, link + "-b", "--", "set", "interface", link + "-b",
                    "type=patch", "options:peer=" + link + "-a"))
            mac = host_mac(i)
            la, lb = "%sla%d" % (self.prefix, i), "%slb%d" % (self.prefix, i)
            cookie = "0x%x" % (0xB1000000 + i)
            lines += [
                self._ofctl(self.lsi0, "add-flow", "cookie=%s,priority=10,in_port=1,"
                            "dl_src=%s,actions=output:%s-a" % (cookie, mac, la)),
                self._ofctl(self.lsi0, "add-flow", "cookie=%s,priority=10,in_port=2,"
                            "dl_dst=%s,actions=output:%s-a" % (cookie, mac, lb)),
                self._ofctl(self.graph, "add-flow", "cookie=%s,priority=65000,in_port=%s-b,"
                            "actions=output:%s" % (cookie, la, a)),
                self._ofctl(self.graph, "add-flow", "cookie=%s,priority=65000,in_port=%s-b,"
                            "actions=output:%s" % (cookie, lb, b)),
                self._ofctl(self.graph, "add-flow", "cookie=%s,priority=10,in_port=%s,"
                            "actions=output:%s-b" % (cookie, a, la)),
                self._ofctl(self.graph, "add-flow", "cookie=%s,priority=10,in_port=%s,"
                            "actions=output:%s-b" % (cookie, b, lb)),
            ]
        return "\n".join(lines)

    def _docker(self, *argv) -> str:
        return _q("docker", "-H", self.docker[0], *argv)

    def _docker_function(self, name: str, a: str, b: str) -> list:
        lines = [
            self._docker("run", "-d", "-q", "--name", name, "--network", "none",
                         "--cap-add", "NET_ADMIN", "--memory", "16m", "--cpus", "0.1",
                         "--sysctl", "net.bridge.bridge-nf-call-iptables=1",
                         "--entrypoint", "/bin/sh", self.docker[1], "-c",
                         "while :; do sleep 3600; done") + " >/dev/null",
            "pid=$(%s)" % self._docker("inspect", "-f", "{{.State.Pid}}", name),
        ]
        for node_end, inside in ((a, "eth0"), (b, "eth1")):
            lines += [
                _q("ip", "-n", self.netns, "link", "add", node_end, "type", "veth", "peer",
                   "name", inside) + " netns \"$pid\"",
                _q("ip", "-n", self.netns, "link", "set", node_end, "up"),
                self._node("ethtool", "-K", node_end, "tx", "off") + " >/dev/null",
                _q("nsenter", "-t") + " \"$pid\" " + _q("-n", "ip", "link", "set", inside, "up"),
                _q("nsenter", "-t") + " \"$pid\" " + _q("-n", "ethtool", "-K", inside, "tx", "off")
                + " >/dev/null",
            ]
        lines.append(self._docker("exec", "-w", "/composer/package", "-e",
                                  "COMPOSER_PORTS=eth0 eth1", name, "sh", "-c",
                                  "./create.sh && ./start.sh"))
        return lines

    def teardown(self, count: int) -> str:
        lines = ["set -e"]
        for i in range(count):
            cookie = "0x%x/-1" % (0xB1000000 + i)
            lines.append(self._ofctl(self.lsi0, "del-flows", "cookie=" + cookie))
            for side in ("a", "b"):
                link = "%sl%s%d" % (self.prefix, side, i)
                lines.append(self._vsctl("del-port", self.lsi0, link + "-a", "--",
                                         "del-port", self.graph, link + "-b"))
            name = "%sf%d" % (self.prefix, i)
            if self.docker:
                lines += [
                    self._docker("exec", "-w", "/composer/package", "-e",
                                 "COMPOSER_PORTS=eth0 eth1", name, "sh", "./stop.sh"),
                    self._vsctl("del-port", self.graph, "%sa%d" % (self.prefix, i)),
                    self._vsctl("del-port", self.graph, "%sb%d" % (self.prefix, i)),
                    self._docker("rm", "-f", name) + " >/dev/null",
                ]
                continue
            lines += [
                _q("ip", "netns", "exec", name, "env", "-C", self.package,
                   "COMPOSER_PORTS=eth0 eth1", "COMPOSER_ACTION=stop", "sh", "./stop.sh"),
                self._vsctl("del-port", self.graph, "%sa%d" % (self.prefix, i)),
                self._vsctl("del-port", self.graph, "%sb%d" % (self.prefix, i)),
                _q("ip", "netns", "del", name),
            ]
        lines.append(self._vsctl("del-br", self.graph))
        return "\n".join(lines)

    def _remove_containers(self) -> list:
        """Every container of the script's (its names), at once: not timed."""
        if not self.docker:
            return []
        return ["%s | xargs -r %s >/dev/null" % (
            self._docker("ps", "-aq", "--filter", "name=^/%sf" % self.prefix),
            self._docker("rm", "-f"))]

    def quick_teardown(self) -> str:
        """What deploy() made, removed at once rather than one function after another (not
        a figure: at 500 docker functions the timed teardown takes 20 minutes), LSI-0's
        stand-in made again."""
        return "\n".join(self._remove_containers() + [
            self._vsctl("--if-exists", "del-br", self.graph),
            self._vsctl("--if-exists", "del-br", self.lsi0),
            self.setup()])

    def cleanup(self) -> str:
        """Whatever the script made, also after an interrupt."""
        return "\n".join(self._remove_containers() + [
            self._vsctl("--if-exists", "del-br", self.graph),
            self._vsctl("--if-exists", "del-br", self.lsi0)])
