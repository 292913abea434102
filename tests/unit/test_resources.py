"""Each test session claims its own prefix: sessions side by side never share one."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Prints the prefix its session claims, then holds it until its standard input closes.
SESSION = "import sys; from tests import resources; print(resources.PREFIX, flush=True); " \
          "sys.stdin.read()"


def _session(env):
    return subprocess.Popen([sys.executable, "-c", SESSION], cwd=ROOT, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def test_two_sessions_side_by_side_claim_different_prefixes():
    env = {k: v for k, v in os.environ.items() if k != "COMPOSER_TEST_PREFIX"}
    first = _session(env)
    try:
        one = first.stdout.readline().strip()
        second = _session(env)
        try:
            other = second.stdout.readline().strip()
        finally:
            second.communicate("")
    finally:
        first.communicate("")
    assert len(one) == len(other) == 2
    assert one != other
    assert not one.startswith("cn") and not other.startswith("cn")   # `make run`'s "cnc"


def test_the_environment_sets_the_prefix():
    env = dict(os.environ, COMPOSER_TEST_PREFIX="zq")
    session = _session(env)
    assert session.communicate("")[0].strip() == "zq"
