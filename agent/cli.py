"""The `composer-agent` command."""

import argparse
import asyncio
import logging
import os
import sys

from . import __version__
from .config import ConfigError, load
from .daemon import Agent


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="composer-agent",
        description="COMPOSER-NC network element agent: NETCONF/YANG in, service graphs out.")
    parser.add_argument("-c", "--config", help="TOML configuration file (default: embedded "
                        "defaults; see examples/composer-agent.toml)")
    parser.add_argument("--state-dir", help="override state.dir")
    parser.add_argument("--port", type=int, help="override netconf.port")
    parser.add_argument("--log-level", help="override logging.level (debug, info, warning)")
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    overrides = {}
    if args.state_dir:
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
    logging.basicConfig(
        level=getattr(logging, config.get("logging", "level").upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.geteuid() != 0:
        print("composer-agent: must run as root (it drives OVS and network namespaces)",
              file=sys.stderr)
        return 1
    try:
        asyncio.run(Agent(config).run())
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # noqa: BLE001 - one clear line for the operator, details in the log
        logging.getLogger("agent").debug("fatal", exc_info=True)
        print("composer-agent: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
