"""The agent's own configuration: a TOML file over embedded defaults.

Every key has a default, so the agent starts with no file at all (`make run`). See
examples/composer-agent.toml for the commented reference.
"""

import copy
import ipaddress
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(Exception):
    """The configuration file is unreadable or holds a bad value."""


DEFAULTS = {
    "node": {
        "id": "",                       # default: the host name
        "name": "",
        "management-address": "",
    },
    "netconf": {
        "address": "0.0.0.0",
        "port": 830,
        "max-message-size": 64 * 1024 * 1024,
        "password-authentication": False,
        "idle-timeout": 0,              # seconds; 0 keeps idle sessions open
        "hello-timeout": 30,
        # What one message may hold (refused with too-big beyond): elements, nesting
        # (libxml2 stops at 256 anyway), attributes per element; base:1.1 chunks per
        # message (more: the session is closed).
        "max-elements": 500_000,
        "max-depth": 256,
        "max-attributes": 256,
        "max-chunks": 100_000,
        "max-filter-selections": 10_000,  # distinct node selections of one filter
        # Sessions open at once, in total and per user; SSH connections still
        # authenticating, and the seconds they get. Beyond a limit: closed at once.
        "max-sessions": 256,
        "max-sessions-per-user": 64,
        "max-unauthenticated": 32,
        "login-timeout": 60,
        # Failed logins per source address: each answer waits delay * 2^(n-1) seconds
        # (at most 16); after login-failure-limit failures the source's connections are
        # refused until login-block-time seconds have passed without a failure.
        "login-failure-delay": 1.0,
        "login-failure-limit": 10,
        "login-block-time": 300,
        # The recovery session of RFC 8341: this NETCONF user bypasses access control
        # (its key goes in <state>/users/<name>/authorized_keys, root's to give); "" none.
        "nacm-recovery-user": "recovery",
        "extra-yang-dirs": [],          # more modules for the datastores (benchmarks, tests)
        "extra-yang-modules": [],
    },
    "state": {
        "dir": "/var/lib/composer-agent",
    },
    "datastore": {
        # <get> and <get-data> that build operational state at the same time; the others
        # wait their turn in order. Changes of running have threads of their own.
        "concurrent-reads": 1,
    },
    "notifications": {
        # The replay log of the NETCONF stream (RFC 5277 startTime), kept under
        # <state>/notifications: at most this many notifications, none older than
        # replay-max-age seconds. replay-max-events = 0: no replay log (no :replay).
        "replay-max-events": 1000,     # about 2 KB of memory each
        "replay-max-age": 7 * 86400,
        # Notifications queued per subscriber: one that falls further behind (its client
        # does not read) is ended.
        "subscriber-queue": 1000,
        # Dynamic subscriptions (RFC 8639 establish-subscription: event stream and
        # YANG-push) at once on the server; beyond: insufficient-resources.
        "max-subscriptions": 100,
        # The shortest period of a periodic YANG-push subscription, in seconds.
        "push-min-period": 0.1,
    },
    "alarms": {
        # Thresholds (percent; 0: off) of the memory in use and of the CPU load (the
        # 1-minute load average over the cores), sampled every interval seconds.
        "memory-percent": 0.0,
        "cpu-percent": 0.0,
        "interval": 5.0,
        # The memory in use and the CPU load crossing a multiple of this many percent is a
        # change of the domain's resources (YANG-push on-change, the ZeroMQ feed); 0: off.
        "resource-step": 10.0,
    },
    "publish": {
        # The ZeroMQ feed of the domain description (agent/publish/feed.py): off by
        # default; on, an XPUB socket bound to zmq-endpoint (loopback by default).
        "zmq": False,
        "zmq-endpoint": "tcp://127.0.0.1:5556",
        # Also a topic per graph with its status changes (composer/<node>/graph/<id>).
        "zmq-graph-topics": False,
    },
    "ovs": {
        "mode": "private",              # "private": own ovsdb-server + vswitchd; "existing"
        "db-socket": "unix:/var/run/openvswitch/db.sock",   # used when mode = "existing"
        "run-dir": "",                  # private mode; default <state>/ovs
        "datapath-type": "auto",        # "system", "netdev" or "auto"
        "netns": "",                    # the network namespace the node lives in ("" = this one)
        "stop-on-exit": True,           # private mode: stop the daemons on a clean exit
    },
    "lsi0": {
        "name": "lsi0",
        "interfaces": [],
        "neighbors": {},                # interface -> neighbour domain, for the domain description
        "addresses": {},                # interface -> "a.b.c.d/len": the node's tunnel endpoints
    },
    "compute": {
        "execution-environments": ["native"],
        "parallel-starts": 8,
        "script-timeout": 30,
        # Prepared slots per graph for new native functions (namespace and ports ready on
        # the graph-LSI, see agent/engine/spares.py): a function added to a running graph
        # then costs the vSwitch no reconfiguration. Each slot is a namespace and
        # spare-slot-ports veth pairs held while the graph runs. 0: none.
        "spare-slots": 2,
        "spare-slot-ports": 2,
        # ... once the node's vSwitch has this many ports: below, a reconfiguration is
        # cheap, and the slots' ports would only make each graph's delete slower.
        "spare-slots-min-ports": 200,
        # Memory (MiB) the node keeps for itself: functions may hold the rest (the resolver
        # refuses an implementation that does not fit, see agent/compute/allocation.py).
        "reserved-memory": 256,
        # Shared cores' worth of CPU functions may ask for, per core not owned by a
        # poll-mode function (most functions idle most of the time).
        "cpu-allocation-ratio": 32.0,
        # environment -> the resolver's cost of one instance beyond its memory (MiB), in
        # place of the measured ones (agent/compute/resolver.py ENVIRONMENT_COSTS).
        "environment-costs": {},
    },
    "repository": {
        # HTTP(S) repositories of templates (<url>/index.json) and images (<url>/<name>),
        # downloaded once into <state>/images and checked against their sha256.
        "urls": [],
        "timeout": 30.0,                # seconds without data before a download fails
        # A commit asking for a capability or template no template provides reads the
        # indexes again, at most this often.
        "refresh-seconds": 30.0,
    },
    "docker": {
        # The docker execution environment (compute.execution-environments "docker").
        "mode": "private",              # "private": the agent's own dockerd; "existing"
        "host": "unix:///run/docker.sock",  # dockerd's API when mode = "existing"
        "run-dir": "",                  # private mode; default <state>/dockerd (stopped
                                        # on a clean exit when ovs.stop-on-exit is)
        "runtime": "auto",              # private mode: the OCI runtime, "crun", "runc" or
                                        # "auto" (crun when installed, else runc)
    },
    "kvm": {
        # The kvm execution environment (compute.execution-environments "kvm"): the guest
        # the built-in kvm functions boot (nsf/guest.py), built there at start when it is
        # not yet (a Debian cloud kernel fetched with apt-get download, busybox, nft).
        "guest": "",                    # default: nsf/dist/guest, where `make guest` puts it
    },
    "dpdk": {
        # The DPDK execution environment (compute.execution-environments "dpdk"): testpmd
        # forwarders on veth ports (drivers/compute/dpdk.py).
        "port-driver": "af_packet",     # or "af_xdp"
        "hugepages": "auto",            # "auto": when enough are free; "yes"; "no"
        "memory": 128,                  # MiB per function
    },
    "repair": {
        # Watch what is deployed (OVSDB and flow monitors, netlink, process exits, the
        # private OVS's daemons) and repair what breaks (agent/engine/converge.py).
        "enabled": True,
        "attempts": 5,                  # repairs of a graph in a row before it is failed
        "backoff-ms": 500,              # before the second attempt; doubles after each
        "backoff-max-ms": 30000,
        "stable-seconds": 60,           # a repair that held this long starts a new count
    },
    "resources": {
        "prefix": "cnc",                # every node resource the agent creates starts with it
    },
    "logging": {
        "level": "info",
    },
    "debug": {
        # Tests only: before each engine step the agent reads this file; a step whose
        # description equals its content fails as if its driver had failed.
        "fault-file": "",
    },
}

