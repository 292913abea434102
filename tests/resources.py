"""What the tests may create on the node, and how to find what they left behind.

Every resource a test session creates starts with PREFIX (namespaces, links, bridges,
containers, VMs), so that sessions side by side never touch each other's resources and the
end-of-session check finds this session's leaks only.

PREFIX is two letters the session claims when it starts: the first pair that no running
session holds (an abstract unix socket named after it, held while the process lives),
that no resource on the node starts with, and that is not the start of the agent's own
default prefix (`make run` beside the tests). COMPOSER_TEST_PREFIX sets it instead; the
processes the session starts inherit it.
"""

import itertools
import os
import socket
import string
import subprocess
from pathlib import Path

TMP_ROOT = Path(os.environ.get("COMPOSER_TEST_TMP", "/tmp"))
LOCK = "composer-test-prefix-%s"   # an abstract unix socket's name: held by one process
AGENT_PREFIX = "cnc"           # resources.prefix of an agent with the default configuration
_held: dict = {}               # prefix -> the open lock file that holds it


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


def _related(a: str, b: str) -> bool:
    """Whether the names of one prefix can start with the other."""
    return a.startswith(b) or b.startswith(a)


def _claim(prefix: str) -> bool:
    """Hold prefix while this process lives (an abstract unix socket, gone with the
    process however it ends); False when another process holds it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind("\0" + LOCK % prefix)
    except OSError:
        sock.close()
        return False
    _held[prefix] = sock
    return True


def _held_elsewhere() -> list[str]:
    """The prefixes other running sessions hold."""
    marker = "@" + LOCK % ""
    with open("/proc/net/unix") as table:      # the path is the 8th column, when bound
        paths = [fields[7] for fields in map(str.split, table) if len(fields) > 7]
    return [path[len(marker):] for path in paths
            if path.startswith(marker) and path[len(marker):] not in _held]


def _candidates():
    letters = string.ascii_lowercase
    firsts = "tuvwxyz" + letters[:letters.index("t")]
    for first, second in itertools.product(firsts, letters):
        yield first + second


def session_prefix() -> str:
    """This session's prefix (see the module's docstring), claimed once per process."""
    explicit = os.environ.get("COMPOSER_TEST_PREFIX")
    if explicit:
        _claim(explicit)             # held by the session that started this one: fine
        return explicit
    held = _held_elsewhere()
    names = netns_names() + link_names()
    names += [path.name for path in TMP_ROOT.iterdir()] if TMP_ROOT.is_dir() else []
    for prefix in _candidates():
        if _related(prefix, AGENT_PREFIX) or any(_related(prefix, h) for h in held) or \
                any(name.startswith(prefix) for name in names):
            continue
        if _claim(prefix):
            os.environ["COMPOSER_TEST_PREFIX"] = prefix
            return prefix
    raise RuntimeError("no free test prefix: set COMPOSER_TEST_PREFIX")


def leaks(prefix: str, run_root: str | None = None) -> list[str]:
    """Resources with the session's prefix that are still on the node."""
    found = ["network namespace %s" % n for n in netns_names() if n.startswith(prefix)]
    found += ["link %s" % n for n in link_names() if n.startswith(prefix)]
    from tests import guest
    found += ["libvirt domain %s" % n for n in guest.domain_names(prefix)]
    if run_root:
        found += ["process %s" % p for p in processes_mentioning(run_root)]
    return found


PREFIX = session_prefix()
