"""Compute drivers: the execution environments service functions run in."""

from .base import ComputeDriver, FunctionPort, FunctionSpec, InstanceInfo

__all__ = ["ComputeDriver", "FunctionPort", "FunctionSpec", "InstanceInfo"]
