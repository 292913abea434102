"""One OVSDB connection through the `ovs` IDL, shared safely between threads.

The IDL keeps an in-memory replica of the tables the driver uses. It is not thread-safe,
so every use holds one lock; a background thread keeps the replica fresh (and answers
keepalives) while nobody else holds it.

Lifecycle:
  1. OvsdbConnection(remote).connect(): fetch the schema from the server, register the
     columns below, start the IDL and wait for its first full copy of the database;
  2. transact(build): run build(txn, tables) on a fresh IDL transaction, commit, retry on
     TRY_AGAIN, then wait until ovs-vswitchd has applied the change (its cur_cfg reaches
     the next_cfg this transaction incremented) so that ofport numbers are known;
  3. read(fn): run fn(tables) on the replica under the lock;
  4. close(): stop the thread and the connection.
"""

import errno
import logging
import os
import threading
import time

import ovs.db.idl
import ovs.jsonrpc
import ovs.poller
import ovs.stream

from ..errors import CommandError, PrerequisiteError

LOG = logging.getLogger(__name__)

DATABASE = "Open_vSwitch"
COLUMNS = {
    "Open_vSwitch": ["bridges", "next_cfg", "cur_cfg", "ovs_version", "datapath_types",
                     "iface_types"],
    "Bridge": ["name", "ports", "datapath_type", "datapath_id", "protocols", "fail_mode",
               "external_ids", "other_config"],
    "Port": ["name", "interfaces", "external_ids"],
    "Interface": ["name", "type", "options", "ofport", "ofport_request", "external_ids",
                  "error", "mac"],
}
NAMED_TABLES = ("Bridge", "Port", "Interface")
MAX_ATTEMPTS = 20
IDLE_WAKE_MS = 1000


class NamedIdl(ovs.db.idl.Idl):
    """An IDL that keeps name -> row UUID for NAMED_TABLES, from its row notifications.

    A node with a thousand function ports has thousands of Port and Interface rows, and
    reading every row's name through the IDL costs tens of milliseconds: lookups by name
    must not scan. The IDL's own custom indexes cannot be used: rows inserted by a Python
    transaction reach them without a name and leave them with one, which they reject."""

    def __init__(self, remote, schema_helper, **kwargs):
        self.names = {table: {} for table in NAMED_TABLES}
        # Bridge row UUID -> the UUIDs of its ports, made when first asked for and kept
        # until the row changes: reading a bridge's `ports` makes a Row of each (~10 ms per
        # thousand), and "is this port on that LSI" is asked on every flow change.
        self.bridge_ports = {}
        self._changed_bridges = set()
        # listener(table, name): a Bridge or Port row was deleted (see OVSDriver.watch)
        self.listener = None
        super().__init__(remote, schema_helper, **kwargs)

    def notify(self, event, row, updates=None):
        if event == ovs.db.idl.ROW_DELETE and self.listener is not None and \
                row._table.name in ("Bridge", "Port"):
            self.listener(row._table.name, row.name)
        if row._table.name == "Bridge":
            self.bridge_ports.pop(row.uuid, None)
            if event != ovs.db.idl.ROW_DELETE:
                self._changed_bridges.add(row.uuid)
        names = self.names.get(row._table.name)
        if names is None:
            return
        if event == ovs.db.idl.ROW_DELETE:
            if names.get(row.name) == row.uuid:
                del names[row.name]
        else:
            names[row.name] = row.uuid

    def refresh_bridge_ports(self) -> None:
        """Make bridge_ports again for the bridges that changed (by the connection's own
        thread, after the update: a commit that comes later finds it made)."""
        changed, self._changed_bridges = self._changed_bridges, set()
        rows = self.tables["Bridge"].rows
        for uuid in changed:
            bridge = rows.get(uuid)
            if bridge is None or uuid in self.bridge_ports:
                continue
            uuids = [getattr(port, "uuid", None) for port in bridge.ports]
            if None not in uuids:       # else a port row is not in the replica yet
                self.bridge_ports[uuid] = frozenset(uuids)


