"""README.md's demo, as a newcomer runs it: `make demo` in one terminal, the blocks
marked `demo` in a second one, in order, then Ctrl-C; afterwards nothing of the demo is
left (namespace, link, OVS or other process).

The demo runs inside a network namespace of the test's own, entered with nsenter (the
network namespace only, so the namespaces the demo makes are visible to the snippets), so
that its 127.0.0.1 port 830 is free whatever runs on the machine; its namespaces and
resources carry the session prefix, which the README's names are rewritten to."""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests import resources
from tests.resources import PREFIX

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DEMO_PREFIX = (PREFIX + "d")[:4]


def demo_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block whose info string is `<language> demo`."""
    return [(m.group(1), m.group(2)) for m in
            re.finditer(r"^```(sh|python) demo\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)]


def script(blocks, state_dir: Path) -> str:
    """One bash script running the blocks in order (python through the venv's python),
    each announced by a marker line; the README's names rewritten to the test's."""
    parts = ["set -e"]
    for number, (language, code) in enumerate(blocks):
        parts.append("echo '=== block %d'" % number)
        if language == "python":
            code = "%s - <<'PYTHON'\n%sPYTHON\n" % (ROOT / ".venv" / "bin" / "python", code)
        parts.append(code)
        # A person typing the next block takes longer than the kernel's ARP probes of a
        # failed ping (3 s): a lookup left in progress must not fail the next block's first
        # packet when run at script speed
        parts.append("ip -n demo-h1 neigh flush all; ip -n demo-h2 neigh flush all")
    text = "\n".join(parts)
    text = text.replace("/run/composer-demo", str(state_dir))
    return re.sub(r"\bdemo-(node|h1|h2)\b", DEMO_PREFIX + r"-\1", text)


def outputs(out: str) -> list[str]:
    return re.split(r"^=== block \d+$", out, flags=re.MULTILINE)[1:]


def demo_leftovers(outer: str, state_dir: Path) -> list[str]:
    found = ["namespace %s" % n for n in resources.netns_names()
             if n.startswith(DEMO_PREFIX + "-")]
    found += ["link %s" % n for n in resources.link_names(outer) if n != "lo"]
    found += ["process %s" % p for p in resources.processes_mentioning(str(state_dir))]
    return found


@pytest.fixture
def outer_netns():
    name = "%sreadme" % PREFIX
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_blocks_are_found():
    blocks = demo_blocks(README.read_text())
    assert [language for language, _ in blocks] == ["sh", "sh", "sh", "python", "sh"]


def test_readme_demo(outer_netns, session_tmp):
    state_dir = session_tmp / "demo-state"
    log = session_tmp / "demo.log"
    enter = ["nsenter", "--net=/run/netns/%s" % outer_netns]
    with open(log, "wb") as stream:
        # `make demo` as typed, in a session of its own so that Ctrl-C reaches make and
        # the agent as a terminal's would (the process group)
        demo = subprocess.Popen(
            enter + ["make", "--no-print-directory", "demo",
                     "DEMO_ARGS=--prefix %s --state-dir %s" % (DEMO_PREFIX, state_dir)],
            cwd=ROOT, stdout=stream, stderr=subprocess.STDOUT, start_new_session=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        deadline = time.monotonic() + 120
        while b"Ctrl-C stops the agent" not in log.read_bytes():
            assert demo.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        banner = log.read_text()
        assert "%s-h1, 10.0.0.1/24" % DEMO_PREFIX in banner

        blocks = demo_blocks(README.read_text())
        done = subprocess.run(enter + ["bash", "-c", script(blocks, state_dir)], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        out = done.stdout + done.stderr
        assert done.returncode == 0, out
        before, deploy, traffic, python, after = outputs(done.stdout)
        assert "no path yet" in before
        assert deploy.count("<ok ") == 2, deploy          # edit-config, commit
        assert "ctypes:running" in deploy and "<graph-lsi>" in deploy, deploy
        assert " 0% packet loss" in traffic, traffic
        received = re.findall(r"([\d.]+) ([MG])bits/sec\s+receiver", traffic)
        assert received, traffic
        rate, unit = received[-1]
        assert float(rate) * (1000 if unit == "G" else 1) > 10, traffic   # Mbit/s
        assert "port 23: blocked" in traffic, traffic
        assert "graph chain ctypes:running" in python, python
        assert "node %s-node can run bridge, firewall, nat, router" % DEMO_PREFIX in python, \
            python
        assert "no path again" in after, after
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGINT)          # Ctrl-C
        try:
            code = demo.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
            raise
    # make re-raises the SIGINT it got once the agent has exited (cleanly: its log says so)
    assert code in (0, -signal.SIGINT), log.read_text()
    assert "composer-agent: " not in log.read_text()
    assert re.search(r"private OVS in \S+ stopped", log.read_text()), log.read_text()
    assert demo_leftovers(outer_netns, state_dir) == []
