"""NETCONF access control (RFC 8341, ietf-netconf-acm) on operations, reads, writes and
notifications.

The /nacm configuration lives in running like any data. It is compiled once per change
of it (Nacm.invalidate() on every change of running that touches it) into a Policy:
the groups, and the rule lists in order. A user's view (Access) is made once per policy
and user: the rules of the rule lists whose groups hold the user, in order, split by
access operation. Then:

- an operation is checked against the exec rules (rpc-name, or no rule-type), the
  defaults of RFC 8341 (kill-session and delete-config are default-deny-all, close-session
  is always allowed) and exec-default;
- a data node is checked against the rules matching its module (where the node is
  defined) and the path rules that match it or one of its ancestors, then the node's
  nacm:default-deny-all / default-deny-write, then read-default or write-default.
  Path rules are matched step by step while a tree is walked from the top (a small state
  machine per rule: no XPath evaluation over the datastore); a subtree whose decision
  cannot change below its root (no path rule partly matched, no node of another module
  or with a NACM extension below it in the schema) is decided at its root and not walked.
  A user whose first applicable rule matches everything (operators) costs one look-up.

Reads drop the denied nodes silently (a denied node with a permitted descendant stays as
its ancestor, with its list keys). Writes are checked before anything changes, on the
edit's plan (an edit) or on the two trees (commit, copy-config, delete-config):
access-denied with the path of the first denied node.

Bypass: NACM off (enable-nacm false), and the recovery session: the NETCONF user named
by netconf.nacm-recovery-user (default "recovery"; its key is in
<state>/users/recovery/authorized_keys, which only root on the node can write).
Groups: /nacm/groups, and with enable-external-groups the lines of
<state>/users/<name>/groups.

Modules: rules (the compiled /nacm), schema (facts about schema and data nodes), access
(one user's view), control (the server's policy and counters), shipped (the startup's
policy and the tenant edit).
"""

from .access import Access, AccessDenied
from .control import Counters, Nacm
from .rules import (ALL_OPS, CREATE, DELETE, EXEC, READ, UPDATE, Policy, Rule, Step,
                    parse_path)
from .shipped import default_policy, tenant_policy

__all__ = ["ALL_OPS", "Access", "AccessDenied", "CREATE", "Counters", "DELETE", "EXEC",
           "Nacm", "Policy", "READ", "Rule", "Step", "UPDATE", "default_policy",
           "parse_path", "tenant_policy"]