_KNOWN_ENVIRONMENTS = ("native", "docker", "kvm", "dpdk")

# Tables whose keys are the operator's (interface names), not settings.
_FREE_FORM_TABLES = {"lsi0.neighbors", "lsi0.addresses", "compute.environment-costs"}


@dataclass
class AgentConfig:
    """The effective configuration, as nested dicts keyed like the TOML file."""
    data: dict = field(default_factory=lambda: copy.deepcopy(DEFAULTS))
    source: str = "embedded defaults"

    def get(self, section: str, key: str):
        return self.data[section][key]

    @property
    def node_id(self) -> str:
        return self.data["node"]["id"] or socket.gethostname().split(".")[0]

    @property
    def state_dir(self) -> Path:
        return Path(self.data["state"]["dir"])

    @property
    def ovs_run_dir(self) -> Path:
        return Path(self.data["ovs"]["run-dir"] or self.state_dir / "ovs")

    @property
    def kvm_guest_dir(self) -> Path:
        if self.data["kvm"]["guest"]:
            return Path(self.data["kvm"]["guest"])
        from nsf import guest
        return guest.SOURCE_DIR / "dist" / "guest"

    @property
    def docker_run_dir(self) -> Path:
        return Path(self.data["docker"]["run-dir"] or self.state_dir / "dockerd")

    @property
    def prefix(self) -> str:
        return self.data["resources"]["prefix"]


