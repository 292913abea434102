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
ready="$COMPOSER_RUN_DIR/relay.ready"
rm -f "$ready"
setsid python3 "$COMPOSER_PACKAGE_DIR/relay.py" eth0 eth1 "$ready" \
    >>"$COMPOSER_RUN_DIR/relay.log" 2>&1 </dev/null &
pid=$!
echo $pid >"$COMPOSER_RUN_DIR/relay.pid"
# Started means relaying: return once the relay has its sockets (python's start-up takes
# a second and more on a loaded machine), or fail if it died first.
until [ -e "$ready" ]; do
    kill -0 "$pid" 2>/dev/null || { echo "relay: exited at start" >&2; exit 1; }
    sleep 0.02
done
