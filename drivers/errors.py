"""Errors of the driver layer: one root, typed subclasses, structured fields.

The engine turns a DriverError into a failed commit that names the step, the resource
and this message, so messages say what failed and, where it helps, what to do.
"""


class DriverError(Exception):
    """Root of every error a driver raises."""

    def __init__(self, message: str, *, resource: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.resource = resource
        self.detail = detail

    def __str__(self) -> str:
        parts = [self.message]
        if self.resource:
            parts.insert(0, "%s:" % self.resource)
        if self.detail:
            parts.append("(%s)" % self.detail.strip())
        return " ".join(parts)


class PrerequisiteError(DriverError):
    """Something the driver needs is missing on this node; the message says what to install."""


class ResourceExists(DriverError):
    """The resource to create already exists."""


class ResourceNotFound(DriverError):
    """The resource to act on does not exist."""


class CommandError(DriverError):
    """An external command failed; detail holds its stderr."""


class UnknownDriver(DriverError):
    """No driver is registered under that name."""


class NetlinkError(DriverError):
    """The kernel refused a netlink request; errno holds its error number."""

    def __init__(self, message: str, *, errno: int | None = None, resource: str | None = None,
                 detail: str | None = None):
        super().__init__(message, resource=resource, detail=detail)
        self.errno = errno


class ScriptError(CommandError):
    """A lifecycle script of a function failed or timed out.

    script is the lifecycle step (create, start, ...), status its exit status (None when it
    was killed at the timeout), output the tail of what it printed.
    """

    def __init__(self, message: str, *, script: str, status: int | None, output: str = "",
                 timed_out: bool = False, resource: str | None = None):
        super().__init__(message, resource=resource, detail=output or None)
        self.script = script
        self.status = status
        self.output = output
        self.timed_out = timed_out


class InvalidArgument(DriverError):
    """A value given to a driver is malformed or out of range; nothing was changed."""


class NotSupported(DriverError):
    """The driver does not do this: an optional part of the interface it does not implement
    (pausing, changing ports, a port technology, a capability)."""
