"""What the tests may create on the node, and how to find what they left behind.

Every resource a test session creates starts with PREFIX (namespaces, links, bridges,
containers, VMs), so that parallel sessions with different prefixes never touch each
other's resources and the end-of-session check can find leaks.
"""

import os
import subprocess
from pathlib import Path

# Two letters; sessions that run side by side use prefixes that are not prefixes of each other.
PREFIX = os.environ.get("COMPOSER_TEST_PREFIX", "ct")
TMP_ROOT = Path(os.environ.get("COMPOSER_TEST_TMP", "/tmp"))


def netns_names() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def link_names(netns: str | None = None) -> list[str]:
    argv = ["ip", "-o", "link", "show"]
    if netns:
        argv = ["ip", "-n", netns, "-o", "link", "show"]
    out = subprocess.run(argv, capture_output=True, text=True).stdout
    names = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention text (a run directory, a name)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if state != "Z" and text in cmdline:
            found.append("%s: %s" % (proc.name, cmdline.strip()))
    return found


def leaks(prefix: str = PREFIX, run_root: str | None = None) -> list[str]:
    """Resources with the session's prefix that are still on the node."""
    found = ["network namespace %s" % n for n in netns_names() if n.startswith(prefix)]
    found += ["link %s" % n for n in link_names() if n.startswith(prefix)]
    if run_root:
        found += ["process %s" % p for p in processes_mentioning(run_root)]
    return found
