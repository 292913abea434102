"""The service graph's `monitoring` expression (composer-sffg service-graph/config/monitoring):
a small, documented form read by a tiny parser (never eval), checked at commit and
evaluated by the alarms (agent/engine/alarms.py) for every function of the graph.

    expression := condition ( "," condition )*
    condition  := metric operator number
    operator   := ">" | ">=" | "<" | "<="

Metrics (what the node measures per function):
    process-restarts   how many times the agent restarted the function (or made it again)
                       since the graph was deployed: its restart-count (at the source:
                       Health counts a restart).
    cpu-percent        the CPU time it used over the last alarms interval, in percent of
                       one core (agent/engine/usage.py; sampled every [alarms] interval).
    memory-mb          the memory it holds, in MiB (sampled likewise).

Example: "process-restarts > 3, memory-mb >= 512". Each condition that holds for a
function raises one monitoring-threshold alarm naming the function; it is cleared when
the condition no longer holds. A metric not measured yet for a function (cpu-percent
before its second sample, or in an environment whose driver measures nothing) holds no
condition. An unknown metric is refused at commit rather than stored and ignored.
"""

import operator
import re
from dataclasses import dataclass

OPERATORS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
METRICS = ("process-restarts", "cpu-percent", "memory-mb")
MAX_LENGTH = 1000

# One condition: metric, operator, a non-negative integer; blanks around each part.
_CONDITION = re.compile(r"\s*([a-z][a-z0-9-]*)\s*(>=|<=|>|<)\s*([0-9]+)\s*\Z")


class MonitoringError(ValueError):
    """A malformed monitoring expression; the message says what and where."""


@dataclass(frozen=True)
class Condition:
    metric: str
    op: str
    limit: int

    def holds(self, value: float) -> bool:
        return OPERATORS[self.op](value, self.limit)

    def __str__(self) -> str:
        return "%s %s %d" % (self.metric, self.op, self.limit)


def parse(text: str) -> tuple:
    """The Conditions of an expression; () for an empty one; MonitoringError if malformed."""
    if len(text) > MAX_LENGTH:
        raise MonitoringError("the monitoring expression is longer than %d characters"
                              % MAX_LENGTH)
    if not text.strip():
        return ()
    conditions = []
    for number, part in enumerate(text.split(","), 1):
        match = _CONDITION.match(part)
        if match is None:
            raise MonitoringError(
                "condition %d of the monitoring expression (%r) is not "
                "'<metric> <operator> <number>' (operators: %s)"
                % (number, part.strip(), " ".join(OPERATORS)))
        metric, op, limit = match.groups()
        if metric not in METRICS:
            raise MonitoringError("condition %d of the monitoring expression: unknown metric "
                                  "%r (known: %s)" % (number, metric, ", ".join(METRICS)))
        conditions.append(Condition(metric, op, int(limit)))
    return tuple(conditions)


__all__ = ["Condition", "METRICS", "MonitoringError", "parse"]
