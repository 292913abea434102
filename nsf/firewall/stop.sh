#!/bin/sh
# Stop forwarding: bring the bridge down.
set -eu
. ./lib.sh
ip link set "$BRIDGE" down
