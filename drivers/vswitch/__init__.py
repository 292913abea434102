"""vSwitch drivers: logical switch instances, ports, SAPs, virtual links and flow rules."""

from .base import Action, Flow, LsiInfo, PortInfo, VirtualLink, VSwitchDriver

__all__ = ["Action", "Flow", "LsiInfo", "PortInfo", "VirtualLink", "VSwitchDriver"]
