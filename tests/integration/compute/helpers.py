"""Helpers for the compute driver tests: specs and throw-away packages."""

import json
from pathlib import Path

from drivers.compute.base import FunctionPort, FunctionSpec
from nsf import packages

# A package whose start leaves a process running (a loop of sleeps); stop kills it.
DAEMON = {
    "daemon": "while :; do sleep 0.2; done\n",
    "start": 'set -e\n"$COMPOSER_PACKAGE_DIR/daemon" > /dev/null 2>&1 &\necho $! > "$COMPOSER_RUN_DIR/pid"\n',
    "stop": 'kill "$(cat "$COMPOSER_RUN_DIR/pid")"\n',
}


def spec(instance: str, image: str, ports, parameters=(), labels=None) -> FunctionSpec:
    """A FunctionSpec for a package; ports as (port_id, vswitch_ifname[, 'a.b.c.d/len'])."""
    return FunctionSpec(instance=instance, template=packages.load_template(image), image=image,
                        ports=tuple(port(*p) for p in ports), parameters=tuple(parameters),
                        labels=labels or {})


def port(port_id: str, vswitch_ifname: str, address: str | None = None,
         mac: str | None = None) -> FunctionPort:
    ip, plen = address.split("/") if address else (None, None)
    return FunctionPort(port_id, vswitch_ifname, mac_address=mac, ipv4_address=ip,
                        ipv4_prefix_length=int(plen) if plen else None)


def make_package(directory: Path, name: str, scripts: dict[str, str], **template) -> str:
    """A test package from sh script bodies by step name and template fields; its .tgz."""
    source = Path(directory) / name
    source.mkdir(parents=True)
    body = {"id": name, "functional-capability": "test", "execution-environment": "native",
            "port-count": 2, "min-ports": 0, "max-ports": 8, "port-technology": "veth"}
    body.update({k.replace("_", "-"): v for k, v in template.items()})
    (source / "template.json").write_text(json.dumps(body))
    for step, text in scripts.items():
        script = source / step
        script.write_text("#!/bin/sh\n" + text)
        script.chmod(0o755)
    return packages.pack(source, Path(directory) / ("%s.tgz" % name))
