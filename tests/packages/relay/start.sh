#!/bin/sh
# The relay in the background: the function's process, which the agent watches.
# Parameters: delay=<seconds> (a slow start: sleep that long first); burn (a second
# process that spins on a core); hold-mb=<N> (a third one that holds N MiB resident).
set -eu
burn=""
hold=""
for p in "$@"; do
    case "$p" in
        delay=*) sleep "${p#delay=}" ;;
        burn) burn=1 ;;
        hold-mb=*) hold="${p#hold-mb=}" ;;
        *) echo "relay: unknown parameter '$p'" >&2; exit 2 ;;
    esac
done
if [ -n "$burn" ]; then
    setsid python3 -c 'while True: pass' </dev/null >/dev/null 2>&1 &
fi
if [ -n "$hold" ]; then
    setsid python3 -c "import sys, time
blob = bytearray(int(sys.argv[1]) << 20)
blob[::4096] = b'x' * len(blob[::4096])
time.sleep(1e9)" "$hold" </dev/null >/dev/null 2>&1 &
fi
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
