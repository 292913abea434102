#!/bin/sh
# The relay in the background: the function's process, which the agent watches.
set -eu
for ifname in $COMPOSER_PORTS; do
    ip link set "$ifname" up promisc on
done
setsid python3 "$COMPOSER_PACKAGE_DIR/relay.py" eth0 eth1 \
    >>"$COMPOSER_RUN_DIR/relay.log" 2>&1 </dev/null &
echo $! >"$COMPOSER_RUN_DIR/relay.pid"
