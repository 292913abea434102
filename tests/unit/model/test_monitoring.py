"""The monitoring expression's parser: the documented form is read, anything else is
refused with a message saying which condition is wrong; nothing is evaluated as code."""

import pytest

from agent.model.monitoring import Condition, MonitoringError, parse


def test_the_documented_forms():
    assert parse("") == () and parse("   ") == ()
    assert parse("process-restarts > 3") == (Condition("process-restarts", ">", 3),)
    assert parse(" process-restarts>=1 ,process-restarts < 10") == (
        Condition("process-restarts", ">=", 1), Condition("process-restarts", "<", 10))
    condition = parse("process-restarts <= 2")[0]
    assert condition.holds(2) and not condition.holds(3) and str(condition) == \
        "process-restarts <= 2"
    assert parse("process-restarts > 3")[0].holds(4) and \
        not parse("process-restarts > 3")[0].holds(3)


def test_cpu_and_memory_per_function():
    assert parse("cpu-percent > 80, memory-mb >= 512") == (
        Condition("cpu-percent", ">", 80), Condition("memory-mb", ">=", 512))
    assert parse("cpu-percent > 80")[0].holds(80.5)      # sampled figures are decimals


@pytest.mark.parametrize("text, says", [
    ("process-restarts > lots", "condition 1"),
    ("process-restarts > 3,", "condition 2"),
    ("process-restarts = 3", "'<metric> <operator> <number>'"),
    ("process-restarts > -1", "condition 1"),
    ("process-restarts > 3.5", "condition 1"),
    ("cpu > 80", "unknown metric 'cpu'"),
    ("__import__('os').system('true') > 1", "condition 1"),
    ("process-restarts > 3 and process-restarts < 9", "condition 1"),
    ("x" * 1001, "longer than 1000"),
])
def test_malformed_expressions_are_refused(text, says):
    with pytest.raises(MonitoringError) as refused:
        parse(text)
    assert says in str(refused.value)
