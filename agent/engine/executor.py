"""Runs a plan: each step's undo is recorded as it succeeds; a failure undoes in reverse.

1. for each item: run it (a Group runs its steps in a bounded thread pool);
2. a handler returns the steps that undo what it did, in the order to run them; they go
   on the undo stack;
3. on a failure: undo the failed group's finished members, then the stack in reverse,
   and raise StepFailed naming the step, its resource and the driver's message.

A plan may run in parts on one undo stack (run(head, stack), later run(tail, stack)): a
failure in the tail undoes the head too. A run given a `stop` event stops before the next
step once it is set, as if that step had failed with Stopped.
"""

import logging
import time
from concurrent.futures import ThreadPoolExecutor

from ..model.plan import Group, Plan, Step

LOG = logging.getLogger(__name__)


class StepFailed(Exception):
    """A step failed; the plan was rolled back (rollback_errors lists undo failures)."""

    def __init__(self, step: Step, cause: Exception, rollback_errors=()):
        self.step = step
        self.cause = cause
        self.rollback_errors = list(rollback_errors)
        message = "%s failed: %s" % (step, cause)
        if self.rollback_errors:
            message += " (and %d undo steps failed: %s)" % (
                len(self.rollback_errors), "; ".join(self.rollback_errors))
        super().__init__(message)


class Stopped(Exception):
    """The run was asked to stop before this step."""


class Executor:
    """Runs plans against a table of step handlers."""

    def __init__(self, handlers: dict, journal=None, parallelism: int = 8, fault=None):
        self.handlers = handlers        # kind -> callable(step) -> list[Step] (undo)
        self.journal = journal
        self.parallelism = max(1, parallelism)
        # Test hook: fault(step) may raise to simulate a failure of that step.
        self.fault = fault

    def run_step(self, step: Step) -> list:
        """One step alone, journaled; its undo steps (a repair does not keep them)."""
        return self._run_step(step)

    def _run_step(self, step: Step, stop=None) -> list:
        if stop is not None and stop.is_set():
            raise Stopped("stopped before %s" % step)
        if self.fault is not None:
            self.fault(step)
        try:
            handler = self.handlers[step.kind]
        except KeyError:
            raise RuntimeError("no handler for step kind %r" % step.kind) from None
        started = time.perf_counter()
        undo = handler(step) or []
        elapsed = (time.perf_counter() - started) * 1000
        LOG.debug("step %s done in %.1f ms", step, elapsed)
        if self.journal is not None:
            self.journal.step(step, ms=elapsed)
        return list(undo)

    def _run_group(self, group: Group, undo_stack: list, stop) -> None:
        if len(group.steps) == 1 or self.parallelism == 1:
            for step in group.steps:
                undo_stack.append(self._run_step(step, stop))
            return
        with ThreadPoolExecutor(max_workers=min(self.parallelism, len(group.steps))) as pool:
            futures = [(step, pool.submit(self._run_step, step, stop)) for step in group.steps]
            failure = None
            for step, future in futures:
                try:
                    undo_stack.append(future.result())
                except Exception as exc:  # noqa: BLE001 - collected, re-raised below
                    if failure is None:
                        failure = (step, exc)
            if failure is not None:
                raise _GroupFailure(*failure)

    def run(self, plan: Plan, undo_stack: list | None = None, stop=None) -> None:
        """Run the plan. undo_stack: what an earlier part of the same plan did (extended
        in place). stop: a threading.Event."""
        if undo_stack is None:
            undo_stack = []
        for item in plan.items:
            try:
                if isinstance(item, Group):
                    self._run_group(item, undo_stack, stop)
                else:
                    undo_stack.append(self._run_step(item, stop))
            except _GroupFailure as failure:
                self._fail(failure.step, failure.cause, undo_stack)
            except Exception as exc:  # noqa: BLE001 - every failure rolls back
                self._fail(item, exc, undo_stack)

    def _fail(self, step, cause, undo_stack):
        LOG.warning("step %s failed: %s; rolling back %d steps", step, cause, len(undo_stack))
        errors = self.rollback(undo_stack)
        raise StepFailed(step, cause, errors) from cause

    def rollback(self, undo_stack: list) -> list[str]:
        """Run the undo steps, newest first; keep going on errors and return them."""
        errors = []
        while undo_stack:
            for step in undo_stack.pop():
                try:
                    self._undo(step)
                except Exception as exc:  # noqa: BLE001 - best effort, reported
                    LOG.error("undo step %s failed: %s", step, exc)
                    errors.append("%s: %s" % (step, exc))
        return errors

    def _undo(self, step: Step) -> None:
        handler = self.handlers[step.kind]
        handler(step)
        if self.journal is not None:
            self.journal.step(step, event="undone")


class FaultFile:
    """A fault hook for tests of the real daemon: fail the step named in a file."""

    def __init__(self, path):
        self.path = path

    def __call__(self, step) -> None:
        try:
            with open(self.path, encoding="utf-8") as stream:
                wanted = stream.read().strip()
        except FileNotFoundError:
            return
        if wanted and wanted == str(step):
            from drivers.errors import DriverError
            raise DriverError("injected fault", resource=str(step))


class _GroupFailure(Exception):
    def __init__(self, step, cause):
        super().__init__(str(cause))
        self.step = step
        self.cause = cause
