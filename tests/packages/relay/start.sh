#!/bin/sh
# The relay in the background: the function's process, which the agent watches.
# Parameters: delay=<seconds> (a slow start: sleep that long first).
set -eu
for p in "$@"; do
    case "$p" in
        delay=*) sleep "${p#delay=}" ;;
        *) echo "relay: unknown parameter '$p'" >&2; exit 2 ;;
    esac
done
for ifname in $COMPOSER_PORTS; do
    ip link set "$ifname" up promisc on
done
setsid python3 "$COMPOSER_PACKAGE_DIR/relay.py" eth0 eth1 \
    >>"$COMPOSER_RUN_DIR/relay.log" 2>&1 </dev/null &
echo $! >"$COMPOSER_RUN_DIR/relay.pid"
