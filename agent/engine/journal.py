"""The engine's journal: each transaction's intent and progress, in the state directory.

One JSON object per line: begin (with the graphs it touches), one line per step done,
then commit, rolled-back, rollback-failed or reverted (repair-failed for a repair that
failed: its graph is broken, and recovery checks it as any other). A transaction with a
begin and no end was interrupted (the agent crashed); recovery treats the graphs it
touched as dirty.

Each record is one write(2) of the file opened for appending; one that fails (no space,
an I/O error) is cut off again, so that the file holds whole lines only. begin and the
commit end must be written (a transaction does not start, or does not count, without
them) and the commit end is synced with everything before it; step lines and the ends
of failed transactions are best effort: without them recovery only knows less (an
unended transaction counts as interrupted, which is the safe side).
"""

import errno
import json
import logging
import os
import threading
import time
from pathlib import Path

LOG = logging.getLogger(__name__)

ENDS = ("commit", "rolled-back", "rollback-failed", "reverted", "repair-failed", "recovered")


class Journal:
    MAX_BYTES = 8 * 1024 * 1024

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = None
        self._txn = 0
        self._lock = threading.Lock()      # steps of a group are journaled from its threads
        self._lost = False                 # a best-effort record of this transaction failed

    def _open(self) -> int:
        if self._fd is None:
            if self.path.exists() and self.path.stat().st_size > self.MAX_BYTES:
                self.path.replace(self.path.with_suffix(".old"))
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                size = os.fstat(self._fd).st_size
                if size and os.pread(self._fd, 1, size - 1) != b"\n":
                    # the last run died in the middle of a line: the next record starts
                    # a line of its own
                    self._append(b"\n", size)
            except OSError:
                self._close()
                raise
        return self._fd

    def _append(self, data: bytes, size: int) -> None:
        try:
            if os.write(self._fd, data) != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            try:
                os.ftruncate(self._fd, size)
            except OSError:
                pass
            raise

    def _write(self, record: dict, sync: bool = False) -> None:
        """Append one record; raises OSError, leaving the file as it was."""
        data = (json.dumps(record, sort_keys=True) + "\n").encode()
        with self._lock:
            fd = self._open()
            size = os.fstat(fd).st_size
            self._append(data, size)
            if sync:
                try:
                    os.fsync(fd)
                except OSError:
                    os.ftruncate(fd, size)
                    raise

    def _try(self, record: dict) -> None:
        try:
            self._write(record)
        except OSError as exc:
            if not self._lost:
                LOG.warning("cannot write to the journal %s (%s): records of transaction "
                            "%s are missing", self.path, exc, record.get("txn"))
            self._lost = True

    def begin(self, graphs, plan_lines) -> int:
        """Raises OSError when the record cannot be written (the transaction must not
        start)."""
        txn = max(time.time_ns(), self._txn + 1)     # unique across restarts too
        self._write({"txn": txn, "event": "begin", "graphs": sorted(graphs),
                     "plan": plan_lines, "time": time.time()})
        self._txn = txn
        self._lost = False
        return txn

    def step(self, step, event: str = "done", ms: float | None = None) -> None:
        record = {"txn": self._txn, "event": event, "step": str(step)}
        if ms is not None:
            record["ms"] = round(ms, 1)
        self._try(record)

    def end(self, event: str, message: str = "") -> None:
        """The end of the transaction: commit is written and synced, or OSError; the
        other ends are best effort."""
        record = {"txn": self._txn, "event": event, "time": time.time()}
        if message:
            record["message"] = message
        if event == "commit":
            self._write(record, sync=True)
        else:
            self._try(record)

    def _open_transactions(self) -> dict:
        """txn -> graphs of the transactions that began and never ended."""
        if not self.path.exists():
            return {}
        open_txns: dict = {}
        with open(self.path, encoding="utf-8", errors="replace") as stream:
            for line in stream:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue      # a line cut short by a crash
                if record.get("event") == "begin":
                    open_txns[record["txn"]] = set(record.get("graphs", ()))
                elif record.get("event") in ENDS:
                    open_txns.pop(record.get("txn"), None)
        return open_txns

    def interrupted(self) -> set:
        """Graphs touched by a transaction that began and never ended."""
        open_txns = self._open_transactions()
        return set().union(*open_txns.values()) if open_txns else set()

    def mark_recovered(self) -> None:
        """Close every open transaction after recovery has dealt with it (best effort:
        one left open only makes the next recovery treat its graphs as dirty again)."""
        for txn in sorted(self._open_transactions()):
            self._try({"txn": txn, "event": "recovered", "time": time.time()})

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        with self._lock:
            self._close()
