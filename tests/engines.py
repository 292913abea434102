"""Transaction engines for tests: one that records, one that refuses on demand."""

import contextlib
import threading

from agent.engine import EngineRefused, TransactionEngine


class RecordingEngine(TransactionEngine):
    """Accepts everything and records what it was asked to apply (printed XML)."""

    def __init__(self):
        self.applied = []          # (old xml or None, new xml or None)
        self.validated = 0
        self.converged = 0         # commits that changed nothing
        self._lock = threading.Lock()

    @staticmethod
    def _xml(node):
        if node is None:
            return None
        return node.print_mem("xml", with_siblings=True, pretty=False)

    def validate(self, old, new):
        with self._lock:
            self.validated += 1

    def apply(self, old, new):
        with self._lock:
            self.applied.append((self._xml(old), self._xml(new)))

    def converge(self):
        with self._lock:
            self.converged += 1


class FailingEngine(RecordingEngine):
    """Refuses while `failing` is set (or when the new configuration contains `when`),
    with the given message, path and app tag; records what it accepted."""

    def __init__(self, message="the node cannot deploy this", path=None, app_tag=None,
                 info=None):
        super().__init__()
        self.failing = False
        self.when = None               # a substring of the new configuration's XML
        self.message = message
        self.path = path
        self.app_tag = app_tag
        self.info = info or {}
        self.refused = 0
        self.gate = None               # a threading.Event apply() waits for, when set
        self.entered = threading.Event()

    def fail(self, message=None, path=None, app_tag=None):
        self.failing = True
        if message is not None:
            self.message = message
        self.path = path
        self.app_tag = app_tag

    def succeed(self):
        self.failing = False
        self.when = None

    def apply(self, old, new):
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(60)
        xml = self._xml(new) or ""
        if self.failing or (self.when is not None and self.when in xml):
            with self._lock:
                self.refused += 1
            raise EngineRefused(self.message, path=self.path, app_tag=self.app_tag,
                                info=self.info)
        super().apply(old, new)

    def converge(self):
        if self.failing:
            with self._lock:
                self.refused += 1
            raise EngineRefused(self.message, path=self.path, app_tag=self.app_tag)
        super().converge()


@contextlib.contextmanager
def failing_at(executor, target: str, error=RuntimeError):
    """Within: the executor's step whose description is target raises error (a driver
    failure; a BaseException such as a stand-in for kill -9 skips every handler)."""
    def fault(step):
        if str(step) == target:
            raise error("injected at %s" % step)
    executor.fault = fault
    try:
        yield
    finally:
        executor.fault = None


class ReadingEngine(FailingEngine):
    """Checks commits the way ComposerEngine does: read() takes the XML of the new tree
    before libyang validates it, and the check it returns runs in a worker thread
    meanwhile (validate() is then not called). refuse_in_check: the check refuses."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.refuse_in_check = False
        self.read_xml = []             # what read() saw of each new tree
        self.checked = []              # (the tree object, the thread the check ran in)
        self.check_started = threading.Event()

    def read(self, old, new):
        self.read_xml.append(self._xml(new))

        def check():
            self.check_started.set()
            self.checked.append((new, threading.get_ident()))
            if self.refuse_in_check:
                raise EngineRefused(self.message, path=self.path, app_tag=self.app_tag)
        return check
