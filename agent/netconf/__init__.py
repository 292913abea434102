"""The NETCONF server: SSH transport, RFC 6242 framing, RFC 6241 operations and friends."""

from .errors import RpcError, RpcErrors
from .operations import register
from .server import NetconfServer
from .service import NetconfService
from .session import Session
from .users import Users

__all__ = ["NetconfServer", "NetconfService", "RpcError", "RpcErrors", "Session", "Users",
           "register"]
