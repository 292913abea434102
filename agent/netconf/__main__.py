"""Run the NETCONF server and datastores alone (no vSwitch, default engine), for
development and benchmarks: python -m agent.netconf --state-dir DIR [--port N]."""

import argparse
import asyncio
import logging
import signal
import sys

from .. import eventloop, tuning
from ..config import ConfigError, load
from .service import NetconfService


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.netconf", description=__doc__)
    parser.add_argument("-c", "--config", help="TOML configuration file")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--address")
    parser.add_argument("--port", type=int)
    parser.add_argument("--yang-dir", action="append", default=[])
    parser.add_argument("--yang-module", action="append", default=[])
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    overrides = {"state": {"dir": args.state_dir}, "netconf": {}}
    if args.address:
        overrides["netconf"]["address"] = args.address
    if args.port is not None:
        overrides["netconf"]["port"] = args.port
    if args.yang_dir:
        overrides["netconf"]["extra-yang-dirs"] = args.yang_dir
    if args.yang_module:
        overrides["netconf"]["extra-yang-modules"] = args.yang_module
    try:
        config = load(args.config, overrides)
    except ConfigError as exc:
        print("agent.netconf: %s" % exc, file=sys.stderr)
        return 2
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def run():
        service = NetconfService(config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await service.start()
        try:
            for line in service.banner():
                print(line, flush=True)
            await stop.wait()
        finally:
            await service.stop()
    tuning.enable()
    eventloop.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