def _block(poller: ovs.poller.Poller, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    poller.timer_wait(max(0, int(remaining * 1000)))
    poller.block()


def fetch_schema(remote: str, timeout: float) -> dict:
    """The Open_vSwitch schema as the server has it (it may be older or newer than ours)."""
    deadline = time.monotonic() + timeout
    error, stream = ovs.stream.Stream.open_block(ovs.stream.Stream.open(remote),
                                                 int(timeout * 1000))
    if error:
        raise PrerequisiteError("cannot reach the OVS database at %s (%s); is ovsdb-server "
                                "running?" % (remote, os.strerror(error)))
    rpc = ovs.jsonrpc.Connection(stream)
    try:
        request = ovs.jsonrpc.Message.create_request("get_schema", [DATABASE])
        error = rpc.send(request)
        while not error:
            rpc.run()
            error, msg = rpc.recv()
            if error == errno.EAGAIN:
                if time.monotonic() > deadline:
                    error = errno.ETIMEDOUT
                    break
                poller = ovs.poller.Poller()
                rpc.wait(poller)
                rpc.recv_wait(poller)
                _block(poller, deadline)
                error = 0
                continue
            if error:
                break
            if msg.id == request.id:
                if msg.type == ovs.jsonrpc.Message.T_ERROR:
                    raise PrerequisiteError("the database at %s has no %s database: %s"
                                            % (remote, DATABASE, msg.error))
                return msg.result
        raise PrerequisiteError("cannot read the OVS schema from %s (%s)"
                                % (remote, os.strerror(error)))
    finally:
        rpc.close()


class Tables:
    """Rows of the replica by table name, plus lookups by the `name` column.
    committed: the rows are only read (no transaction is changing them)."""

    def __init__(self, idl, committed: bool = False):
        self._idl = idl
        self._committed = committed

    def port_uuids(self, bridge) -> frozenset:
        """The UUIDs of the bridge's ports (kept by the IDL while the row is unchanged)."""
        cache = getattr(self._idl, "bridge_ports", None)
        if not self._committed or cache is None:
            return frozenset(port.uuid for port in bridge.ports)
        uuids = cache.get(bridge.uuid)
        if uuids is None:
            uuids = cache[bridge.uuid] = frozenset(port.uuid for port in bridge.ports)
        return uuids

    def rows(self, table: str):
        return self._idl.tables[table].rows.values()

    def table(self, table: str):
        return self._idl.tables[table]

    def by_name(self, table: str) -> dict:
        return {row.name: row for row in self.rows(table)}

    def find(self, table: str, name: str):
        """The row of table (one of NAMED_TABLES) called name, or None; no scan."""
        row_uuid = self._idl.names[table].get(name)
        if row_uuid is None:
            return None
        row = self._idl.tables[table].rows.get(row_uuid)
        # After a reconnect the IDL starts over and notifies every row again; an entry
        # whose row went meanwhile is stale, never wrong.
        return row if row is not None and row.name == name else None

    def exists(self, table: str, name: str) -> bool:
        return self.find(table, name) is not None

    @property
    def root(self):
        for row in self.rows("Open_vSwitch"):
            return row
        raise CommandError("the OVS database has no Open_vSwitch row (run ovs-vsctl init)")


class OvsdbConnection:
    """A thread-safe IDL connection with one-call transactions; see the module docstring."""

    def __init__(self, remote: str, timeout: float = 30.0):
        self.remote = remote
        self.timeout = timeout
        self.lock = threading.RLock()
        self.idl = None
        self._thread = None
        self._closed = False
        self._wake_r, self._wake_w = None, None

    # --- connection ---

    def connect(self) -> None:
        schema = fetch_schema(self.remote, min(self.timeout, 10.0))
        helper = ovs.db.idl.SchemaHelper(schema_json=schema)
        for table, columns in COLUMNS.items():
            present = [c for c in columns if c in schema["tables"].get(table, {})
                       .get("columns", {})]
            helper.register_columns(table, present)
        idl = NamedIdl(self.remote, helper)
        deadline = time.monotonic() + self.timeout
        while True:
            idl.run()
            if idl.tables["Open_vSwitch"].rows:
                break
            if time.monotonic() > deadline:
                idl.close()
                raise PrerequisiteError("the OVS database at %s sent no Open_vSwitch row "
                                        "within %.0f s" % (self.remote, self.timeout))
            poller = ovs.poller.Poller()
            idl.wait(poller)
            _block(poller, deadline)
        self.idl = idl
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._loop, name="ovsdb-idl", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            poller = ovs.poller.Poller()
            with self.lock:
                if self._closed:
                    return
                try:
                    self.idl.run()
                    self.idl.refresh_bridge_ports()
                    self.idl.wait(poller)
                except Exception:       # noqa: BLE001 - keep the replica alive; calls run too
                    LOG.exception("OVSDB connection to %s", self.remote)
            poller.fd_wait(self._wake_r, ovs.poller.POLLIN)
            poller.timer_wait(IDLE_WAKE_MS)
            poller.block()

    def reconnect(self) -> None:
        """The server was restarted: connect again now, unless the IDL has already done so
        by itself. Forcing down a connection made since, while it asks for the database's
        contents, would make the IDL back off for twice as long (2 s and more)."""
        with self.lock:
            self.idl.run()              # a connection that dropped is noticed first
            # ovs.db.idl offers no public test for a live connection
            if not self.idl._session.is_connected():
                self.idl.force_reconnect()
        os.write(self._wake_w, b"x")

    def close(self) -> None:
        if self.idl is None:
            return
        with self.lock:
            self._closed = True
        os.write(self._wake_w, b"x")
        self._thread.join()
        self.idl.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        self.idl = None

    # --- use ---

    def read(self, fn, timeout: float | None = None):
        """fn(tables) on the replica, under the lock (run the IDL first to be current).
        timeout: CommandError when a transaction holds the lock longer (a server being
        restarted holds it until it is back)."""
        if not self.lock.acquire(timeout=-1 if timeout is None else timeout):
            raise CommandError("the OVS database is busy (a transaction waits for it)",
                               resource=self.remote)
        try:
            self.idl.run()
            return fn(Tables(self.idl, committed=True))
        finally:
            self.lock.release()

    def transact(self, build, *, wait_applied: bool = True, what: str = "change"):
        """Run build(txn, tables) in one transaction and commit it; returns build's result.

        build may raise (a DriverError) to abort without writing anything. It is called
        again when the server answers TRY_AGAIN (someone else changed what it verified)."""
        deadline = time.monotonic() + self.timeout
        with self.lock:
            for _ in range(MAX_ATTEMPTS):
                self.idl.run()
                seqno = self.idl.change_seqno
                tables = Tables(self.idl)
                txn = ovs.db.idl.Transaction(self.idl)
                try:
                    result = build(txn, tables)
                    if wait_applied:
                        tables.root.increment("next_cfg")
                except BaseException:
                    txn.abort()
                    raise
                txn.add_comment("composer: %s" % what)
                status = self._commit(txn, deadline, what)
                if status == ovs.db.idl.Transaction.TRY_AGAIN:
                    # A verified column changed, or the connection dropped: wait for the
                    # replica to change (or come back) before building again.
                    LOG.debug("OVSDB transaction (%s): try again", what)
                    self._wait_change(seqno, deadline, what)
                    continue
                if status == ovs.db.idl.Transaction.UNCHANGED:
                    return result
                if status != ovs.db.idl.Transaction.SUCCESS:
                    raise CommandError("OVSDB transaction failed (%s): %s" % (what, status),
                                       resource=self.remote, detail=txn.get_error())
                if wait_applied:
                    self._wait_applied(txn.get_increment_new_value(), deadline, what)
                return result
        raise CommandError("OVSDB transaction (%s) kept conflicting with other clients"
                           % what, resource=self.remote)

    def _commit(self, txn, deadline: float, what: str):
        while True:
            status = txn.commit()
            if status != ovs.db.idl.Transaction.INCOMPLETE:
                return status
            if time.monotonic() > deadline:
                txn.abort()
                raise CommandError("ovsdb-server did not answer within %.0f s (%s)"
                                   % (self.timeout, what), resource=self.remote)
            self.idl.run()
            poller = ovs.poller.Poller()
            self.idl.wait(poller)
            txn.wait(poller)
            _block(poller, deadline)

    def _wait_change(self, seqno: int, deadline: float, what: str) -> None:
        while True:
            self.idl.run()
            if self.idl.change_seqno != seqno:
                return
            if time.monotonic() > deadline:
                raise CommandError("the OVS database did not come back within %.0f s (%s)"
                                   % (self.timeout, what), resource=self.remote)
            poller = ovs.poller.Poller()
            self.idl.wait(poller)
            _block(poller, deadline)

    def _wait_applied(self, next_cfg: int, deadline: float, what: str) -> None:
        while True:
            self.idl.run()
            if Tables(self.idl).root.cur_cfg >= next_cfg:
                return
            if time.monotonic() > deadline:
                raise CommandError("ovs-vswitchd has not applied the change (%s) within %.0f s;"
                                   " is it running?" % (what, self.timeout),
                                   resource=self.remote)
            poller = ovs.poller.Poller()
            self.idl.wait(poller)
            _block(poller, deadline)
