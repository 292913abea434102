"""<rpc-error> (RFC 6241 section 4.3 and appendix A), built from constants.

RpcError carries error-type, error-tag, error-severity, error-app-tag, error-path (a
libyang data path, written out with XML prefixes and their namespace declarations),
error-message and error-info. The datastore layer's Problems and libyang's validation
errors are turned into RpcErrors here, libyang's following RFC 7950 section 15.
"""

from lxml import etree

from ..datastore.errors import DatastoreError, Problem
from ..datastore.xpath import XPathSyntaxError, to_xml
from ..model.errors import ValidationError, YangErrorItem

BASE_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"
YANG_NS = "urn:ietf:params:xml:ns:yang:1"

# error-types
TRANSPORT, RPC, PROTOCOL, APPLICATION = "transport", "rpc", "protocol", "application"

# RFC 6241 appendix A: error-tag -> the error-types it may be sent with (first: default)
TAGS = {
    "in-use": (PROTOCOL, APPLICATION),
    "invalid-value": (PROTOCOL, APPLICATION),
    "too-big": (TRANSPORT, RPC, PROTOCOL, APPLICATION),
    "missing-attribute": (RPC, PROTOCOL, APPLICATION),
    "bad-attribute": (RPC, PROTOCOL, APPLICATION),
    "unknown-attribute": (RPC, PROTOCOL, APPLICATION),
    "missing-element": (PROTOCOL, APPLICATION),
    "bad-element": (PROTOCOL, APPLICATION),
    "unknown-element": (PROTOCOL, APPLICATION),
    "unknown-namespace": (PROTOCOL, APPLICATION),
    "access-denied": (PROTOCOL, APPLICATION),
    "lock-denied": (PROTOCOL,),
    "resource-denied": (TRANSPORT, RPC, PROTOCOL, APPLICATION),
    "rollback-failed": (PROTOCOL, APPLICATION),
    "data-exists": (APPLICATION,),
    "data-missing": (APPLICATION,),
    "operation-not-supported": (PROTOCOL, APPLICATION),
    "operation-failed": (RPC, PROTOCOL, APPLICATION),
    "malformed-message": (RPC,),
}


class RpcError(Exception):
    """One <rpc-error>. info: (name, value) pairs; a name is a local name in the base
    namespace or '{namespace}name'."""

    def __init__(self, tag: str, message: str | None = None, *, error_type: str | None = None,
                 severity: str = "error", path: str | None = None, app_tag: str | None = None,
                 info=()):
        if tag not in TAGS:
            raise ValueError("unknown error-tag %r" % tag)
        allowed = TAGS[tag]
        if error_type not in allowed:
            error_type = APPLICATION if APPLICATION in allowed else allowed[0]
        super().__init__(message or tag)
        self.tag = tag
        self.error_type = error_type
        self.severity = severity
        self.message = message
        self.path = path
        self.app_tag = app_tag
        self.info = tuple(info)

    def element(self, prefix_of_module=None):
        """The <rpc-error> element; prefix_of_module(module) -> (prefix, namespace) turns
        the libyang path into an XML one."""
        def sub(parent, name, text=None, **kw):
            el = etree.SubElement(parent, "{%s}%s" % (BASE_NS, name), **kw)
            if text is not None:
                el.text = text
            return el
        error = etree.Element("{%s}rpc-error" % BASE_NS, nsmap={None: BASE_NS})
        sub(error, "error-type", self.error_type)
        sub(error, "error-tag", self.tag)
        sub(error, "error-severity", self.severity)
        if self.app_tag:
            sub(error, "error-app-tag", self.app_tag)
        if self.path:
            path, nsmap = self.path, {}
            if prefix_of_module is not None and self.path.startswith("/"):
                try:
                    path, nsmap = to_xml(self.path, prefix_of_module)
                except XPathSyntaxError:
                    path, nsmap = self.path, {}
            sub(error, "error-path", path, nsmap=nsmap or None)
        if self.message:
            message = sub(error, "error-message", self.message)
            message.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
        if self.info:
            info = sub(error, "error-info")
            for name, value in self.info:
                tag = name if name.startswith("{") else "{%s}%s" % (BASE_NS, name)
                etree.SubElement(info, tag).text = value
        return error

    def __repr__(self):
        return "RpcError(%s, %r, path=%r)" % (self.tag, self.message, self.path)


class RpcErrors(Exception):
    """Several <rpc-error>s for one request."""

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__("; ".join(str(e) for e in self.errors))


def from_problem(problem: Problem) -> RpcError:
    return RpcError(problem.tag, problem.message, error_type=problem.error_type,
                    path=problem.path, app_tag=problem.app_tag, info=problem.info)


def _quoted(message: str) -> str | None:
    """The first "quoted" word of a libyang message."""
    start = message.find('"')
    end = message.find('"', start + 1)
    return message[start + 1:end] if start >= 0 and end > start else None


def from_yang(item: YangErrorItem) -> RpcError:
    """A libyang validation error as RFC 7950 section 15 (and 8.3) says."""
    message, app = item.message, item.app_tag
    path = item.path
    if app in ("instance-required", "missing-choice"):
        return RpcError("data-missing", message, path=path, app_tag=app)
    if app in ("too-many-elements", "too-few-elements", "data-not-unique", "must-violation"):
        return RpcError("operation-failed", message, path=path, app_tag=app)
    if message.startswith("Mandatory node") or message.startswith("Mandatory choice"):
        return RpcError("data-missing", message, path=path, app_tag=app)
    if message.startswith("When condition"):
        # RFC 7950 8.3.2: a node whose "when" is false is an unknown element
        name = path.rsplit("/", 1)[-1].split(":")[-1].split("[")[0] if path else ""
        return RpcError("unknown-element", message, path=path, app_tag=app,
                        info=(("bad-element", name),))
    if " not found as a child of " in message or (message.startswith("Node \"")
                                                  and "not found" in message):
        return RpcError("unknown-element", message, path=path,
                        info=(("bad-element", _quoted(message) or ""),))
    if message.startswith("No module with namespace"):
        return RpcError("unknown-namespace", message, path=path,
                        info=(("bad-element", ""), ("bad-namespace", _quoted(message) or "")))
    if "metadata" in message or message.startswith("Annotation definition"):
        name = (_quoted(message[message.find("metadata"):]) if "metadata" in message
                else _quoted(message)) or ""
        return RpcError("unknown-attribute", message, path=path,
                        info=(("bad-attribute", name.split(":")[-1]), ("bad-element", "")))
    if message.startswith("List instance is missing its key"):
        return RpcError("missing-element", message, path=path,
                        info=(("bad-element", _quoted(message) or ""),))
    if app is not None:
        # a must or other constraint with its own error-app-tag
        return RpcError("operation-failed", message, path=path, app_tag=app)
    if message.startswith("Duplicate instance") or message.startswith("Unique data"):
        return RpcError("operation-failed", message, path=path)
    return RpcError("invalid-value", message, path=path)


def convert(exc: BaseException) -> list[RpcError]:
    """The rpc-errors for an exception raised while serving a request."""
    if isinstance(exc, RpcError):
        return [exc]
    if isinstance(exc, RpcErrors):
        return exc.errors
    if isinstance(exc, DatastoreError):
        return [from_problem(p) for p in exc.problems]
    if isinstance(exc, ValidationError):
        return [from_yang(item) for item in exc.items]
    return [RpcError("operation-failed", "internal error: %s" % exc)]
