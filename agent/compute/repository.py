"""The SF repository: the templates the node knows, built in and configured.

Built-in templates come from the native function packages shipped in nsf/ (packed into
the state directory at start); configured ones from composer-templates in running.
"""

import logging
from pathlib import Path

from . import parameters

LOG = logging.getLogger(__name__)

# The DPDK function shipped: testpmd forwarding between its two ports, io (as they come)
# or mac (source MAC rewritten to the port's own).
DPDK_FORWARDER = {
    "id": "dpdk-forwarder",
    "description": "dpdk-testpmd forwarding between its two ports (a DPDK bump in the wire).",
    "functional-capability": "forwarder",
    "execution-environment": "dpdk",
    "port-count": 2,
    "port-technology": "veth",
    "cpu": 1,
    "memory": 128,
    "image-uri": "dpdk-testpmd",
    "parameters": [
        {"name": "forward-mode", "type": "enumeration", "values": ["io", "mac"],
         "description": "io: frames as they come (default); mac: source MAC rewritten"},
    ],
}


class Repository:
    def __init__(self, package_dir):
        self.package_dir = Path(package_dir)
        self.builtin: dict = {}
        self.configured: dict = {}

    def load_builtin(self) -> None:
        """Pack the shipped native functions into package_dir and read their templates."""
        from nsf import packages
        self.package_dir.mkdir(parents=True, exist_ok=True)
        built = packages.build(self.package_dir)
        self.builtin = {}
        for name, path in sorted(built.items()):
            template = dict(packages.load_template(path))
            template.setdefault("id", name)
            parameters.check_declarations(template)
            template["image-uri"] = str(path)
            template["source"] = "built-in"
            self.builtin[template["id"]] = template
        LOG.info("repository: %d built-in native functions (%s)", len(self.builtin),
                 ", ".join(sorted(self.builtin)))

    def load_builtin_images(self, image_dir) -> None:
        """Build the container images of the shipped functions into image_dir (nsf/images.py:
        once; the same archive after) and add their docker templates."""
        from nsf import images
        try:
            built = images.build(image_dir)
        except images.ImageError as exc:
            LOG.warning("repository: no docker functions: %s", exc)
            return
        for name, template in sorted(built.items()):
            parameters.check_declarations(template)
            template["source"] = "built-in"
            self.builtin[template["id"]] = template
        LOG.info("repository: %d built-in docker functions (%s)", len(built),
                 ", ".join(sorted(t["id"] for t in built.values())))

    def load_builtin_dpdk(self, memory: int = 128) -> None:
        """Add the DPDK forwarder (drivers/compute/dpdk.py: dpdk-testpmd): capability
        "forwarder", a whole core (it busy-polls), memory MiB."""
        template = dict(DPDK_FORWARDER, memory=int(memory), source="built-in")
        parameters.check_declarations(template)
        self.builtin[template["id"]] = template
        LOG.info("repository: built-in DPDK function %s", template["id"])

    def set_configured(self, templates: list) -> None:
        self.configured = {t["id"]: t for t in templates}

    def configured_templates(self) -> list:
        return list(self.configured.values())

    def templates(self) -> list:
        """Configured templates override built-in ones with the same id."""
        merged = dict(self.builtin)
        merged.update(self.configured)
        return [merged[k] for k in sorted(merged)]

    def get(self, template_id: str) -> dict | None:
        return self.configured.get(template_id) or self.builtin.get(template_id)

    def capabilities(self) -> dict:
        """functional capability -> templates that provide it."""
        out: dict = {}
        for template in self.templates():
            out.setdefault(template["functional-capability"], []).append(template)
        return out
