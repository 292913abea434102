#!/bin/sh
# The init of a function's container (nsf/images.py): runs the package's lifecycle scripts
# (/composer/steps/<step>) with the environment the native driver gives them.
#
#   init PARAMETER...            the container's main process: waits until the driver has
#                                moved every port in (a line on the FIFO go), runs create
#                                and start, writes "running" (or "failed <status>") to
#                                /composer/run/state, then waits; SIGTERM runs stop and
#                                ends the container
#   init --update PARAMETER...   (docker exec) runs update with COMPOSER_PORTS_ADDED and
#                                COMPOSER_PORTS_REMOVED
#
# The driver writes the ports' in-container names to /composer/run/ports, one a line, and
# sets COMPOSER_INSTANCE, COMPOSER_PARAM_<KEY> and COMPOSER_CPU_CORES at create.
set -u
run=/composer/run
steps=/composer/steps
export COMPOSER_PACKAGE_DIR=/composer/package COMPOSER_RUN_DIR=$run
cd "$COMPOSER_PACKAGE_DIR" || exit 1

# COMPOSER_PORTS and COMPOSER_PORT_<N>_IFNAME from the ports as they are now.
read_ports() {
    COMPOSER_PORTS=""
    while read -r ifname; do
        case $ifname in
            '' | *[!a-z0-9]*) continue ;;     # the driver writes eth<N>; nothing else is taken
        esac
        COMPOSER_PORTS="${COMPOSER_PORTS:+$COMPOSER_PORTS }$ifname"
        eval "export COMPOSER_PORT_${ifname#eth}_IFNAME=\$ifname"
    done < "$run/ports"
    export COMPOSER_PORTS
}

step() {
    name=$1
    shift
    if [ -x "$steps/$name" ]; then
        COMPOSER_ACTION=$name "$steps/$name" "$@"
    fi
}

state() {
    echo "$1" > "$run/state.tmp" && mv "$run/state.tmp" "$run/state"
}

if [ "${1:-}" = "--update" ]; then
    shift
    read_ports
    step update "$@"
    exit
fi

# The ports arrive just after the container starts: the driver moves them in, brings them
# up with their addresses, then writes a line to the FIFO "go". Blocking on it costs no CPU
# (a polling loop spent the container's CPU quota and was throttled).
read -r _ < "$run/go"

# Read after "go", not before: the container starts at create, and a port may be added
# to the function before it starts.
read_ports
for ifname in $COMPOSER_PORTS; do
    if [ ! -e "/sys/class/net/$ifname" ]; then
        echo "init: port $ifname did not arrive" >&2
        state "failed 124"
        exit 124
    fi
done

stopping() {
    step stop "$@"
    exit 0
}
trap 'stopping "$@"' TERM INT

if step create "$@" && step start "$@"; then
    state running
else
    status=$?
    state "failed $status"
    exit "$status"
fi
while :; do
    sleep 2147483647 &
    wait $!
done
