"""The engine's journal: each transaction's intent and progress, in the state directory.

One JSON object per line: begin (with the graphs it touches), one line per step done,
then commit, rolled-back or rollback-failed (repair-failed for a repair that failed: its
graph is broken, and recovery checks it as any other). A transaction with a begin and no
end was interrupted (the agent crashed); recovery treats the graphs it touched as dirty.

Lines are appended without fsync: a killed process loses nothing the kernel already has,
and after a machine crash nothing the journal speaks of is deployed any more (recovery
inspects the node anyway).
"""

import json
import time
from pathlib import Path


ENDS = ("commit", "rolled-back", "rollback-failed", "repair-failed", "recovered")


class Journal:
    MAX_BYTES = 8 * 1024 * 1024

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stream = None
        self._txn = 0

    def _open(self):
        if self._stream is None:
            if self.path.exists() and self.path.stat().st_size > self.MAX_BYTES:
                self.path.replace(self.path.with_suffix(".old"))
            self._stream = open(self.path, "a", encoding="utf-8")
        return self._stream

    def _write(self, record: dict) -> None:
        stream = self._open()
        stream.write(json.dumps(record, sort_keys=True) + "\n")
        stream.flush()

    def begin(self, graphs, plan_lines) -> int:
        self._txn = int(time.time() * 1000)
        self._write({"txn": self._txn, "event": "begin", "graphs": sorted(graphs),
                     "plan": plan_lines, "time": time.time()})
        return self._txn

    def step(self, step, event: str = "done", ms: float | None = None) -> None:
        record = {"txn": self._txn, "event": event, "step": str(step)}
        if ms is not None:
            record["ms"] = round(ms, 1)
        self._write(record)

    def end(self, event: str, message: str = "") -> None:
        record = {"txn": self._txn, "event": event, "time": time.time()}
        if message:
            record["message"] = message
        self._write(record)

    def interrupted(self) -> set:
        """Graphs touched by a transaction that began and never ended."""
        if not self.path.exists():
            return set()
        open_txns: dict = {}
        with open(self.path, encoding="utf-8") as stream:
            for line in stream:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue      # a line cut short by a crash
                if record.get("event") == "begin":
                    open_txns[record["txn"]] = set(record.get("graphs", ()))
                elif record.get("event") in ENDS:
                    open_txns.pop(record.get("txn"), None)
        return set().union(*open_txns.values()) if open_txns else set()

    def mark_recovered(self) -> None:
        """Close every open transaction after recovery has dealt with it."""
        if not self.path.exists():
            return
        open_txns = set()
        with open(self.path, encoding="utf-8") as stream:
            for line in stream:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("event") == "begin":
                    open_txns.add(record["txn"])
                elif record.get("event") in ENDS:
                    open_txns.discard(record.get("txn"))
        for txn in sorted(open_txns):
            self._write({"txn": txn, "event": "recovered", "time": time.time()})

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
