"""The datastores: libyang trees for running, candidate and startup, edit-config
semantics, locks, commit and confirmed commit, startup persistence."""

from .edit import DEFAULT_OPERATIONS, ERROR_OPTIONS, OPERATIONS, Edit, Plan, execute, plan
from .errors import CommitError, DatastoreError, EditError, LockError, Problem
from .locks import Lock, Locks
from .store import CONVENTIONAL, Datastores, PendingConfirm
from .tree import DataTree

__all__ = ["CONVENTIONAL", "CommitError", "DEFAULT_OPERATIONS", "DataTree", "DatastoreError",
           "Datastores", "ERROR_OPTIONS", "Edit", "EditError", "Lock", "LockError", "Locks",
           "OPERATIONS", "PendingConfirm", "Plan", "Problem", "execute", "plan"]
