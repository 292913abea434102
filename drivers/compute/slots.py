"""Prepared slots of native functions (the PREPARED_SLOTS capability, base.py).

A slot is what a native function needs before its package runs: its namespace and one
veth pair per port (eth0, eth1, ... inside), the node ends ready for the vSwitch; state
"spare". create_prepared fills it (ports get their ids, MACs and addresses, the package
is unpacked, `create` runs) without touching the node ends, so the vSwitch does not see a
change; release empties it again (the undo of create_prepared). destroy removes a slot.
agent/engine/spares.py keeps a pool of them per graph.
"""

import logging
import shutil
import time
from pathlib import Path

from .. import netlink
from ..errors import DriverError, ResourceExists
from .base import FunctionPort, FunctionSpec, PreparedSlotsDriver
from .instances import CREATED, CREATING, PAUSED, RUNNING, SPARE

LOG = logging.getLogger(__name__)


class PreparedSlots(PreparedSlotsDriver):
    """prepare / create_prepared / release for NativeDriver, on its metadata, ports and
    scripts (the methods it defines)."""

    def prepare(self, instance: str, vswitch_ifnames: tuple, labels: dict | None = None) -> None:
        """The namespace and a veth pair per name (eth0, eth1, ... inside), both ends up and
        the node ends ready for the vSwitch, as create() makes them; state "spare"."""
        self._check_once()
        directory = self._dir(instance)
        ports = [self._validate_port(FunctionPort("port%d" % n, name))
                 for n, name in enumerate(vswitch_ifnames)]
        self._check_unique(ports)
        with self._lock(instance):
            self._check_free(instance, directory, ports)
            meta = {"version": 1, "instance": instance, "node_netns": self.netns,
                    "labels": dict(labels or {}), "ports": [], "state": CREATING,
                    "dir": str(directory), "created": time.time()}
            directory.mkdir(parents=True)
            try:
                self._save(meta)
                netlink.netns_add(instance)
                self._add_ports(meta, ports)
                meta["spare_ports"] = [dict(p) for p in meta["ports"]]
                meta["state"] = SPARE
                self._save(meta)
            except BaseException:
                self._remove_after_failure(meta, "preparing")
                raise
            finally:
                netlink.release(instance)
        LOG.debug("prepared native slot %s (%d ports)", instance, len(ports))


    def create_prepared(self, spec: FunctionSpec) -> tuple:
        """create() in a slot of prepare(): the ports get their ids, MACs and addresses, the
        package is unpacked and `create` runs. The vSwitch ends are not touched, so the node
        namespace sees no link change. On failure the slot is emptied (_empty_slot)."""
        self._check_once()
        instance = spec.instance
        ports = [self._validate_port(p) for p in spec.ports]
        self._check_unique(ports)
        with self._lock(instance):
            meta = self._load(instance)
            if meta.get("state") != SPARE:
                raise ResourceExists("native function instance %s is not a prepared slot"
                                     % instance, resource=instance)
            spare_ports = meta["spare_ports"]
            if [p.vswitch_ifname for p in ports] != [p["vswitch_ifname"] for p in spare_ports]:
                raise DriverError("the prepared slot has the ports %s, not %s" % (
                    ", ".join(p["vswitch_ifname"] for p in spare_ports),
                    ", ".join(p.vswitch_ifname for p in ports)), resource=instance)
            directory = Path(meta["dir"])
            meta["spare_labels"] = meta["labels"]
            meta.update({
                "template": spec.template.get("id") if spec.template else None,
                "image": spec.image, "labels": dict(spec.labels),
                "parameters": list(spec.parameters), "cpu_cores": list(spec.cpu_cores),
                "state": CREATING, "package_dir": str(directory / "package"),
                "run_dir": str(directory / "run")})
            failure = None
            try:
                self._save(meta)
                self._install_package(meta, len(ports))
                for record, port in zip(meta["ports"], ports):
                    self._fill_port(instance, record, port)
                self._save(meta)
                self._run_script(meta, "create")
                meta["state"] = CREATED
                self._save(meta)
            except BaseException as exc:
                LOG.warning("creating %s in its prepared slot failed; emptying the slot",
                            instance)
                failure = exc
                self._empty_slot_or_remove(meta)
            finally:
                netlink.release(instance)
        if failure is not None:
            raise failure
        LOG.info("created native function %s in a prepared slot (%d ports)", instance,
                 len(ports))
        return self._attachments(meta)


    def release(self, instance: str) -> None:
        """The function made in a prepared slot goes and the slot is left as prepare() made
        it (the undo of create_prepared): stop, `destroy`, then _empty_slot."""
        with self._lock(instance):
            meta = self._load(instance)
            if "spare_ports" not in meta:
                raise DriverError("%s was not made in a prepared slot" % instance,
                                  resource=instance)
            if meta["state"] == SPARE:
                return
            self._unwatch(instance)
            try:
                self._thaw(meta)
                if meta["state"] in (RUNNING, PAUSED):
                    self._run_script_logged(meta, "stop")
                if meta["state"] != CREATING and meta.get("scripts"):
                    self._run_script_logged(meta, "destroy")
                self._empty_slot(meta)
            finally:
                netlink.release(instance)
        LOG.info("released native function %s; its slot is prepared again", instance)


    def _empty_slot_or_remove(self, meta: dict) -> None:
        try:
            self._empty_slot(meta)
        except Exception:  # noqa: BLE001 - a slot is a cache: losing it costs speed only
            LOG.exception("emptying the slot %s failed; removing it", meta["instance"])
            try:
                self._teardown(meta)
            except Exception:  # the original error is the one to report
                LOG.exception("removing the slot %s failed", meta["instance"])

    def _empty_slot(self, meta: dict) -> None:
        """Back to what prepare() made: every process killed, a fresh namespace, the same
        function-side ends (moved out to a parking namespace and back, MACs as prepared),
        no package. The vSwitch ends are never deleted: the vSwitch holds them (a veth
        made again under the same name is not opened again by the userspace datapath)."""
        instance = meta["instance"]
        spare_ports = meta["spare_ports"]
        self._thaw(meta)
        self._kill_processes(meta)
        parking = instance + "-x"
        netlink.netns_add(parking, loopback_up=False)
        try:
            for port in spare_ports:
                netlink.link_move(port["ifname"], parking, netns=instance)
            netlink.netns_delete(instance)
            netlink.release(instance)
            netlink.netns_add(instance)
            for port in spare_ports:
                netlink.link_move(port["ifname"], instance, netns=parking)
                netlink.link_set(port["ifname"], instance, mac=port["mac"], up=True)
            netlink.tx_checksum_off(*(p["ifname"] for p in spare_ports), netns=instance)
        finally:
            netlink.netns_delete(parking)
            netlink.release(parking)
        directory = Path(meta["dir"])
        for part in ("package", "run", "logs"):
            shutil.rmtree(directory / part, ignore_errors=True)
        spare = {"version": 1, "instance": instance, "node_netns": meta.get("node_netns"),
                 "labels": meta.get("spare_labels", meta["labels"]),
                 "ports": [dict(p) for p in spare_ports], "spare_ports": spare_ports,
                 "state": SPARE, "dir": meta["dir"], "created": meta.get("created")}
        meta.clear()
        meta.update(spare)
        self._save(meta)

    @staticmethod
    def _fill_port(instance: str, record: dict, port: FunctionPort) -> None:
        """A prepared port becomes the function's: id, MAC, IPv4 address."""
        record.update({"port_id": port.port_id, "technology": port.technology,
                       "ipv4_address": port.ipv4_address,
                       "ipv4_prefix_length": (port.ipv4_prefix_length or 24
                                              if port.ipv4_address else None)})
        if port.mac_address and port.mac_address.lower() != record["mac"].lower():
            netlink.link_set(record["ifname"], instance, mac=port.mac_address)
            record["mac"] = port.mac_address
        if port.ipv4_address:
            netlink.addr_add(record["ifname"], port.ipv4_address, record["ipv4_prefix_length"],
                             netns=instance)

