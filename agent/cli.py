"""The `composer-agent` command."""

import argparse
import getpass
import logging
import os
import sys

from . import __version__, eventloop, tuning
from .config import ConfigError, load
from .daemon import Agent
from .demo import DEFAULT_PORT, DEFAULT_PREFIX, DEFAULT_STATE_DIR, DemoNetwork


def _common(parser, default=None):
    parser.add_argument("-c", "--config", default=default, help="TOML configuration file "
                        "(default: embedded defaults; see examples/composer-agent.toml)")
    parser.add_argument("--state-dir", default=default, help="override state.dir")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="composer-agent",
        description="COMPOSER-NC network element agent: NETCONF/YANG in, service graphs out.")
    _common(parser)
    parser.add_argument("--port", type=int, help="override netconf.port")
    parser.add_argument("--log-level", help="override logging.level (debug, info, warning)")
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    commands = parser.add_subparsers(dest="command", metavar="command")
    passwd = commands.add_parser("passwd", help="set the NETCONF password of a user (stored "
                                 "as a salted hash in <state>/users/<user>/password)")
    _common(passwd, default=argparse.SUPPRESS)
    passwd.add_argument("user")
    passwd.add_argument("--stdin", action="store_true",
                        help="read the password from the first line of standard input")
    plan = commands.add_parser("plan", help="print the steps a commit of a configuration "
                               "(XML with service-graphs) would run against what is deployed")
    _common(plan, default=argparse.SUPPRESS)
    plan.add_argument("file", help="configuration XML, e.g. examples/firewall-chain.xml")
    tenant = commands.add_parser("tenant", help="make a NETCONF user a tenant: it reads and "
                                 "edits only its service graphs (NACM rules sent to the "
                                 "running agent as admin; see README.md, Access control)")
    _common(tenant, default=argparse.SUPPRESS)
    tenant.add_argument("action", choices=["add"])
    tenant.add_argument("user")
    tenant.add_argument("graphs", nargs="+", metavar="graph")
    demo = commands.add_parser("demo", help="make a demo node (two hosts behind LSI-0's eth1 "
                               "and eth2, in network namespaces) and run the agent on it "
                               "until Ctrl-C, then remove it all (see README.md)")
    _common(demo, default=argparse.SUPPRESS)
    demo.add_argument("--port", type=int, default=DEFAULT_PORT, dest="demo_port",
                      help="NETCONF port on 127.0.0.1 (default %(default)s)")
    demo.add_argument("--prefix", default=DEFAULT_PREFIX,
                      help="the demo's namespaces are <prefix>-node, <prefix>-h1, "
                      "<prefix>-h2; its resources start with it (1-4 lower-case letters or "
                      "digits; default %(default)s)")
    return parser.parse_args(argv)


def passwd(args, config) -> int:
    """composer-agent passwd <user>: prompt twice (or read stdin), store a salted hash."""
    from .netconf.users import UserError, Users
    if args.stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("New NETCONF password for %s: " % args.user)
        if getpass.getpass("Again: ") != password:
            print("composer-agent: the passwords differ", file=sys.stderr)
            return 1
    try:
        path = Users(config.state_dir / "users").set_password(args.user, password)
    except (UserError, OSError) as exc:
        print("composer-agent: %s" % exc, file=sys.stderr)
        return 1
    print("password of %s stored as a salted hash in %s" % (args.user, path))
    if not config.get("netconf", "password-authentication"):
        print("note: password authentication is off; set netconf.password-authentication "
              "= true to use it")
    return 0


def plan(args, config) -> int:
    """composer-agent plan <file>: the plan, one step per line, without touching the node."""
    from .engine.dryrun import offline_plan
    from .engine.planner import PlanningError
    from .model import ValidationError
    try:
        with open(args.file, "rb") as stream:
            text = stream.read()
        result = offline_plan(config, text)
    except OSError as exc:
        print("composer-agent: %s: %s" % (args.file, exc.strerror), file=sys.stderr)
        return 1
    except ValidationError as exc:
        print("composer-agent: %s" % exc, file=sys.stderr)
        return 1
    except PlanningError as exc:
        print("composer-agent: %s (%s)" % (exc.message, exc.path), file=sys.stderr)
        return 1
    print(result)
    return 0


def tenant(args, config) -> int:
    """composer-agent tenant add <user> <graph>...: NACM rules over NETCONF."""
    from .netconf.tenants import TenantError, add_tenant
    try:
        print(add_tenant(config, args.user, args.graphs))
    except TenantError as exc:
        print("composer-agent: %s" % exc, file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    overrides = {}
    demo = None
    if args.command == "demo":
        demo = DemoNetwork(args.prefix)
        overrides = demo.overrides(args.state_dir or DEFAULT_STATE_DIR, args.demo_port)
    elif args.state_dir:
        overrides.setdefault("state", {})["dir"] = args.state_dir
    if args.port is not None:
        overrides.setdefault("netconf", {})["port"] = args.port
    if args.log_level:
        overrides.setdefault("logging", {})["level"] = args.log_level
    try:
        config = load(args.config, overrides)
    except ConfigError as exc:
        print("composer-agent: %s" % exc, file=sys.stderr)
        return 2
    if args.command == "passwd":
        return passwd(args, config)
    if args.command == "plan":
        return plan(args, config)
    if args.command == "tenant":
        return tenant(args, config)
    logging.basicConfig(
        level=getattr(logging, config.get("logging", "level").upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # pyroute2 logs every netlink message it decodes at debug level: at a thousand ports
    # that is most of the agent's time and log; its warnings still come through.
    logging.getLogger("pyroute2").setLevel(logging.WARNING)
    if os.geteuid() != 0:
        print("composer-agent: must run as root (it drives OVS and network namespaces)",
              file=sys.stderr)
        return 1
    tuning.enable()
    try:
        if demo is not None:
            demo.create()
        eventloop.run(Agent(config, banner=demo.banner(config) if demo else ()).run())
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # noqa: BLE001 - one clear line for the operator, details in the log
        logging.getLogger("agent").debug("fatal", exc_info=True)
        print("composer-agent: %s" % exc, file=sys.stderr)
        return 1
    finally:
        if demo is not None:
            demo.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