def _merge(base: dict, override: dict, where: str) -> None:
    for key, value in override.items():
        if key not in base:
            raise ConfigError("unknown setting %s%s (known: %s)"
                              % (where, key, ", ".join(sorted(base))))
        default = base[key]
        if isinstance(default, dict) and where + key not in _FREE_FORM_TABLES:
            if not isinstance(value, dict):
                raise ConfigError("%s%s must be a table" % (where, key))
            _merge(default, value, "%s%s." % (where, key))
            continue
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError("%s%s must be true or false" % (where, key))
        if isinstance(default, int) and not isinstance(default, bool) and (
                not isinstance(value, int) or isinstance(value, bool)):
            raise ConfigError("%s%s must be an integer" % (where, key))
        if isinstance(default, float) and (not isinstance(value, (int, float))
                                           or isinstance(value, bool)):
            raise ConfigError("%s%s must be a number" % (where, key))
        if isinstance(default, str) and not isinstance(value, str):
            raise ConfigError("%s%s must be a string" % (where, key))
        if isinstance(default, list) and not isinstance(value, list):
            raise ConfigError("%s%s must be a list" % (where, key))
        base[key] = value


def _check(config: AgentConfig) -> None:
    data = config.data
    if data["ovs"]["mode"] not in ("private", "existing"):
        raise ConfigError("ovs.mode must be 'private' or 'existing', not %r" % data["ovs"]["mode"])
    if data["docker"]["mode"] not in ("private", "existing"):
        raise ConfigError("docker.mode must be 'private' or 'existing', not %r"
                          % data["docker"]["mode"])
    if data["docker"]["runtime"] not in ("auto", "crun", "runc"):
        raise ConfigError("docker.runtime must be 'auto', 'crun' or 'runc', not %r"
                          % data["docker"]["runtime"])
    if data["dpdk"]["port-driver"] not in ("af_packet", "af_xdp"):
        raise ConfigError("dpdk.port-driver must be 'af_packet' or 'af_xdp', not %r"
                          % data["dpdk"]["port-driver"])
    if data["dpdk"]["hugepages"] not in ("auto", "yes", "no"):
        raise ConfigError("dpdk.hugepages must be 'auto', 'yes' or 'no', not %r"
                          % data["dpdk"]["hugepages"])
    if not 16 <= data["dpdk"]["memory"] <= 65536:
        raise ConfigError("dpdk.memory must be within 16..65536 (MiB)")
    if data["ovs"]["datapath-type"] not in ("auto", "system", "netdev"):
        raise ConfigError("ovs.datapath-type must be 'auto', 'system' or 'netdev'")
    for env in data["compute"]["execution-environments"]:
        if env not in _KNOWN_ENVIRONMENTS:
            raise ConfigError("unknown execution environment %r in "
                              "compute.execution-environments (known: %s)"
                              % (env, ", ".join(_KNOWN_ENVIRONMENTS)))
    if not 0 <= data["compute"]["spare-slots"] <= 16:
        raise ConfigError("compute.spare-slots must be within 0..16")
    if not 1 <= data["compute"]["spare-slot-ports"] <= 8:
        raise ConfigError("compute.spare-slot-ports must be within 1..8")
    if data["compute"]["spare-slots-min-ports"] < 0:
        raise ConfigError("compute.spare-slots-min-ports must not be negative")
    compute = data["compute"]
    if compute["reserved-memory"] < 0:
        raise ConfigError("compute.reserved-memory must not be negative")
    if compute["cpu-allocation-ratio"] <= 0:
        raise ConfigError("compute.cpu-allocation-ratio must be positive")
    for env, cost in compute["environment-costs"].items():
        if env not in _KNOWN_ENVIRONMENTS or isinstance(cost, bool) or \
                not isinstance(cost, (int, float)) or cost < 0:
            raise ConfigError("compute.environment-costs: %r must be a known execution "
                              "environment (%s) with a cost of at least 0"
                              % (env, ", ".join(_KNOWN_ENVIRONMENTS)))
    for url in data["repository"]["urls"]:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError("repository.urls: %r is not an http:// or https:// URL" % (url,))
    if data["repository"]["timeout"] <= 0:
        raise ConfigError("repository.timeout must be positive")
    if data["repository"]["refresh-seconds"] < 0:
        raise ConfigError("repository.refresh-seconds must not be negative")
    repair = data["repair"]
    if not 1 <= repair["attempts"] <= 1000:
        raise ConfigError("repair.attempts must be within 1..1000")
    if not 1 <= repair["backoff-ms"] <= repair["backoff-max-ms"]:
        raise ConfigError("repair.backoff-ms must be at least 1 and at most "
                          "repair.backoff-max-ms")
    if repair["stable-seconds"] < 0:
        raise ConfigError("repair.stable-seconds must not be negative")
    if not 1 <= data["datastore"]["concurrent-reads"] <= 64:
        raise ConfigError("datastore.concurrent-reads must be within 1..64")
    notifications = data["notifications"]
    if not 0 <= notifications["replay-max-events"] <= 10_000_000:
        raise ConfigError("notifications.replay-max-events must be within 0..10000000")
    if notifications["replay-max-age"] < 0:
        raise ConfigError("notifications.replay-max-age must not be negative")
    if not 1 <= notifications["subscriber-queue"] <= 1_000_000:
        raise ConfigError("notifications.subscriber-queue must be within 1..1000000")
    if not 0 <= notifications["max-subscriptions"] <= 100_000:
        raise ConfigError("notifications.max-subscriptions must be within 0..100000")
    if not 0.01 <= notifications["push-min-period"] <= 86400:
        raise ConfigError("notifications.push-min-period must be within 0.01..86400 seconds")
    alarms = data["alarms"]
    for key in ("memory-percent", "cpu-percent", "resource-step"):
        if not 0 <= alarms[key] <= 100:
            raise ConfigError("alarms.%s must be within 0..100 (0: off)" % key)
    if not 0.1 <= alarms["interval"] <= 3600:
        raise ConfigError("alarms.interval must be within 0.1..3600 seconds")
    endpoint = data["publish"]["zmq-endpoint"]
    if not isinstance(endpoint, str) or not endpoint.startswith(("tcp://", "ipc://",
                                                                 "inproc://")):
        raise ConfigError("publish.zmq-endpoint must be a ZeroMQ endpoint (tcp://host:port, "
                          "ipc://path)")
    port = data["netconf"]["port"]
    if not 0 <= port <= 65535:
        raise ConfigError("netconf.port must be within 0..65535")
    _check_netconf_limits(data["netconf"])
    prefix = data["resources"]["prefix"]
    if not (1 <= len(prefix) <= 4 and prefix.isalnum() and prefix.islower()):
        raise ConfigError("resources.prefix must be 1 to 4 lower-case letters or digits, "
                          "so that interface names stay within 15 characters")
    for name in data["lsi0"]["interfaces"]:
        if not isinstance(name, str) or not 1 <= len(name) <= 15:
            raise ConfigError("lsi0.interfaces holds an invalid interface name %r" % (name,))
    for name, address in data["lsi0"]["addresses"].items():
        if name not in data["lsi0"]["interfaces"]:
            raise ConfigError("lsi0.addresses names %s, which is not in lsi0.interfaces" % name)
        try:
            interface = ipaddress.IPv4Interface(address)
        except (ValueError, TypeError):
            raise ConfigError("lsi0.addresses.%s must be an IPv4 address with its prefix "
                              "length, such as \"10.0.0.1/24\"" % name) from None
        if "/" not in str(address) or interface.network.prefixlen == 32:
            raise ConfigError("lsi0.addresses.%s needs a prefix length shorter than /32" % name)


