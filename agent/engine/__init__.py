"""The transaction engine: from a change of running to steps on the node, with undo."""

from .interface import AcceptAllEngine, EngineRefused, StateProvider, TransactionEngine

__all__ = ["AcceptAllEngine", "EngineRefused", "StateProvider", "TransactionEngine"]
