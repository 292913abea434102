"""The SF repository: the templates the node knows, and the image store.

Templates come from three places; for one id, a configured template wins over a remote
one, which wins over a built-in one:
  - built in: the native function packages shipped in nsf/ (packed into <state>/nsf at
    start, each with the sha256 of its package) and the decomposition templates shipped
    there (a template.json with a "decomposition" and no scripts, e.g. secure-gateway);
  - remote: the templates each of repository.urls lists in its index.json
    ({"templates": [template, ...]}, templates shaped like nsf/*/template.json; an image
    named without a URL is downloaded from the same repository). Read when the agent
    starts, and again when a commit asks for a capability or template the node does not
    know, before the commit waits for its turn (at most every repository.refresh-seconds);
    kept in <state>/images/index.json so that a restart without the network knows them;
  - configured: composer-templates in running.
The images themselves are in the image store (images.py).
"""

import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import parameters
from .images import ImageStore, sha256_of

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

REFRESH_EVERY = 30.0


class Repository:
    def __init__(self, package_dir, image_dir=None, urls=(), timeout: float = 30.0,
                 refresh_every: float = REFRESH_EVERY):
        self.package_dir = Path(package_dir)
        self.refresh_every = float(refresh_every)
        self.images = ImageStore(image_dir or self.package_dir.parent / "images", urls, timeout)
        self.urls = list(self.images.urls)
        self.builtin: dict = {}
        self.remote: dict = {}
        self.configured: dict = {}
        self._refreshed = 0.0
        self._refresh_lock = threading.Lock()

    def load_builtin(self) -> None:
        """Pack the shipped native functions into package_dir and read their templates,
        and the shipped decomposition templates."""
        from nsf import packages
        self.package_dir.mkdir(parents=True, exist_ok=True)
        built = packages.build(self.package_dir)
        self.builtin = {}
        for name, path in sorted(built.items()):
            template = dict(packages.load_template(path))
            template.setdefault("id", name)
            parameters.check_declarations(template)
            template["image-uri"] = str(path)
            template["image-sha256"] = sha256_of(path)
            template["source"] = "built-in"
            self.builtin[template["id"]] = template
        for template in packages.decompositions():
            template = dict(template, source="built-in")
            self.builtin[template["id"]] = template
        LOG.info("repository: %d built-in templates (%s)", len(self.builtin),
                 ", ".join(sorted(self.builtin)))
        self._load_cached_index()
        self.images.remove_incomplete()

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

    def load_builtin_guest(self, guest_dir) -> None:
        """Build the kvm functions' guest into guest_dir (nsf/guest.py: once; nothing when
        it is built from the same inputs) and add the kvm templates of the shipped
        packages (nsf/<name>/kvm.json: kvm-firewall)."""
        from nsf import guest
        try:
            guest.build(guest_dir)
        except (guest.GuestBuildError, OSError) as exc:
            LOG.warning("repository: no built-in kvm functions: the guest cannot be built "
                        "(%s)", exc)
            return
        built = guest.templates(guest_dir)
        for template in built:
            parameters.check_declarations(template)
            template["source"] = "built-in"
            self.builtin[template["id"]] = template
        LOG.info("repository: %d built-in kvm functions (%s)", len(built),
                 ", ".join(t["id"] for t in built))

    def set_configured(self, templates: list) -> None:
        self.configured = {t["id"]: t for t in templates}

    def configured_templates(self) -> list:
        return list(self.configured.values())

    def templates(self) -> list:
        merged = dict(self.builtin)
        merged.update(self.remote)
        merged.update(self.configured)
        return [merged[k] for k in sorted(merged)]

    def get(self, template_id: str) -> dict | None:
        return (self.configured.get(template_id) or self.remote.get(template_id)
                or self.builtin.get(template_id))

    def capabilities(self) -> dict:
        """functional capability -> templates that provide it."""
        out: dict = {}
        for template in self.templates():
            out.setdefault(template["functional-capability"], []).append(template)
        return out

    # --- images ---

    def image_path(self, template: dict) -> str:
        return self.images.path(template)

    def image_problems(self, template: dict) -> list:
        return self.images.problems(template)

    def fetch_image(self, template: dict, progress=None) -> str:
        return self.images.fetch(template, progress)

    # --- remote templates ---

    def knows(self, function) -> bool:
        """Whether some template provides what function asks for."""
        if function.template is not None:
            return self.get(function.template) is not None
        return any(t["functional-capability"] == function.capability for t in self.templates())

    def refresh(self, force: bool = False) -> bool:
        """Read every repository's index again (unless forced, at most every refresh_every
        seconds); whether the remote templates changed. A repository that cannot be read
        keeps the templates it served; the failure is logged."""
        if not self.urls:
            return False
        with self._refresh_lock:
            if not force and time.monotonic() - self._refreshed < self.refresh_every:
                return False
            self._refreshed = time.monotonic()
            found = {}
            for base in self.urls:
                try:
                    found.update(self._index(base))
                except (OSError, ValueError, urllib.error.URLError) as exc:
                    LOG.warning("repository %s: cannot read its index: %s", base,
                                getattr(exc, "reason", None) or exc)
                    found.update({tid: t for tid, t in self.remote.items()
                                  if t.get("repository") == base})
            changed = found != self.remote
            self.remote = found
            if changed:
                self._save_index()
                LOG.info("repository: %d remote templates (%s)", len(found),
                         ", ".join(sorted(found)) or "none")
            return changed

    def _index(self, base: str) -> dict:
        request = urllib.request.Request(base + "index.json",
                                         headers={"User-Agent": "composer-agent"})
        with urllib.request.urlopen(request, timeout=self.images.timeout) as response:
            data = json.loads(response.read(16 << 20))
        out = {}
        for template in data.get("templates", ()):
            if not isinstance(template, dict) or not template.get("id") or \
                    not template.get("functional-capability"):
                raise ValueError("a template without id or functional-capability")
            parameters.check_declarations(template)
            out[template["id"]] = dict(template, source=base, repository=base)
        return out

    def _cache(self) -> Path:
        return self.images.root / "index.json"

    def _save_index(self) -> None:
        path = self._cache()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps({"templates": list(self.remote.values())}))
            os.replace(tmp, path)
        except OSError as exc:
            LOG.warning("repository: cannot keep the remote templates in %s: %s", path, exc)

    def _load_cached_index(self) -> None:
        if not self.urls:
            return
        try:
            data = json.loads(self._cache().read_text())
        except (OSError, ValueError):
            return
        self.remote = {t["id"]: t for t in data.get("templates", ())
                       if t.get("repository") in self.urls}