_NETCONF_RANGES = {
    "max-message-size": (1024, 1 << 32), "max-elements": (16, 1 << 31),
    "max-depth": (2, 256), "max-attributes": (1, 1 << 20), "max-chunks": (1, 1 << 31),
    "max-filter-selections": (1, 1 << 31),
    "max-sessions": (1, 1 << 20), "max-sessions-per-user": (1, 1 << 20),
    "max-unauthenticated": (1, 1 << 20), "login-timeout": (1, 86400),
    "login-failure-delay": (0, 60), "login-failure-limit": (0, 1 << 20),
    "login-block-time": (0, 86400 * 7), "hello-timeout": (0, 86400),
    "idle-timeout": (0, 1 << 31),
}


def _check_netconf_limits(netconf: dict) -> None:
    for key, (low, high) in _NETCONF_RANGES.items():
        if not low <= netconf[key] <= high:
            raise ConfigError("netconf.%s must be within %s..%s" % (key, low, high))


def load(path: str | Path | None = None, overrides: dict | None = None) -> AgentConfig:
    """The defaults, updated from the TOML file at path and then from overrides."""
    config = AgentConfig()
    if path is not None:
        try:
            with open(path, "rb") as stream:
                from_file = tomllib.load(stream)
        except OSError as exc:
            raise ConfigError("cannot read %s: %s" % (path, exc.strerror)) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("%s: %s" % (path, exc)) from None
        _merge(config.data, from_file, "")
        config.source = str(path)
    if overrides:
        _merge(config.data, overrides, "")
    _check(config)
    return config
